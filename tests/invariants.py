"""Money invariants, asserted after every scenario (and every crash scenario).

* conservation: per asset, the sum over all accounts of available + held equals what came in from
  outside (ledger rows with no debit account) minus what went out;
* the balances table equals the ledger, per (user, asset, bucket);
* no negative balance (also a CHECK constraint);
* holds: an ended order holds nothing; per (user, asset), ``held`` equals the holds left on open orders,
  and equals what those orders still need (``REMAINING_NEED``): a hold is what the order still needs;
* each user's count in ``open_order_counts`` equals their open orders.
"""

from __future__ import annotations

import asyncpg

REMAINING_NEED = """
SELECT o.user_id, o.hold_asset AS asset, sum(CASE
    WHEN o.type = 'MARKET' THEN o.hold_atoms
    WHEN o.side = 'BUY' THEN (o.qty_lots - o.executed_lots) * o.price_ticks * m.tick_size * m.step_size * 1e8
    ELSE (o.qty_lots - o.executed_lots) * m.step_size * 1e8 END) AS need
FROM orders o JOIN markets m ON m.symbol = o.symbol
WHERE o.status IN ('NEW', 'PARTIALLY_FILLED')
GROUP BY o.user_id, o.hold_asset
"""
"""Per (user, asset), what the open orders still need held, from the orders table alone. It mirrors the
processor's hold (``validation.check``): a limit BUY holds price * qty in quote atoms (no fee reserve, a
fee is taken from what a side receives), a SELL its quantity in base atoms; here for the lots not yet
executed. A MARKET order is open only until the matcher takes it (it ends in that step), so it still needs
all it held: everything available or its quote, which no formula gives back."""


async def check_money_at(database_url: str) -> dict[str, int]:
    """``check_money`` on a connection of its own, for a scenario that holds none."""
    db = await asyncpg.connect(database_url)
    try:
        return await check_money(db)
    finally:
        await db.close()


async def check_money(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    """Assert every invariant; returns the per-asset totals."""
    totals = {
        r["asset"]: r["total"]
        for r in await db.fetch("SELECT asset, sum(available + held)::bigint AS total FROM balances GROUP BY asset")
    }
    external = {
        r["asset"]: r["net"]
        for r in await db.fetch(
            "SELECT asset, (sum(amount) FILTER (WHERE debit_user IS NULL) - "
            "coalesce(sum(amount) FILTER (WHERE credit_user IS NULL), 0))::bigint AS net FROM ledger GROUP BY asset"
        )
    }
    assert totals == {a: n for a, n in external.items() if n or a in totals}, (totals, external)

    ledger = await db.fetch("""
        WITH moves AS (
          SELECT credit_user AS u, asset, credit_bucket AS bucket, amount FROM ledger WHERE credit_user IS NOT NULL
          UNION ALL
          SELECT debit_user, asset, debit_bucket, -amount FROM ledger WHERE debit_user IS NOT NULL)
        SELECT u, asset, sum(amount) FILTER (WHERE bucket = 'available')::bigint AS available,
               sum(amount) FILTER (WHERE bucket = 'held')::bigint AS held
        FROM moves GROUP BY u, asset""")
    from_ledger = {(r["u"], r["asset"]): (r["available"] or 0, r["held"] or 0) for r in ledger}
    balances = {
        (r["user_id"], r["asset"]): (r["available"], r["held"])
        for r in await db.fetch("SELECT user_id, asset, available, held FROM balances")
    }
    nonzero = {k: v for k, v in balances.items() if v != (0, 0)}
    assert nonzero == {k: v for k, v in from_ledger.items() if v != (0, 0)}, "balances differ from the ledger"
    assert all(a >= 0 and h >= 0 for a, h in balances.values()), "negative balance"

    ended_holding = await db.fetchval(
        "SELECT count(*) FROM orders WHERE status NOT IN ('NEW', 'PARTIALLY_FILLED') AND hold_left <> 0"
    )
    assert ended_holding == 0, f"{ended_holding} ended orders still hold funds"
    held = {
        (r["user_id"], r["asset"]): r["held"]
        for r in await db.fetch("SELECT user_id, asset, held FROM balances WHERE held <> 0")
    }
    open_holds = {
        (r["user_id"], r["hold_asset"]): r["left"]
        for r in await db.fetch(
            "SELECT user_id, hold_asset, sum(hold_left)::bigint AS left FROM orders "
            "WHERE status IN ('NEW', 'PARTIALLY_FILLED') GROUP BY user_id, hold_asset HAVING sum(hold_left) <> 0"
        )
    }
    assert held == open_holds, f"held balances {held} differ from open orders' holds {open_holds}"
    needs = {(r["user_id"], r["asset"]): r["need"] for r in await db.fetch(REMAINING_NEED) if r["need"]}
    assert held == needs, f"held balances {held} differ from what the open orders still need {needs}"

    counted = {r["user_id"]: r["n"] for r in await db.fetch("SELECT user_id, n FROM open_order_counts WHERE n <> 0")}
    really_open = {
        r["user_id"]: r["n"]
        for r in await db.fetch(
            "SELECT user_id, count(*)::int AS n FROM orders "
            "WHERE status IN ('NEW', 'PARTIALLY_FILLED') GROUP BY user_id"
        )
    }
    assert counted == really_open, f"open-order counts {counted} differ from the open orders {really_open}"
    return totals
