"""The money invariants, and the first difference when one fails.

Two callers: the tests assert them after every scenario (``tests/invariants.py``), the operator's audit reports
them (``spot admin audit``, ``spot/audit.py``). Each holds at every committed moment, not only at a quiet one:
every balance change commits with its ledger rows, a hold with its order row or withdrawal, a release with the
change that ends it. So ``money_report`` reads them all in one REPEATABLE READ snapshot, while the fleet runs.

* conservation: per asset, the sum over all accounts (the fee account included) of available + held equals
  what came in from outside (ledger rows with no debit account: deposits) minus what went out (rows with no
  credit account: completed withdrawals);
* the balances table equals the ledger, per (user, asset, bucket);
* no negative balance (also a CHECK constraint);
* holds: an ended order holds nothing; per (user, asset), ``held`` equals the holds left on open orders plus
  the pending withdrawals; the open orders' holds equal what those orders still need (``REMAINING_NEED``);
* withdrawals: each was held once, and completed (debited) or failed (released) at most once, as its status
  says, all for its amount;
* each user's count in ``open_order_counts`` equals their open orders, per symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from .domain import fmt_amount

REMAINING_NEED = """
WITH needs AS (
  SELECT o.user_id, o.hold_asset, o.hold_shared, o.order_list_id, CASE
    WHEN o.type IN ('MARKET', 'STOP_LOSS', 'TAKE_PROFIT') THEN o.hold_atoms
    WHEN o.side = 'BUY' THEN (o.qty_lots - o.executed_lots - o.prevented_lots) * o.price_ticks * m.tick_size
        * m.step_size * 1e8
    ELSE (o.qty_lots - o.executed_lots - o.prevented_lots) * m.step_size * 1e8 END AS need
  FROM orders o JOIN markets m ON m.symbol = o.symbol
  WHERE o.status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_NEW'))
SELECT user_id, hold_asset AS asset, sum(need) AS need FROM (
  SELECT user_id, hold_asset, need FROM needs WHERE NOT hold_shared
  UNION ALL
  SELECT user_id, hold_asset, max(need) FROM needs WHERE hold_shared GROUP BY user_id, hold_asset, order_list_id
) t
GROUP BY user_id, hold_asset
"""
"""Per (user, asset), what the open orders still need held, from the orders table alone. It mirrors the
processor's hold (``validation.check``): a limit BUY holds price * qty in quote atoms (no fee reserve, a
fee is taken from what a side receives), a SELL its quantity in base atoms; here for the lots not yet
executed. A MARKET order is open only until the matcher takes it (it ends in that step), so it still needs
all it held: everything available or its quote, which no formula gives back; so does a STOP_LOSS or
TAKE_PROFIT (a MARKET once triggered) until it ends. A *_LIMIT conditional order holds as a limit. The legs of an
OCO pair whose hold is still shared (``hold_shared``: neither has acted) need the larger of their needs, once."""

TOTALS = "SELECT asset, sum(available + held)::bigint AS total FROM balances GROUP BY asset"
EXTERNAL = (
    "SELECT asset, (coalesce(sum(amount) FILTER (WHERE debit_user IS NULL), 0) - "
    "coalesce(sum(amount) FILTER (WHERE credit_user IS NULL), 0))::bigint AS net FROM ledger GROUP BY asset"
)
FROM_LEDGER = """
WITH moves AS (
  SELECT credit_user AS u, asset, credit_bucket AS bucket, amount FROM ledger WHERE credit_user IS NOT NULL
  UNION ALL
  SELECT debit_user, asset, debit_bucket, -amount FROM ledger WHERE debit_user IS NOT NULL)
SELECT u, asset, coalesce(sum(amount) FILTER (WHERE bucket = 'available'), 0)::bigint AS available,
       coalesce(sum(amount) FILTER (WHERE bucket = 'held'), 0)::bigint AS held
FROM moves GROUP BY u, asset"""
ENDED_HOLDING = (
    "SELECT order_id, status, hold_asset, hold_left FROM orders "
    "WHERE status NOT IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_NEW') AND hold_left <> 0 ORDER BY order_id LIMIT 10"
)
OPEN_HOLDS = (
    "SELECT user_id, hold_asset AS asset, sum(hold_left)::bigint AS held FROM orders "
    "WHERE status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_NEW') GROUP BY user_id, hold_asset HAVING sum(hold_left) <> 0"
)
PENDING_WITHDRAWALS = (
    "SELECT user_id, asset, sum(amount)::bigint AS held FROM withdrawals WHERE status = 'PENDING' "
    "GROUP BY user_id, asset"
)
WITHDRAWAL_ENTRIES = """
SELECT w.withdraw_id, w.status,
       count(l.entry_id) FILTER (WHERE l.kind = 'withdraw_hold' AND l.amount = w.amount
                                 AND l.debit_bucket = 'available' AND l.credit_bucket = 'held') AS holds,
       count(l.entry_id) FILTER (WHERE l.kind = 'withdraw' AND l.amount = w.amount
                                 AND l.debit_bucket = 'held' AND l.credit_user IS NULL) AS debits,
       count(l.entry_id) FILTER (WHERE l.kind = 'withdraw_release' AND l.amount = w.amount
                                 AND l.debit_bucket = 'held' AND l.credit_bucket = 'available') AS releases,
       count(l.entry_id) AS entries
FROM withdrawals w LEFT JOIN ledger l ON l.ref = 'withdraw:' || w.withdraw_id
GROUP BY w.withdraw_id, w.status ORDER BY w.withdraw_id"""
# (holds, debits, releases, entries) each status must have: held once, then debited or released once
WITHDRAWAL_SHAPE: Mapping[str, tuple[int, int, int, int]] = {
    "PENDING": (1, 0, 0, 1),
    "COMPLETED": (1, 1, 0, 2),
    "FAILED": (1, 0, 1, 2),
}
OPEN_COUNTS = "SELECT user_id, symbol, n FROM open_order_counts WHERE n <> 0"
REALLY_OPEN = (
    "SELECT user_id, symbol, count(*)::int AS n FROM orders WHERE status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_NEW') "
    "GROUP BY user_id, symbol"
)


@dataclass(slots=True)
class MoneyReport:
    totals: dict[str, int] = field(default_factory=dict)  # per asset: available + held over all accounts
    differences: list[str] = field(default_factory=list)  # in the order of the checks above; empty: all hold

    @property
    def ok(self) -> bool:
        return not self.differences


def differing(
    what: str, found: Mapping[Any, Any], expected: Mapping[Any, Any], show: Callable[[Any], str] = str
) -> list[str]:
    """One line per key whose values differ (a key missing on one side counts as zero), sorted by key. Keys are
    (user, asset) pairs, assets, or user ids. Pure."""
    keys: list[Hashable] = sorted(set(found) | set(expected), key=repr)
    out = []
    for key in keys:
        a, b = found.get(key, 0), expected.get(key, 0)
        if a != b:
            out.append(f"{what} {_key(key)}: {show(a)}, expected {show(b)}")
    return out


def _key(key: Any) -> str:
    if isinstance(key, tuple):
        return f"of user {key[0]} in {key[1]}"
    return f"of user {key}" if isinstance(key, int) else f"of {key}"


def _atoms(value: int | Decimal) -> str:
    return fmt_amount(int(value)) if value == int(value) else f"{value} atoms"


def _pair(value: Any) -> str:
    available, held = value if isinstance(value, tuple) else (0, 0)
    return f"available {fmt_amount(available)} held {fmt_amount(held)}"


async def money_report(db: asyncpg.Pool | asyncpg.Connection) -> MoneyReport:
    """Check every invariant on one snapshot; the report lists each difference found."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await money_report(conn)
    if db.is_in_transaction():  # the caller's snapshot
        return await _report(db)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await _report(db)


async def _report(conn: asyncpg.Connection) -> MoneyReport:
    report = MoneyReport()
    diffs = report.differences
    report.totals = {r["asset"]: r["total"] for r in await conn.fetch(TOTALS)}
    external = {r["asset"]: r["net"] for r in await conn.fetch(EXTERNAL)}
    diffs += differing("conservation: sum of balances", report.totals, external, _atoms)

    ledger = {(r["u"], r["asset"]): (r["available"], r["held"]) for r in await conn.fetch(FROM_LEDGER)}
    rows = await conn.fetch("SELECT user_id, asset, available, held FROM balances")
    balances = {(r["user_id"], r["asset"]): (r["available"], r["held"]) for r in rows}
    nonzero = {k: v for k, v in balances.items() if v != (0, 0)}
    diffs += differing("balance (table against ledger)", nonzero, {k: v for k, v in ledger.items() if v != (0, 0)},
                       _pair)  # fmt: skip
    diffs += [
        f"negative balance of user {u} in {a}: {_pair((x, y))}" for (u, a), (x, y) in sorted(balances.items())
        if x < 0 or y < 0
    ]  # fmt: skip

    diffs += [
        f"order {r['order_id']} is {r['status']} but still holds {fmt_amount(r['hold_left'])} {r['hold_asset']}"
        for r in await conn.fetch(ENDED_HOLDING)
    ]
    held = {k: v[1] for k, v in balances.items() if v[1]}
    open_holds = {(r["user_id"], r["asset"]): r["held"] for r in await conn.fetch(OPEN_HOLDS)}
    pending = {(r["user_id"], r["asset"]): r["held"] for r in await conn.fetch(PENDING_WITHDRAWALS)}
    holds = {k: open_holds.get(k, 0) + pending.get(k, 0) for k in set(open_holds) | set(pending)}
    diffs += differing("held balance (against open orders' holds + pending withdrawals)", held, holds, _atoms)
    needs = {(r["user_id"], r["asset"]): r["need"] for r in await conn.fetch(REMAINING_NEED) if r["need"]}
    diffs += differing("open orders' holds (against what they still need)", open_holds, needs, _atoms)

    for r in await conn.fetch(WITHDRAWAL_ENTRIES):
        shape = (r["holds"], r["debits"], r["releases"], r["entries"])
        if shape != WITHDRAWAL_SHAPE[r["status"]]:
            diffs.append(
                f"withdrawal {r['withdraw_id']} is {r['status']} but its ledger entries are (holds, debits, "
                f"releases, all) {shape}, expected {WITHDRAWAL_SHAPE[r['status']]}"
            )

    counted = {(r["user_id"], r["symbol"]): r["n"] for r in await conn.fetch(OPEN_COUNTS)}
    really_open = {(r["user_id"], r["symbol"]): r["n"] for r in await conn.fetch(REALLY_OPEN)}
    diffs += differing("open-order count", counted, really_open)
    return report
