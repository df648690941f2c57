"""Postgres step of the order processor: order row and hold in one transaction per batch.

Idempotent on ``order_id``: a redelivered request finds its row and gets the decision stored there, never
a second hold or a fresh decision against a balance that has moved since. Balance rows are locked in
(user_id, asset) order, then the open-order counts in user order, the order settlement uses too, so the
two never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared import errors, postgres
from shared.domain import Market, OrderStatus, Side
from shared.errors import ApiError
from shared.messages import AcceptedOrder, NewOrderRequest, RejectedOrder

from .validation import Hold, check, size_hold

# rows go in with COPY: one round trip and no per-row statement for a batch of thousands
ORDER_COLUMNS = (
    "order_id", "user_id", "symbol", "client_order_id", "side", "type", "tif", "price_ticks", "qty_lots",
    "quote_nu", "status", "hold_asset", "hold_atoms", "hold_left", "stp", "reject_code", "reject_reason",
    "created_ts", "updated_ts", "src_partition", "src_offset",
)  # fmt: skip
LEDGER_COLUMNS = ("ts", "kind", "ref", "asset", "debit_user", "debit_bucket", "credit_user", "credit_bucket", "amount")
TAKE_HOLDS = """
UPDATE balances b SET available = b.available - t.atoms, held = b.held + t.atoms, updated_at = $4
FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS t(u, a, atoms)
WHERE b.user_id = t.u AND b.asset = t.a
RETURNING b.user_id, b.asset, b.available, b.held
"""

COUNT_OPENED = """
INSERT INTO open_order_counts (user_id, n) SELECT u, k FROM unnest($1::bigint[], $2::int[]) AS t(u, k) ORDER BY u
ON CONFLICT (user_id) DO UPDATE SET n = open_order_counts.n + excluded.n
"""


@dataclass(slots=True)
class Located:
    """A request with where it came from, so the matcher can skip a redelivered copy."""

    partition: int
    offset: int
    request: NewOrderRequest


Decision = AcceptedOrder | RejectedOrder


def _accepted(
    loc: Located, r: NewOrderRequest, price_ticks: int, qty_lots: int, quote_nu: int, budget: int
) -> AcceptedOrder:
    assert r.tif is not None
    return AcceptedOrder(
        src_partition=loc.partition,
        src_offset=loc.offset,
        order_id=r.order_id,
        user_id=r.user_id,
        symbol=r.symbol,
        side=r.side,
        type=r.type,
        tif=r.tif,
        price_ticks=price_ticks,
        qty_lots=qty_lots,
        quote_nu=quote_nu,
        budget=budget,
        client_order_id=r.client_order_id,
        stp=r.stp,
        ts=r.ts,
    )


def _rejected(
    loc: Located, r: NewOrderRequest, code: int, msg: str, price_ticks: int = 0, qty_lots: int = 0
) -> RejectedOrder:
    return RejectedOrder(
        src_partition=loc.partition,
        src_offset=loc.offset,
        order_id=r.order_id,
        user_id=r.user_id,
        symbol=r.symbol,
        side=r.side,
        type=r.type,
        tif=r.tif,
        price_ticks=price_ticks,
        qty_lots=qty_lots,
        client_order_id=r.client_order_id,
        code=code,
        msg=msg,
        ts=r.ts,
    )


def _from_row(loc: Located, row: asyncpg.Record, market: Market | None) -> Decision:
    """The decision stored for a redelivered request, at the source position it was first decided at: the
    matcher deduplicates by that position (a row written before positions counted the index within a
    record holds a bare offset, which a position computed now would exceed)."""
    r = loc.request
    loc = Located(row["src_partition"], row["src_offset"], r)
    if row["status"] == OrderStatus.REJECTED:
        return _rejected(loc, r, row["reject_code"], row["reject_reason"], row["price_ticks"], row["qty_lots"])
    assert market is not None
    unit = market.atoms_per_nu if r.side is Side.BUY else market.atoms_per_lot
    return _accepted(loc, r, row["price_ticks"], row["qty_lots"], row["quote_nu"], row["hold_atoms"] // unit)


class Holds:
    def __init__(self, db: asyncpg.Pool, markets: dict[str, Market], open_orders_max: int) -> None:
        self.db = db
        self.markets = markets
        self.open_orders_max = open_orders_max

    async def take(self, batch: Sequence[Located], now: int) -> tuple[list[Decision], list[asyncpg.Record], set[int]]:
        """Decide every request of the batch and record the decisions in one transaction.

        Returns the decisions in input order, the balances the new holds changed, and the order ids decided
        before (a redelivery: their decisions are the stored ones).
        """
        if not batch:
            return [], [], set()
        async with postgres.timed("take_holds"), self.db.acquire() as conn, conn.transaction():
            ids = [loc.request.order_id for loc in batch]
            stored = {
                row["order_id"]: row
                for row in await conn.fetch(
                    "SELECT order_id, status, price_ticks, qty_lots, quote_nu, hold_atoms, reject_code, reject_reason, "
                    "src_partition, src_offset "
                    "FROM orders WHERE order_id = ANY($1::bigint[])",
                    ids,
                )
            }
            fresh = [loc for loc in batch if loc.request.order_id not in stored]
            taken_ids = {
                (row["user_id"], row["client_order_id"])
                for row in await conn.fetch(
                    "SELECT o.user_id, o.client_order_id FROM orders o "
                    "JOIN unnest($1::bigint[], $2::text[]) AS t(u, c) "
                    "ON o.user_id = t.u AND o.client_order_id = t.c",
                    [loc.request.user_id for loc in fresh],
                    [loc.request.client_order_id for loc in fresh],
                )
            }
            users = sorted({loc.request.user_id for loc in fresh})
            # read without a lock: settlement only lowers a count, so a stale one errs on the side of the cap
            open_count = {
                row["user_id"]: row["n"]
                for row in await conn.fetch(
                    "SELECT user_id, n FROM open_order_counts WHERE user_id = ANY($1::bigint[])", users
                )
            }
            wanted = sorted({(loc.request.user_id, self._hold_asset(loc.request)) for loc in fresh})
            available = {
                (row["user_id"], row["asset"]): row["available"]
                for row in await conn.fetch(
                    "SELECT b.user_id, b.asset, b.available FROM balances b "
                    "JOIN unnest($1::bigint[], $2::text[]) AS t(u, a) ON b.user_id = t.u AND b.asset = t.a "
                    "ORDER BY b.user_id, b.asset FOR UPDATE OF b",
                    [u for u, _ in wanted],
                    [a for _, a in wanted],
                )
            }

            decisions: list[Decision] = []
            order_rows, ledger_rows = [], []
            holds_by_key: dict[tuple[int, str], int] = {}
            opened: dict[int, int] = {}  # accepted orders per user
            for loc in batch:
                r = loc.request
                if r.order_id in stored:
                    decisions.append(_from_row(loc, stored[r.order_id], self.markets.get(r.symbol)))
                    continue
                market = self.markets.get(r.symbol)
                price_ticks = qty_lots = 0
                try:
                    if (r.user_id, r.client_order_id) in taken_ids:
                        raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
                    spec = check(r, market)
                    assert market is not None
                    price_ticks, qty_lots = spec.price_ticks, spec.qty_lots
                    if open_count.get(r.user_id, 0) >= self.open_orders_max:
                        raise ApiError(errors.NEW_ORDER_REJECTED, "Filter failure: MAX_NUM_ORDERS")
                    key = (r.user_id, spec.hold_asset)
                    hold: Hold = size_hold(spec, r.side, market, available.get(key, 0))
                except ApiError as refused:
                    decisions.append(_rejected(loc, r, refused.code, refused.msg, price_ticks, qty_lots))
                    order_rows.append(
                        self._row(
                            loc, price_ticks, qty_lots, 0, OrderStatus.REJECTED, "", 0, refused.code, refused.msg, now
                        )
                    )
                    taken_ids.add((r.user_id, r.client_order_id))
                    continue
                available[key] -= hold.atoms
                open_count[r.user_id] = open_count.get(r.user_id, 0) + 1
                opened[r.user_id] = opened.get(r.user_id, 0) + 1
                taken_ids.add((r.user_id, r.client_order_id))
                decisions.append(_accepted(loc, r, spec.price_ticks, spec.qty_lots, spec.quote_nu, hold.budget))
                order_rows.append(
                    self._row(
                        loc,
                        spec.price_ticks,
                        spec.qty_lots,
                        spec.quote_nu,
                        OrderStatus.NEW,
                        hold.asset,
                        hold.atoms,
                        0,
                        "",
                        now,
                    )
                )
                holds_by_key[key] = holds_by_key.get(key, 0) + hold.atoms
                ledger_rows.append(
                    (
                        now,
                        "hold",
                        f"order:{r.order_id}",
                        hold.asset,
                        r.user_id,
                        "available",
                        r.user_id,
                        "held",
                        hold.atoms,
                    )
                )
            if order_rows:
                await conn.copy_records_to_table("orders", columns=ORDER_COLUMNS, records=order_rows)
            balances: list[asyncpg.Record] = []
            if holds_by_key:
                keys = sorted(holds_by_key)
                balances = await conn.fetch(
                    TAKE_HOLDS, [k[0] for k in keys], [k[1] for k in keys], [holds_by_key[k] for k in keys], now
                )
                await conn.copy_records_to_table("ledger", columns=LEDGER_COLUMNS, records=ledger_rows)
            if opened:
                counted = sorted(opened)  # locked after the balances, in user order, as settlement does
                await conn.execute(COUNT_OPENED, counted, [opened[u] for u in counted])
        return decisions, balances, set(stored)

    def _hold_asset(self, r: NewOrderRequest) -> str:
        market = self.markets.get(r.symbol)
        if market is None:
            return ""
        return market.quote if r.side is Side.BUY else market.base

    @staticmethod
    def _row(
        loc: Located,
        price_ticks: int,
        qty_lots: int,
        quote_nu: int,
        status: OrderStatus,
        hold_asset: str,
        hold_atoms: int,
        code: int,
        reason: str,
        now: int,
    ) -> tuple[object, ...]:
        r = loc.request
        return (
            r.order_id,
            r.user_id,
            r.symbol,
            r.client_order_id,
            r.side.value,
            r.type.value,
            r.tif.value if r.tif else None,
            price_ticks,
            qty_lots,
            quote_nu,
            status.value,
            hold_asset,
            hold_atoms,
            hold_atoms,
            r.stp.value,
            code,
            reason,
            now,
            now,
            loc.partition,
            loc.offset,
        )


__all__ = ["Decision", "Holds", "Located"]
