"""Postgres side of settlement: one transaction per batch applies balances, ledger, trades, order states.

Exactly once per ``(symbol, seq)``: the cursor row of each symbol is locked and advanced in the same
transaction, and events at or below it are skipped, so a redelivered event changes nothing. In order too:
``seq`` is gap-free per symbol, so an event past the cursor's next one means events were lost on the way (a
broker that lost its log under a running fleet); it is refused (``SequenceGap``), which stops that symbol's
settlement there (``halts.py``) instead of settling around fills that never reached the balances. Locks are
taken in a fixed order (cursor, orders by id, balances by (user, asset), open-order counts by user) shared
with the processor.

A batch costs its round trips, not its rows: at moderate rates a batch holds a few events, and each statement
is a round trip that waits for Postgres to be scheduled on a busy machine and costs both processes a few hundred
microseconds of CPU. So a batch makes five: BEGIN, the cursors (created and locked in one upsert), the orders
locked, and one statement for everything else (``write``: the balances locked in order and changed, then the
ledger, trades, prevented matches, order rows, list statuses, open-order counts and the cursors' advance, as
data-modifying CTEs of one statement), then COMMIT; a batch that makes a balance row for the first time or
amends an order in place makes one more each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import asyncpg

from shared import postgres
from shared.domain import Market, OrderStatus
from shared.messages import MatchedEvent, list_statuses

from .ledger import OrderHold, Settled, ended_per_user, settle

ENSURE_BALANCES = """
INSERT INTO balances (user_id, asset) SELECT u, a FROM unnest($1::bigint[], $2::text[]) AS t(u, a) ORDER BY u, a
ON CONFLICT DO NOTHING
"""
BALANCE_CTES = """
deltas AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS t(u, a, da, dh)),
ordered AS MATERIALIZED (
    SELECT b.user_id, b.asset FROM balances b JOIN deltas t ON b.user_id = t.u AND b.asset = t.a
    ORDER BY b.user_id, b.asset FOR UPDATE OF b
)"""
CHANGE_BALANCES = """
UPDATE balances b SET available = b.available + t.da, held = b.held + t.dh, updated_at = $5
FROM deltas t JOIN ordered k ON k.user_id = t.u AND k.asset = t.a
WHERE b.user_id = t.u AND b.asset = t.a
RETURNING b.user_id, b.asset, b.available, b.held
"""
"""The main statement of a batch's ``write`` (``BALANCE_CTES`` its first CTEs): the batch's balances locked in
(user_id, asset) order, the processor's, before any is changed (``ordered``), then changed; a CHECK makes a
negative balance impossible. The other parts, which it does not read, run after it, so the open-order counts are
locked after the balances, as the processor does."""
UPDATE_ORDERS = """
UPDATE orders SET status = t.s, executed_lots = t.e, cum_nu = t.c, hold_left = t.h, updated_ts = t.ts, last_seq = t.q,
    prevented_lots = t.p, working_ts = CASE WHEN t.w > 0 THEN t.w ELSE orders.working_ts END, hold_shared = t.sh
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bigint[], $10::boolean[])
  AS t(id, s, e, c, h, ts, q, p, w, sh)
WHERE orders.order_id = t.id
"""
"""The orders a batch touched; ``w``: when a conditional order triggered (0: unchanged); ``sh``: a list leg's
hold still shared with its OCO pair."""
# UPDATE_ORDERS' arrays after the ids, each an ``OrderHold`` field
ORDER_STATE_FIELDS = (
    "status",
    "executed_lots",
    "cum_nu",
    "hold_left",
    "updated_ts",
    "last_seq",
    "prevented_lots",
    "working_ts",
    "shared",
)
UPDATE_LISTS = """
UPDATE order_lists SET list_status_type = t.st, list_order_status = t.os, updated_ts = t.ts
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS t(id, st, os, ts)
WHERE order_lists.order_list_id = t.id
"""
"""The order lists whose status a batch changed (the last status of each), from the matcher's list statuses."""
AMEND_ORDERS = """
UPDATE orders SET qty_lots = t.q,
    client_order_id = CASE WHEN EXISTS (
        SELECT 1 FROM orders d
        WHERE d.user_id = orders.user_id AND d.client_order_id = t.c AND d.order_id <> orders.order_id
    ) THEN orders.client_order_id ELSE t.c END
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(id, q, c) WHERE orders.order_id = t.id
"""
"""Orders amended in place (REPLACED): their smaller quantity and their new client order id. The gateway claims
that id before it sends the amend (Redis for two minutes, and Postgres checked), so it is free; should a
settlement backlog outlast the claim and another order have taken it since, the row keeps its old id rather
than stop the symbol on the unique index."""
COUNT_ENDED = """
UPDATE open_order_counts c SET n = c.n - t.k FROM unnest($1::bigint[], $2::text[], $3::int[]) AS t(u, s, k)
WHERE c.user_id = t.u AND c.symbol = t.s
"""
LOCK_CURSORS = """
INSERT INTO settlement_cursor AS c (symbol, seq) SELECT s, 0 FROM unnest($1::text[]) AS s ORDER BY s
ON CONFLICT (symbol) DO UPDATE SET seq = c.seq
RETURNING c.symbol, c.seq
"""
"""Each symbol's cursor, made at 0 the first time, locked in symbol order (the conflict's update locks the row;
it returns the newest committed seq, as ``SELECT ... FOR UPDATE`` would)."""
ADVANCE_CURSORS = """
UPDATE settlement_cursor c SET seq = t.q FROM unnest($1::text[], $2::bigint[]) AS t(s, q) WHERE c.symbol = t.s
"""
# the columns of LEDGER and TRADES' inserts, in their order (tests write rows of their own with them)
LEDGER_COLUMNS = ("ts", "kind", "ref", "asset", "debit_user", "debit_bucket", "credit_user", "credit_bucket", "amount")
TRADE_COLUMNS = (
    "symbol",
    "trade_id",
    "seq",
    "price_ticks",
    "qty_lots",
    "buyer_order_id",
    "seller_order_id",
    "buyer_user_id",
    "seller_user_id",
    "buyer_is_maker",
    "buyer_fee",
    "seller_fee",
    "ts",
)
INSERT_LEDGER = """
INSERT INTO ledger (ts, kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount)
SELECT $1::bigint, t.* FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
                                   $8::text[], $9::bigint[]) AS t
"""
INSERT_TRADES = """
INSERT INTO trades (symbol, trade_id, seq, price_ticks, qty_lots, buyer_order_id, seller_order_id, buyer_user_id,
                    seller_user_id, buyer_is_maker, buyer_fee, seller_fee, ts)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
                     $8::bigint[], $9::bigint[], $10::boolean[], $11::bigint[], $12::bigint[], $13::bigint[])
"""
PREVENTED_COLUMNS = (
    "symbol",
    "prevented_match_id",
    "user_id",
    "taker_order_id",
    "maker_order_id",
    "mode",
    "price_ticks",
    "maker_prevented_lots",
    "ts",
)
"""INSERT_PREVENTED's columns, each read from the ``PreventedMatch`` field of its name (not by position)."""
INSERT_PREVENTED = """
INSERT INTO prevented_matches (symbol, prevented_match_id, user_id, taker_order_id, maker_order_id, mode, price_ticks,
                               maker_prevented_lots, ts)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[],
                     $8::bigint[], $9::bigint[])
"""
_PARAMETER = re.compile(r"\$(\d+)")


def _renumbered(statement: str, offset: int) -> str:
    def shifted(m: re.Match[str]) -> str:
        return f"${int(m[1]) + offset}"

    return _PARAMETER.sub(shifted, statement)


def write(balances: Sequence[Any], parts: Sequence[tuple[str, str, Sequence[Any]]]) -> tuple[str, list[Any]]:
    """One statement: ``balances`` (CHANGE_BALANCES' arguments) changed by its main query, and the
    ``(name, statement, arguments)`` parts, each a data-modifying CTE, its parameters renumbered after those before
    it. Only the parts a batch needs are there (the trades trigger fires per statement), so a batch's statement is
    one of a few texts, each prepared once per connection. The parts touch rows this transaction has locked already
    (orders, cursors) or takes in no other order (counts after the balances, lists, inserts), so running them in
    one statement changes no lock order."""
    ctes = [BALANCE_CTES.strip()]
    args = list(balances)
    for name, statement, part_args in parts:
        ctes.append(f"{name} AS ({_renumbered(statement.strip(), len(args))})")
        args += part_args
    return "WITH " + ",\n".join(ctes) + "\n" + CHANGE_BALANCES.strip(), args


class SequenceGap(Exception):
    """A symbol's next event is not the one after its cursor: the events between never reached settlement."""

    def __init__(self, symbol: str, cursor: int, seq: int) -> None:
        super().__init__(
            f"events {cursor + 1}..{seq - 1} of {symbol} never reached settlement (the next one here is {seq}): "
            "a broker that lost its log? `spot admin settlement resolve "
            f"{symbol} --retry` once they are published again, `--accept-gap` settles on without them"
        )
        self.symbol, self.cursor, self.seq = symbol, cursor, seq


class Accounts:
    def __init__(self, db: asyncpg.Pool, markets: dict[str, Market]) -> None:
        self.db = db
        self.markets = markets
        # balance rows known to exist (committed; none is ever deleted): only others need ENSURE_BALANCES, a
        # statement per batch otherwise; the lock order stays the same (create, then lock)
        self.existing: set[tuple[int, str]] = set()

    async def apply(
        self, events: Sequence[MatchedEvent], now: int, skipped: AbstractSet[tuple[str, int]] = frozenset()
    ) -> tuple[list[MatchedEvent], list[asyncpg.Record]]:
        """Settle ``events`` in one transaction; ``skipped``: the (symbol, seq) an operator chose to pass over,
        which a symbol's next event may follow on from."""
        """Settle the events not applied before; returns them and the new balances they touched."""
        by_symbol: dict[str, list[MatchedEvent]] = {}
        for e in events:
            by_symbol.setdefault(e.symbol, []).append(e)
        async with postgres.timed("settle"), self.db.acquire() as conn, conn.transaction():
            cursor = {r["symbol"]: r["seq"] for r in await conn.fetch(LOCK_CURSORS, sorted(by_symbol))}
            fresh: dict[str, list[MatchedEvent]] = {}
            for symbol, evs in by_symbol.items():
                new = [e for e in evs if e.seq > cursor[symbol]]
                if new:
                    if not follows(symbol, cursor[symbol], new[0].seq, skipped):
                        raise SequenceGap(symbol, cursor[symbol], new[0].seq)
                    fresh[symbol] = new
            if not fresh:
                return [], []
            order_ids = sorted({oid for evs in fresh.values() for e in evs for oid in _order_ids(e)})
            orders = {
                r["order_id"]: OrderHold(
                    r["user_id"],
                    r["hold_asset"],
                    r["hold_left"],
                    r["side"],
                    r["type"],
                    r["price_ticks"],
                    r["qty_lots"],
                    r["status"],
                    r["executed_lots"],
                    r["cum_nu"],
                    prevented_lots=r["prevented_lots"],
                    symbol=r["symbol"],
                    list_id=r["order_list_id"],
                    shared=r["hold_shared"],
                )
                for r in await conn.fetch(
                    "SELECT order_id, user_id, hold_asset, hold_left, status, side, type, price_ticks, qty_lots, "
                    "executed_lots, cum_nu, prevented_lots, symbol, order_list_id, hold_shared FROM orders "
                    "WHERE order_id = ANY($1::bigint[]) "
                    "ORDER BY order_id FOR UPDATE",
                    order_ids,
                )
            }
            open_before = {oid for oid, o in orders.items() if OrderStatus(o.status).is_open}
            settled = Settled()
            for symbol, evs in fresh.items():
                part = settle(evs, self.markets[symbol], orders)
                settled.postings += part.postings
                settled.trades += part.trades
                settled.touched.update(part.touched)
                settled.prevented += part.prevented
            deltas = settled.balance_deltas()
            keys = sorted(deltas)
            ensured = [k for k in keys if k not in self.existing]
            if ensured:
                await conn.execute(ENSURE_BALANCES, [k[0] for k in ensured], [k[1] for k in ensured])
            parts = _rows(settled, now)
            statuses = {s.list_id: (s, e.ts) for evs in fresh.values() for e in evs for s in list_statuses(e)}
            if statuses:
                ids = sorted(statuses)
                kinds = [statuses[i][0].status_type for i in ids]
                parts.append(
                    (
                        "list_states",
                        UPDATE_LISTS,
                        [ids, kinds, [statuses[i][0].order_status for i in ids], [statuses[i][1] for i in ids]],
                    )
                )
            closed = ended_per_user(open_before, settled.touched)
            if closed:
                ended = sorted(closed)  # locked after the balances (``CHANGE_BALANCES``), as the processor does
                parts.append(
                    (
                        "open_counts",
                        COUNT_ENDED,
                        [[u for u, _ in ended], [s for _, s in ended], [closed[k] for k in ended]],
                    )
                )
            advanced = sorted(fresh)
            parts.append(("cursor_moves", ADVANCE_CURSORS, [advanced, [fresh[s][-1].seq for s in advanced]]))
            users, assets = [k[0] for k in keys], [k[1] for k in keys]
            available, held = [deltas[k][0] for k in keys], [deltas[k][1] for k in keys]
            statement, args = write([users, assets, available, held, now], parts)
            balances = await conn.fetch(statement, *args)
            if len(balances) != len(keys):  # a row missing here would lose its postings: never commit that
                raise RuntimeError(f"settlement changed {len(balances)} of {len(keys)} balance rows")
            await self._amend(conn, settled)
        self.existing.update(ensured)  # committed: those rows exist for good
        return [e for evs in fresh.values() for e in evs], balances

    @staticmethod
    async def _amend(conn: asyncpg.Connection, s: Settled) -> None:
        """Orders amended in place: a statement of their own, as ``write``'s statement updated those rows already
        (one statement may change a row once)."""
        amended = sorted(i for i, o in s.touched.items() if o.amended_client_order_id is not None)
        if amended:
            await conn.execute(
                AMEND_ORDERS,
                amended,
                [s.touched[i].qty_lots for i in amended],
                [s.touched[i].amended_client_order_id for i in amended],
            )


def _columns(rows: Sequence[object], *fields: str) -> list[list[Any]]:
    """Per field, its value in each of ``rows``: the arrays a statement unnests."""
    return [[getattr(r, f) for r in rows] for f in fields]


def _rows(s: Settled, now: int) -> list[tuple[str, str, Sequence[Any]]]:
    """The ``write`` parts of a batch's rows: ledger postings, trades, prevented matches, order states."""
    parts: list[tuple[str, str, Sequence[Any]]] = []
    if s.postings:
        kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount = _columns(
            s.postings, *LEDGER_COLUMNS[1:]
        )
        debits, credits = [b.value for b in debit_bucket], [b.value for b in credit_bucket]
        ledger = [now, kind, ref, asset, debit_user, debits, credit_user, credits, amount]
        parts.append(("new_postings", INSERT_LEDGER, ledger))
    if s.trades:
        columns = zip(
            *(
                (
                    sym,
                    t.trade_id,
                    seq,
                    t.price_ticks,
                    t.qty_lots,
                    t.buyer_order_id,
                    t.seller_order_id,
                    t.buyer_user_id,
                    t.seller_user_id,
                    t.buyer_is_maker,
                    t.buyer_fee,
                    t.seller_fee,
                    t.ts,
                )
                for sym, seq, t in s.trades
            ),
            strict=True,
        )
        parts.append(("new_trades", INSERT_TRADES, [list(c) for c in columns]))
    if s.prevented:
        parts.append(("new_prevented", INSERT_PREVENTED, _columns(s.prevented, *PREVENTED_COLUMNS)))
    if s.touched:
        ids = sorted(s.touched)
        states = _columns([s.touched[i] for i in ids], *ORDER_STATE_FIELDS)
        parts.append(("order_states", UPDATE_ORDERS, [ids, *states]))
    return parts


def follows(symbol: str, cursor: int, seq: int, skipped: AbstractSet[tuple[str, int]]) -> bool:
    """Whether ``seq`` is the next event of ``symbol`` after ``cursor``: the one after it, or after records an
    operator skipped (a skipped event is never applied, so its symbol's cursor never reaches it)."""
    return all((symbol, missing) in skipped for missing in range(cursor + 1, seq))


def _order_ids(e: MatchedEvent) -> list[int]:
    ids = [u.order_id for u in e.updates]
    ids += (u.counter_order_id for u in e.updates if u.prevented_match_id >= 0)  # a prevented match's maker
    for t in e.trades:
        ids += (t.buyer_order_id, t.seller_order_id)
    return ids
