"""Postgres step of the order processor: order row and hold in one transaction per batch.

Idempotent on ``order_id``: a redelivered request finds its row and gets the decision stored there, never
a second hold or a fresh decision against a balance that has moved since. Balance rows are locked in
(user_id, asset) order, then the open-order counts in user order, the order settlement uses too, so the
two never deadlock.

A batch whose values a statement refuses (``postgres.VALUE_ERRORS``) is decided again one request at a time,
so that one request's values cannot stop its partition: the one refused alone is REJECTED (``Holds.take``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import asyncpg
from prometheus_client import Counter

from shared import errors, filters, postgres
from shared.domain import Market, OrderStatus, Side
from shared.errors import ApiError
from shared.messages import AcceptedOrder, AcceptedStop, NewListRequest, NewOrderRequest, RejectedOrder

from .validation import Hold, Spec, check, size_hold

# A batch costs two round trips, READ and WRITE, each its own transaction: at moderate rates a batch is a few orders,
# so the round trips, not the rows, are the processor's and Postgres's cost per order, and each one waits for
# Postgres to be scheduled on a busy machine (at 300 orders/s, BEGIN and COMMIT took 5 of a batch's 13 ms). READ
# takes no lock: what WRITE checks makes a stale read safe (``Holds._take``). A batch WRITE refuses is decided again
# under READ_LOCKED, in one transaction of four round trips (BEGIN, READ, WRITE, COMMIT), as is every order list.
READ = """
WITH locked AS MATERIALIZED (
    SELECT b.user_id, b.asset, b.available FROM balances b
    JOIN (SELECT DISTINCT u, a FROM unnest($2::bigint[], $5::text[]) AS k(u, a)) AS k
      ON b.user_id = k.u AND b.asset = k.a
    ORDER BY b.user_id, b.asset{lock}
), held AS (
    SELECT array_agg(user_id ORDER BY user_id, asset) AS users, array_agg(asset ORDER BY user_id, asset) AS assets,
           array_agg(available ORDER BY user_id, asset) AS available
    FROM locked
)
SELECT o.order_id IS NOT NULL AS stored, o.status, o.price_ticks, o.qty_lots, o.quote_nu, o.hold_atoms,
       o.reject_code, o.reject_reason, o.src_partition, o.src_offset, o.iceberg_lots, o.maker_fee_bps,
       o.taker_fee_bps, coalesce(f.maker_fee_bps, -1) AS tier_maker_bps,
       coalesce(f.taker_fee_bps, -1) AS tier_taker_bps,
       EXISTS (SELECT 1 FROM orders d WHERE d.user_id = t.u AND d.client_order_id = t.c) AS id_taken,
       coalesce((SELECT n.n FROM open_order_counts n WHERE n.user_id = t.u AND n.symbol = t.s), 0) AS open_orders,
       coalesce((SELECT sum(n.n) FROM open_order_counts n WHERE n.user_id = t.u), 0)::bigint AS open_orders_all,
       CASE WHEN t.i = 1 THEN (SELECT h.users FROM held h) END AS locked_users,
       CASE WHEN t.i = 1 THEN (SELECT h.assets FROM held h) END AS locked_assets,
       CASE WHEN t.i = 1 THEN (SELECT h.available FROM held h) END AS locked_available
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS t(order_id, u, c, s, i)
LEFT JOIN orders o ON o.order_id = t.order_id
LEFT JOIN users u ON u.user_id = t.u
LEFT JOIN fee_tiers f ON f.tier = u.fee_tier
ORDER BY t.i
"""
READ_LOCKED = READ.format(lock=" FOR UPDATE OF b")
READ = READ.format(lock="")
"""Per request of the batch, in order: its stored decision if it was decided before, whether its client
order id is taken, its owner's fee tier's rates (-1: the market's), and its owner's open orders on its symbol
(MAX_NUM_ORDERS) and on all (EXCHANGE_MAX_NUM_ORDERS), read without a lock: settlement only lowers a count,
so a stale one errs on the side of the cap.

On the first row, the balances the batch may hold from (``locked_*``, parallel arrays), in ``READ_LOCKED`` locked in
(user_id, asset) order, as settlement locks them (the arrays in that order too, one aggregate row, so they line up
by index): the CTEs are materialized and read by uncorrelated subqueries, so the balances are locked and read once
whatever plan Postgres caches (joined to the requests' rows, a cached generic plan once scanned the balances per
request)."""

WRITE = """
WITH o AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::bigint[],
                         $14::text[], $15::int[], $16::text[], $17::bigint[], $18::bigint[], $20::bigint[],
                         $21::bigint[], $22::bigint[], $23::int[], $24::int[], $25::bigint[], $26::bigint[],
                         $27::boolean[])
      AS o(order_id, user_id, symbol, client_order_id, side, type, tif, price_ticks, qty_lots, quote_nu, status,
           hold_asset, hold_atoms, stp, reject_code, reject_reason, src_partition, src_offset, stop_ticks,
           trailing_delta, iceberg_lots, maker_fee_bps, taker_fee_bps, hold_left, order_list_id, hold_shared)
), inserted AS (
    INSERT INTO orders (order_id, user_id, symbol, client_order_id, side, type, tif, price_ticks, qty_lots, quote_nu,
                        status, hold_asset, hold_atoms, hold_left, stp, reject_code, reject_reason, created_ts,
                        updated_ts, src_partition, src_offset, stop_ticks, trailing_delta, working_ts, iceberg_lots,
                        maker_fee_bps, taker_fee_bps, order_list_id, hold_shared)
    SELECT order_id, user_id, symbol, client_order_id, side, type, tif, price_ticks, qty_lots, quote_nu, status,
           hold_asset, hold_atoms, hold_left, stp, reject_code, reject_reason, $19, $19, src_partition, src_offset,
           stop_ticks, trailing_delta,
           CASE WHEN type IN ('STOP_LOSS', 'STOP_LOSS_LIMIT', 'TAKE_PROFIT', 'TAKE_PROFIT_LIMIT') THEN -1 ELSE 0 END,
           iceberg_lots, maker_fee_bps, taker_fee_bps, order_list_id, hold_shared
    FROM o
), held AS (
    INSERT INTO ledger (ts, kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount)
    SELECT $19, 'hold', 'order:' || order_id, hold_asset, user_id, 'available', user_id, 'held', hold_left
    FROM o WHERE status = 'NEW' AND hold_left > 0
), counted AS (
    INSERT INTO open_order_counts (user_id, symbol, n)
    SELECT user_id, symbol, count(*) FROM o WHERE status = 'NEW' GROUP BY user_id, symbol ORDER BY user_id, symbol
    ON CONFLICT (user_id, symbol) DO UPDATE SET n = open_order_counts.n + excluded.n
), h AS (
    SELECT user_id, hold_asset, sum(hold_left)::bigint AS atoms FROM o WHERE status = 'NEW' GROUP BY user_id, hold_asset
), ordered AS MATERIALIZED (
    SELECT b.user_id, b.asset FROM balances b JOIN h ON b.user_id = h.user_id AND b.asset = h.hold_asset
    ORDER BY b.user_id, b.asset FOR UPDATE OF b
)
UPDATE balances b SET available = b.available - h.atoms, held = b.held + h.atoms, updated_at = $19
FROM h JOIN ordered k ON k.user_id = h.user_id AND k.asset = h.hold_asset
WHERE b.user_id = h.user_id AND b.asset = h.hold_asset
RETURNING b.user_id, b.asset, b.available, b.held
"""
"""The batch's order rows, and from its accepted ones the hold ledger entries, the open-order counts and the
balances, in one statement: the entries and the balances come from the same
rows, so they cannot disagree. The balances are locked in (user_id, asset) order before any is changed
(``ordered``; the inserts, which no other CTE reads, run after the UPDATE), the order settlement locks them in, and
a hold that the balance no longer covers fails ``available_not_negative``, which refuses the whole statement.
``hold_atoms`` is what the order was sized to hold, ``hold_left`` what it holds:
the same, but for the legs of an OCO pair, which share one hold (the larger need, on one leg's row; 0 on the
other's, ``hold_shared``)."""

WRITE_LISTS = """
INSERT INTO order_lists (order_list_id, user_id, symbol, contingency_type, list_client_order_id, list_status_type,
                         list_order_status, transaction_time, updated_ts)
SELECT l, u, s, c, k, 'EXEC_STARTED', 'EXECUTING', t, t
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[]) AS x(l, u, s, c, k, t)
ON CONFLICT DO NOTHING
"""
"""The batch's accepted order lists, with their legs' rows (a refused list has its legs' REJECTED rows only)."""


@dataclass(slots=True)
class Located:
    """A request with where it came from, so the matcher can skip a redelivered copy; a list's leg with its
    list (``list_req``: its legs are decided together, at the list's one source position)."""

    partition: int
    offset: int
    request: NewOrderRequest
    list_req: NewListRequest | None = None


Decision = AcceptedOrder | RejectedOrder


@dataclass(slots=True)
class Decided:
    """A batch decided from what READ answered: its decisions in input order, the order ids stored before (a
    redelivery), and the rows to write (WRITE's, in its parameter order, and WRITE_LISTS')."""

    decisions: list[Decision]
    redelivered: set[int]
    fresh: list[tuple[object, ...]]
    lists: list[tuple[object, ...]]


Taken = tuple[list[Decision], list[asyncpg.Record], set[int]]  # decisions, balances changed, order ids redelivered

UNSTORABLE = "Order rejected: its values cannot be stored."
RELOCKED_TOTAL = Counter(
    "spot_processor_holds_relocked_total", "Batches whose unlocked write was refused, then decided under lock"
)
UNSTORABLE_TOTAL = Counter(
    "spot_processor_unstorable_total", "Order requests Postgres refused alone (REJECTED without a row)"
)
log = logging.getLogger(__name__)


def _accepted(
    loc: Located,
    r: NewOrderRequest,
    price_ticks: int,
    qty_lots: int,
    quote_nu: int,
    budget: int,
    iceberg_lots: int,
    rates: tuple[int, int],
    stop: tuple[int, int] = (0, 0),
) -> AcceptedOrder:
    """The accepted order; a conditional one (``stop``: its stop ticks and trailing delta) as ``AcceptedStop``.
    ``rates``: the (maker, taker) bps of its owner's fee tier, fixed on the order; -1: the market's."""
    assert r.tif is not None
    extra: dict[str, int] = {"stop_ticks": stop[0], "trailing_delta": stop[1]} if r.type.is_stop else {}
    return (AcceptedStop if r.type.is_stop else AcceptedOrder)(
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
        iceberg_lots=iceberg_lots,
        maker_bps=rates[0],
        taker_bps=rates[1],
        **extra,
    )


def rejected(
    loc: Located, r: NewOrderRequest, code: int, msg: str, price_ticks: int = 0, qty_lots: int = 0
) -> RejectedOrder:
    """The REJECTED a request gets at its source position (the processor's refusals all take this shape)."""
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
    loc = Located(row["src_partition"], row["src_offset"], r, loc.list_req)
    if row["status"] == OrderStatus.REJECTED:
        return rejected(loc, r, row["reject_code"], row["reject_reason"], row["price_ticks"], row["qty_lots"])
    assert market is not None
    unit = market.atoms_per_nu if r.side is Side.BUY else market.atoms_per_lot
    budget = row["hold_atoms"] // unit
    rates = (row["maker_fee_bps"], row["taker_fee_bps"])
    stop = filters.stop(market, r.type, r.side, r.stop_price, r.trailing_delta)  # as accepted: the tick is fixed
    return _accepted(
        loc, r, row["price_ticks"], row["qty_lots"], row["quote_nu"], budget, row["iceberg_lots"], rates, stop
    )


class Holds:
    def __init__(
        self, db: asyncpg.Pool, markets: dict[str, Market], open_orders_max: int, exchange_open_orders_max: int = 1000
    ) -> None:
        self.db = db
        self.markets = markets
        self.open_orders_max = open_orders_max  # per user and symbol (MAX_NUM_ORDERS)
        self.exchange_open_orders_max = exchange_open_orders_max  # per user (EXCHANGE_MAX_NUM_ORDERS)
        self._unstorable: list[tuple[Located, Exception]] = []
        self.averages: dict[str, Fraction | None] = {}  # the batch's markets' average prices (``averages.py``)

    def unstorable(self) -> list[tuple[Located, Exception]]:
        """The requests Postgres refused alone since the last call, with why: REJECTED here (``UNSTORABLE``),
        and for the caller to dead-letter, so an operator sees them."""
        found, self._unstorable = self._unstorable, []
        return found

    async def take(self, batch: Sequence[Located], now: int) -> Taken:
        """Decide every request of the batch and record the decisions in one transaction.

        Returns the decisions in input order, the balances the new holds changed, and the order ids decided
        before (a redelivery: their decisions are the stored ones).

        A statement that refuses the batch's values (``postgres.VALUE_ERRORS``: a number out of range, a NUL
        in a text, a CHECK constraint) would refuse them again on every redelivery, and no order behind them
        would ever be decided. The batch is then decided again one request at a time, each in its own
        transaction, and a request that is refused alone is REJECTED to its owner without a row
        (``UNSTORABLE``). A lost connection is no such error: it goes up, and the batch waits and is retried.
        """
        if not batch:
            return [], [], set()
        try:
            return await self._take(batch, now)
        except postgres.VALUE_ERRORS as exc:
            log.warning("batch of %d refused by Postgres (%s); deciding it one request at a time", len(batch), exc)
        return await self._take_each(batch, now)

    async def _take_each(self, batch: Sequence[Located], now: int) -> Taken:
        decisions: list[Decision] = []
        balances: dict[tuple[int, str], asyncpg.Record] = {}  # the last state of each balance changed
        redelivered: set[int] = set()
        decided: dict[int, Decision] = {}  # a second copy of a request gets the first's decision, as in _take
        for loc in batch:
            r = loc.request
            decision = decided.get(r.order_id)
            if decision is None:
                try:
                    (decision,), changed, again = await self._take([loc], now)
                except postgres.VALUE_ERRORS as exc:
                    log.warning("order %s of user %s refused by Postgres: %s", r.order_id, r.user_id, exc)
                    UNSTORABLE_TOTAL.inc()
                    self._unstorable.append((loc, exc))
                    decision, changed, again = rejected(loc, r, errors.NEW_ORDER_REJECTED, UNSTORABLE), [], set()
                balances.update(((b["user_id"], b["asset"]), b) for b in changed)
                redelivered |= again
                decided[r.order_id] = decision
            decisions.append(decision)
        return decisions, list(balances.values()), redelivered

    async def _take(self, batch: Sequence[Located], now: int) -> Taken:
        """The batch decided from an unlocked READ and written in one statement; or, when that WRITE refuses it or
        the batch holds an order list, under READ_LOCKED in one transaction (see ``READ``).

        An unlocked read is safe because WRITE checks what it relied on: a balance lowered meanwhile (another
        processor's hold on the same asset, a withdrawal) fails ``available_not_negative`` for a hold it no
        longer covers, and an order or client order id stored meanwhile fails its unique index; a balance raised
        meanwhile (a release) only made the decision as strict as it was a moment earlier. Holds are written
        relative to the row (``available - atoms``), so a concurrent change is never overwritten."""
        keys = self._keys(batch)
        if all(loc.list_req is None for loc in batch):
            try:
                async with postgres.timed("take_holds"), self.db.acquire() as conn:
                    decided = self._decide(batch, await conn.fetch(READ, *keys))
                    balances = await self._write(conn, decided, now)
                return decided.decisions, balances, decided.redelivered
            except (*postgres.VALUE_ERRORS, asyncpg.DeadlockDetectedError) as exc:
                RELOCKED_TOTAL.inc()
                log.info("batch of %d refused unlocked (%s); deciding it again under lock", len(batch), exc)
        async with postgres.timed("take_holds"), self.db.acquire() as conn, conn.transaction():
            decided = self._decide(batch, await conn.fetch(READ_LOCKED, *keys))
            balances = await self._write(conn, decided, now)
        return decided.decisions, balances, decided.redelivered

    def _keys(self, batch: Sequence[Located]) -> tuple[list[object], ...]:
        """READ's parameters: the batch's order ids, owners, client order ids, symbols and hold assets."""
        requests = [loc.request for loc in batch]
        return (
            [r.order_id for r in requests],
            [r.user_id for r in requests],
            [r.client_order_id for r in requests],
            [r.symbol for r in requests],
            [self._hold_asset(r) for r in requests],
        )

    @staticmethod
    async def _write(conn: asyncpg.Connection, decided: Decided, now: int) -> list[asyncpg.Record]:
        """The batch's new rows (WRITE, then WRITE_LISTS); returns the balances its holds changed."""
        balances: list[asyncpg.Record] = []
        if decided.fresh:
            columns = list(map(list, zip(*decided.fresh, strict=True)))
            balances = await conn.fetch(WRITE, *columns[:18], now, *columns[18:])
        if decided.lists:
            await conn.execute(WRITE_LISTS, *map(list, zip(*decided.lists, strict=True)))
        return balances

    def _decide(self, batch: Sequence[Located], rows: list[asyncpg.Record]) -> Decided:
        """Every request of the batch decided from READ's ``rows`` (one per request, in order); no I/O."""
        head = rows[0]
        locked = (head["locked_users"] or (), head["locked_assets"] or (), head["locked_available"] or ())
        available = {(user, asset): atoms for user, asset, atoms in zip(*locked, strict=True)}
        decisions: list[Decision] = []
        redelivered: set[int] = set()
        fresh: list[tuple[object, ...]] = []
        taken_ids: set[tuple[int, str]] = set()  # client order ids this batch has taken so far
        open_count: dict[tuple[int, str], int] = {}  # per (user, symbol)
        open_all: dict[int, int] = {}  # per user
        decided: dict[int, Decision] = {}  # this batch's fresh decisions by order id
        lists: list[tuple[object, ...]] = []  # the order_lists rows of the batch's accepted lists
        for i, (loc, row) in enumerate(zip(batch, rows, strict=True)):
            r = loc.request
            if loc.list_req is not None:  # a list's leg: decided with its list's other legs, at its first
                if r.order_id not in decided:
                    n = len(loc.list_req.legs)
                    group = list(batch[i : i + n])
                    if any(g.list_req is not loc.list_req for g in group):
                        group = [loc]  # its list was cut apart (a batch decided in parts): refused below
                    listed = self._decide_list(
                        group, rows[i : i + len(group)], available, open_count, open_all, taken_ids, fresh, lists
                    )
                    for g, d in zip(group, listed, strict=True):
                        decided[g.request.order_id] = d
                    if rows[i]["stored"]:
                        redelivered.update(g.request.order_id for g in group)
                decisions.append(decided[r.order_id])
                continue
            if row["stored"]:
                redelivered.add(r.order_id)
                decisions.append(_from_row(loc, row, self.markets.get(r.symbol)))
                continue
            first = decided.get(r.order_id)
            if first is not None:  # a second copy of a request (a producer's retry): the first's decision,
                decisions.append(first)  # at the first's position, which the matcher then skips
                continue
            open_count.setdefault((r.user_id, r.symbol), row["open_orders"])
            open_all.setdefault(r.user_id, row["open_orders_all"])
            market = self.markets.get(r.symbol)
            decision: Decision
            if row["id_taken"] or (r.user_id, r.client_order_id) in taken_ids:
                # Redis's claim on the id lapsed or was lost. The order holding the id keeps it: this one
                # gets no row (the id is unique per user), and a redelivery is refused the same way.
                decision = rejected(loc, r, errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
            else:
                price_ticks = qty_lots = 0
                try:
                    spec = check(r, market, self.averages.get(r.symbol))
                    assert market is not None
                    price_ticks, qty_lots = spec.price_ticks, spec.qty_lots
                    if open_count[(r.user_id, r.symbol)] >= self.open_orders_max:
                        raise ApiError(errors.NEW_ORDER_REJECTED, "Filter failure: MAX_NUM_ORDERS")
                    if open_all[r.user_id] >= self.exchange_open_orders_max:
                        raise ApiError(errors.NEW_ORDER_REJECTED, "Filter failure: EXCHANGE_MAX_NUM_ORDERS")
                    key = (r.user_id, spec.hold_asset)
                    hold: Hold = size_hold(spec, r.side, market, available.get(key, 0))
                except ApiError as refused:
                    decision = rejected(loc, r, refused.code, refused.msg, price_ticks, qty_lots)
                    fresh.append(self._row(loc, price_ticks, qty_lots, 0, OrderStatus.REJECTED, "", 0, refused))
                else:
                    available[key] -= hold.atoms
                    open_count[(r.user_id, r.symbol)] += 1
                    open_all[r.user_id] += 1
                    rates = (row["tier_maker_bps"], row["tier_taker_bps"])
                    stop = (spec.stop_ticks, spec.trailing_delta)
                    decision = _accepted(
                        loc, r, price_ticks, qty_lots, spec.quote_nu, hold.budget, spec.iceberg_lots, rates, stop
                    )
                    new = OrderStatus.NEW
                    fresh.append(
                        self._row(
                            loc,
                            price_ticks,
                            qty_lots,
                            spec.quote_nu,
                            new,
                            hold.asset,
                            hold.atoms,
                            stop=stop,
                            iceberg_lots=spec.iceberg_lots,
                            rates=rates,
                        )
                    )
                taken_ids.add((r.user_id, r.client_order_id))
            decided[r.order_id] = decision
            decisions.append(decision)
        return Decided(decisions, redelivered, fresh, lists)

    def _decide_list(
        self,
        group: list[Located],
        rows: list[asyncpg.Record],
        available: dict[tuple[int, str], int],
        open_count: dict[tuple[int, str], int],
        open_all: dict[int, int],
        taken_ids: set[tuple[int, str]],
        fresh: list[tuple[object, ...]],
        lists: list[tuple[object, ...]],
    ) -> list[Decision]:
        """An order list's legs, decided as one: all accepted, with their holds, or all refused with the first
        refusal (Binance refuses a list whole). Each leg is checked as a new order is; the list counts all its legs
        towards MAX_NUM_ORDERS and EXCHANGE_MAX_NUM_ORDERS. Holds: an OCO pair (an OCO's two legs, an OTOCO's
        pending two) shares one, the larger of its legs' needs, held once on the row of the leg that needs it
        (``hold_shared``; the other's ``hold_left`` is 0); an OTO's or OTOCO's working order holds its own. Each
        leg's budget is its own need, so the leg that acts can spend it once settlement has moved the pair's hold
        to it. A redelivered list gets its stored decisions."""
        lst = group[0].list_req
        assert lst is not None
        market = self.markets.get(lst.symbol)
        if rows[0]["stored"]:
            return [_from_row(loc, row, market) for loc, row in zip(group, rows, strict=True)]
        legs = [loc.request for loc in group]
        user = lst.user_id
        pairs = {"OCO": [[0, 1]], "OTO": [[0], [1]], "OTOCO": [[0], [1, 2]]}.get(lst.contingency, [])
        specs: list[Spec] = []
        shares: dict[int, tuple[Hold, int, bool]] = {}  # leg -> (its own hold, what its row holds, shared)
        trial = dict(available)
        try:
            if len(group) != len(lst.legs) or not pairs:
                raise ApiError(errors.NEW_ORDER_REJECTED, UNSTORABLE)
            for r, row in zip(legs, rows, strict=True):
                if row["id_taken"] or (r.user_id, r.client_order_id) in taken_ids:
                    raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
                specs.append(check(r, market, self.averages.get(r.symbol)))
            assert market is not None
            open_count.setdefault((user, lst.symbol), rows[0]["open_orders"])
            open_all.setdefault(user, rows[0]["open_orders_all"])
            if open_count[(user, lst.symbol)] + len(legs) > self.open_orders_max:
                raise ApiError(errors.NEW_ORDER_REJECTED, "Filter failure: MAX_NUM_ORDERS")
            if open_all[user] + len(legs) > self.exchange_open_orders_max:
                raise ApiError(errors.NEW_ORDER_REJECTED, "Filter failure: EXCHANGE_MAX_NUM_ORDERS")
            for pair in pairs:
                key = (user, specs[pair[0]].hold_asset)
                own = [size_hold(specs[k], legs[k].side, market, trial.get(key, 0)) for k in pair]
                most = max(h.atoms for h in own)
                holder = next(k for k, h in zip(pair, own, strict=True) if h.atoms == most)
                for k, h in zip(pair, own, strict=True):
                    shares[k] = (h, most if k == holder else 0, len(pair) > 1)
                trial[key] = trial.get(key, 0) - most
        except ApiError as refused:
            out: list[Decision] = []
            for k, (loc, r) in enumerate(zip(group, legs, strict=True)):
                price_ticks, qty_lots = (specs[k].price_ticks, specs[k].qty_lots) if k < len(specs) else (0, 0)
                out.append(rejected(loc, r, refused.code, refused.msg, price_ticks, qty_lots))
                fresh.append(
                    self._row(loc, price_ticks, qty_lots, 0, OrderStatus.REJECTED, "", 0, refused, list_id=lst.list_id)
                )
                taken_ids.add((r.user_id, r.client_order_id))
            return out
        available.update(trial)
        open_count[(user, lst.symbol)] += len(legs)
        open_all[user] += len(legs)
        rates = (rows[0]["tier_maker_bps"], rows[0]["tier_taker_bps"])
        accepted: list[Decision] = []
        for k, (loc, r) in enumerate(zip(group, legs, strict=True)):
            spec, (hold, held, shared) = specs[k], shares[k]
            stop = (spec.stop_ticks, spec.trailing_delta)
            accepted.append(
                _accepted(
                    loc, r, spec.price_ticks, spec.qty_lots, spec.quote_nu, hold.budget, spec.iceberg_lots, rates, stop
                )
            )
            fresh.append(
                self._row(
                    loc,
                    spec.price_ticks,
                    spec.qty_lots,
                    spec.quote_nu,
                    OrderStatus.NEW,
                    hold.asset,
                    hold.atoms,
                    stop=stop,
                    iceberg_lots=spec.iceberg_lots,
                    rates=rates,
                    hold_left=held,
                    list_id=lst.list_id,
                    shared=shared,
                )
            )
            taken_ids.add((r.user_id, r.client_order_id))
        lists.append((lst.list_id, user, lst.symbol, lst.contingency, lst.list_client_id, lst.ts))
        return accepted

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
        refused: ApiError | None = None,
        stop: tuple[int, int] = (0, 0),
        iceberg_lots: int = 0,
        rates: tuple[int, int] = (-1, -1),
        hold_left: int | None = None,
        list_id: int = -1,
        shared: bool = False,
    ) -> tuple[object, ...]:
        """The order's columns in WRITE's parameter order ($1..$18, then $20..$27: $19 is the time); ``hold_left``
        what its row holds (by default all of ``hold_atoms``), ``list_id`` and ``shared`` a list leg's."""
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
            r.stp.value,
            refused.code if refused else 0,
            refused.msg if refused else "",
            loc.partition,
            loc.offset,
            stop[0],
            stop[1],
            iceberg_lots,
            rates[0],
            rates[1],
            hold_atoms if hold_left is None else hold_left,
            list_id,
            shared,
        )


__all__ = ["Decision", "Holds", "Located"]
