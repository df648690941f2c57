"""Price-time priority order book of one symbol: pure, deterministic, no I/O.

``Book.apply(command, ts)`` takes one command from ``validated-orders`` and returns the ``MatchedEvent``
that describes everything it did, with the next per-symbol ``seq``; the same commands in the same order
always give the same events (trade ids and sequences included), which is what makes replays and the
Redis snapshot (``bookstore.py``) safe.

Invariants, checked by the property tests against ``tests/unit/matcher/reference_book.py``:

* the book never rests crossed (best bid < best ask);
* within a price level, orders fill in arrival order; better prices fill first;
* a BUY never spends more notional than its ``budget``; a SELL never sells more lots than its ``budget``;
* every level total equals the sum of its orders' remaining lots, and every delta reports it.

Order types: LIMIT with GTC, IOC or FOK; LIMIT_MAKER (rejected if it would take); MARKET sized by
quantity or by quote notional (``quote_nu``), which behaves as IOC. Self-trade prevention uses the taker's
mode, as Binance does. Known limit: no price band (the processor's filters bound prices).

Layout, chosen for speed in CPython (issue 7; ``bench core`` measures it): each side is a ``_Ladder``, a
dict of price levels plus a heap of their keys (best on top; bids keyed by ``-price``). A level is a FIFO
``deque`` of ``RestingOrder`` with its live total and count. A cancel leaves its order in the deque
(skipped when it reaches the front: it is no longer in ``Book._orders``) and a level emptied by a cancel
stays in the heap until it reaches the top; both are compacted once the dead outnumber the live, so
memory stays proportional to what rests. ``depth`` and the FOK pre-check sort a side's levels (O(L log L),
off the hot path). Enum members are bound to module constants (a member lookup costs ~0.1 µs on Python
3.11) and the hot path keeps its state in locals.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from heapq import heapify, heappop, heappush

import msgspec

from shared.domain import BPS, ExecType, Market, OrderStatus, OrderType, Side, StpMode, TimeInForce
from shared.messages import (
    AcceptedOrder,
    CancelOrder,
    CommandError,
    LevelDelta,
    MatchedEvent,
    MatcherCommand,
    OrderUpdate,
    RejectedOrder,
    Trade,
)

UNKNOWN_ORDER = -2011
WOULD_TAKE = -2010
COMPACT_SLACK = 32  # dead queue entries / empty levels tolerated before compacting, whatever the live count

_BUY, _SELL = Side.BUY, Side.SELL
_LIMIT, _MARKET, _LIMIT_MAKER = OrderType.LIMIT, OrderType.MARKET, OrderType.LIMIT_MAKER
_GTC, _FOK = TimeInForce.GTC, TimeInForce.FOK
_NEW, _PARTIALLY_FILLED, _FILLED = OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED
_CANCELED, _REJECTED, _EXPIRED = OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED
_EXPIRED_IN_MATCH = OrderStatus.EXPIRED_IN_MATCH
_X_NEW, _X_TRADE, _X_CANCELED = ExecType.NEW, ExecType.TRADE, ExecType.CANCELED
_X_REJECTED, _X_EXPIRED, _X_PREVENTION = ExecType.REJECTED, ExecType.EXPIRED, ExecType.TRADE_PREVENTION
_STP_NONE, _EXPIRE_TAKER = StpMode.NONE, StpMode.EXPIRE_TAKER
_EXPIRE_MAKER, _EXPIRE_BOTH = StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH
_replace = msgspec.structs.replace


class RestingOrder(msgspec.Struct, array_like=True, gc=False):
    """An open order in the book; ``arrival`` (the seq that placed it) orders a level's queue.

    Also the snapshot format (``bookstore.py``). ``gc=False``: it holds only scalars, so the collector
    need not walk the hundreds of thousands a deep book holds.
    """

    order_id: int
    user_id: int
    client_order_id: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price_ticks: int
    qty_lots: int
    remaining: int
    executed_lots: int
    cum_nu: int
    created_ts: int
    arrival: int
    stp: StpMode

    @property
    def status(self) -> OrderStatus:
        if self.remaining == 0:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED if self.executed_lots else OrderStatus.NEW



def _ended(o: RestingOrder, side: Side, price: int, status: OrderStatus, exec_type: ExecType) -> OrderUpdate:
    """The last update of a resting order taken out of the book without a fill (cancel, self-trade expiry)."""
    return OrderUpdate(
        o.order_id,
        o.user_id,
        o.client_order_id,
        side,
        o.type,
        o.tif,
        price,
        o.qty_lots,
        status=status,
        exec_type=exec_type,
        executed_lots=o.executed_lots,
        cum_nu=o.cum_nu,
        created_ts=o.created_ts,
    )

class BookState(msgspec.Struct, array_like=True):
    """Counters that must survive a restart together with the orders."""

    seq: int = 0
    next_trade_id: int = 1
    src_partition: int = -1
    src_offset: int = -1


class _Level:
    """One price level: orders in arrival order (cancelled ones linger until skipped), live lots and count."""

    __slots__ = ("live", "lots", "price", "queue")

    def __init__(self, price: int) -> None:
        self.price = price
        self.lots = 0
        self.live = 0
        self.queue: deque[RestingOrder] = deque()


class _Ladder:
    """One side's levels: ``levels`` by price, ``heap`` of their keys (``sign * price``, best on top).

    Both hold the same prices; ``empty`` counts levels whose last order left by a cancel or a fill and that
    wait to be popped at the top (or compacted).
    """

    __slots__ = ("empty", "heap", "levels", "side", "sign")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.sign = -1 if side is _BUY else 1
        self.levels: dict[int, _Level] = {}
        self.heap: list[int] = []
        self.empty = 0

    def best(self) -> _Level | None:
        """The best level with an order in it, popping emptied levels off the top."""
        heap, levels = self.heap, self.levels
        while heap:
            level = levels[heap[0] * self.sign]
            if level.live:
                return level
            heappop(heap)
            del levels[level.price]
            self.empty -= 1
        return None

    def sorted_levels(self) -> list[_Level]:
        """Levels with orders, best first (a sort: for depth, FOK checks and snapshots, not the hot path)."""
        sign, levels = self.sign, self.levels
        return [lv for lv in (levels[key * sign] for key in sorted(self.heap)) if lv.live]

    def level_emptied(self, level: _Level) -> None:
        """Count a level whose last order left; rebuild the side once emptied levels outnumber live ones."""
        level.queue.clear()  # only cancelled orders can be left in it
        self.empty += 1
        if self.empty > COMPACT_SLACK and 2 * self.empty > len(self.levels):
            self.levels = {p: lv for p, lv in self.levels.items() if lv.live}
            self.heap = [p * self.sign for p in self.levels]
            heapify(self.heap)
            self.empty = 0


class Book:
    def __init__(self, market: Market, state: BookState | None = None) -> None:
        self.market = market
        self.state = state or BookState()
        self._symbol = market.symbol
        self._bids, self._asks = _Ladder(_BUY), _Ladder(_SELL)
        self._orders: dict[int, RestingOrder] = {}
        # fee arithmetic of Market.fee_atoms, folded per taker side: fee = lots * k // BPS (base, buyer)
        # or nu * k // BPS (quote, seller); Market is frozen, so these never go stale
        apl, apn = market.atoms_per_lot, market.atoms_per_nu
        mk, tk = market.maker_fee_bps, market.taker_fee_bps
        self._buyer_k = {_BUY: apl * tk, _SELL: apl * mk}  # by taker side
        self._seller_k = {_BUY: apn * mk, _SELL: apn * tk}

    # --- queries ---------------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        level = self._bids.best()
        return None if level is None else level.price

    def best_ask(self) -> int | None:
        level = self._asks.best()
        return None if level is None else level.price

    def order(self, order_id: int) -> RestingOrder | None:
        return self._orders.get(order_id)

    def orders(self) -> Iterator[RestingOrder]:
        return iter(self._orders.values())

    def depth(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """(price_ticks, lots) best-first."""
        levels = (self._bids if side is _BUY else self._asks).sorted_levels()
        if limit is not None:
            levels = levels[: max(1, limit)]  # at least the best level, as it always answered
        return [(lv.price, lv.lots) for lv in levels]

    def state_hash(self) -> int:
        """A hash of what the book holds, independent of how it is stored."""
        rows = tuple(
            (o.side, o.price_ticks, o.arrival, o.order_id, o.remaining, o.executed_lots, o.cum_nu)
            for o in sorted(self._orders.values(), key=lambda o: (o.side, o.price_ticks, o.arrival))
        )
        digest = hashlib.blake2b(
            msgspec.msgpack.encode((rows, self.state.seq, self.state.next_trade_id)), digest_size=8
        )
        return int.from_bytes(digest.digest(), "big", signed=True)  # the same in every process, unlike hash()

    # --- restore -----------------------------------------------------------------------------------------
    def restore(self, orders: list[RestingOrder]) -> None:
        """Rebuild from a snapshot; orders may come in any order, ``arrival`` restores the queues."""
        for o in sorted(orders, key=lambda o: o.arrival):
            self._rest(o)

    # --- commands ------------------------------------------------------------------------------------------
    def is_duplicate(self, command: MatcherCommand) -> bool:
        """A redelivered command: its source position is not past the last one applied."""
        s = self.state
        return (command.src_partition, command.src_offset) <= (s.src_partition, s.src_offset)

    def apply(self, command: MatcherCommand, ts: int) -> MatchedEvent | None:
        """Apply one command; ``None`` if it was already applied (a redelivery)."""
        s = self.state
        partition, offset = command.src_partition, command.src_offset
        if partition < s.src_partition or (partition == s.src_partition and offset <= s.src_offset):
            return None
        s.src_partition, s.src_offset = partition, offset
        seq = s.seq = s.seq + 1
        if isinstance(command, AcceptedOrder):
            return self._place(command, ts, seq)
        if isinstance(command, CancelOrder):
            return self._cancel(command, ts, seq)
        return self._reject(command, ts, seq)

    def _reject(self, r: RejectedOrder, ts: int, seq: int) -> MatchedEvent:
        update = OrderUpdate(
            order_id=r.order_id,
            user_id=r.user_id,
            client_order_id=r.client_order_id,
            side=r.side,
            type=r.type,
            tif=r.tif,
            price_ticks=r.price_ticks,
            qty_lots=r.qty_lots,
            status=_REJECTED,
            exec_type=_X_REJECTED,
            created_ts=r.ts,
            reject_code=r.code,
            reason=r.msg,
        )
        return MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=r.order_id, updates=[update])

    def _cancel(self, c: CancelOrder, ts: int, seq: int) -> MatchedEvent:
        o = self._orders.get(c.order_id)
        if o is None or o.user_id != c.user_id:
            error = CommandError(user_id=c.user_id, order_id=c.order_id, code=UNKNOWN_ORDER, msg="Unknown order sent.")
            return MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c.request_id, error=error)
        side, price = o.side, o.price_ticks
        ladder = self._bids if side is _BUY else self._asks
        level = ladder.levels[price]
        del self._orders[o.order_id]  # its queue entry is now dead: skipped at the front, or compacted
        level.lots -= o.remaining
        level.live -= 1
        if not level.live:
            ladder.level_emptied(level)
        elif len(level.queue) > 2 * level.live + COMPACT_SLACK:
            orders = self._orders
            level.queue = deque([q for q in level.queue if orders.get(q.order_id) is q])
        update = _ended(o, side, price, _CANCELED, _X_CANCELED)
        return MatchedEvent(  # fields left out take their defaults: fresh empty lists, no error
            symbol=self._symbol,
            seq=seq,
            ts=ts,
            request_id=c.request_id,
            updates=[update],
            deltas=[LevelDelta(side, price, level.lots)],
        )

    def _place(self, a: AcceptedOrder, ts: int, seq: int) -> MatchedEvent:
        side, otype, tif, limit = a.side, a.type, a.tif, a.price_ticks
        is_buy, is_market = side is _BUY, otype is _MARKET
        new = OrderUpdate(
            a.order_id,
            a.user_id,
            a.client_order_id,
            side,
            otype,
            None if is_market else tif,
            limit,
            a.qty_lots,
            quote_nu=a.quote_nu,
            status=_NEW,
            exec_type=_X_NEW,
            created_ts=a.ts,
        )
        opposite = self._asks if is_buy else self._bids
        heap = opposite.heap
        best = opposite.levels[heap[0] * opposite.sign] if heap else None
        if best is not None and not best.live:
            best = opposite.best()
        if best is not None and (is_market or (best.price <= limit if is_buy else best.price >= limit)):
            return self._take(a, ts, seq, new, opposite)
        if is_market or tif is not _GTC:  # IOC, FOK or MARKET with nothing to take: expires untouched
            return MatchedEvent(
                symbol=self._symbol,
                seq=seq,
                ts=ts,
                request_id=a.order_id,
                updates=[new, _replace(new, status=_EXPIRED, exec_type=_X_EXPIRED)],
            )
        # the common case, a passive GTC order: _rest, inlined
        remaining = a.qty_lots or -1  # -1: sized by quote
        o = RestingOrder(
            a.order_id,
            a.user_id,
            a.client_order_id,
            side,
            otype,
            tif,
            limit,
            a.qty_lots,
            remaining,
            0,
            0,
            a.ts,
            seq,
            a.stp,
        )
        own = self._bids if is_buy else self._asks
        level = own.levels.get(limit)
        if level is None:
            level = own.levels[limit] = _Level(limit)
            heappush(own.heap, limit * own.sign)
        elif not level.live:
            own.empty -= 1
        level.queue.append(o)
        level.live += 1
        level.lots += remaining
        self._orders[a.order_id] = o
        return MatchedEvent(
            symbol=self._symbol,
            seq=seq,
            ts=ts,
            request_id=a.order_id,
            updates=[new],
            deltas=[LevelDelta(side, limit, level.lots)],
        )

    def _take(self, a: AcceptedOrder, ts: int, seq: int, new: OrderUpdate, opposite: _Ladder) -> MatchedEvent:
        """An order that crosses the book: match what it can, then expire or rest the rest."""
        updates = [new]
        trades: list[Trade] = []
        deltas: list[LevelDelta] = []
        if a.type is _LIMIT_MAKER:
            rejected = _replace(
                new,
                status=_REJECTED,
                exec_type=_X_REJECTED,
                reject_code=WOULD_TAKE,
                reason="Order would immediately match and take.",
            )
            updates = [rejected]
        elif a.tif is _FOK and a.type is _LIMIT and not self._fillable(a, opposite):
            updates.append(_replace(new, status=_EXPIRED, exec_type=_X_EXPIRED))
        else:
            remaining, executed, cum_nu, stp_expired = self._match(a, ts, opposite, new, updates, trades, deltas)
            if remaining == 0:  # done (a quote-sized taker that completed reports remaining 0 too)
                pass
            elif stp_expired:
                updates.append(
                    _replace(
                        new, status=_EXPIRED_IN_MATCH, exec_type=_X_PREVENTION, executed_lots=executed, cum_nu=cum_nu
                    )
                )
            elif a.type is _MARKET or a.tif is not _GTC:
                updates.append(
                    _replace(new, status=_EXPIRED, exec_type=_X_EXPIRED, executed_lots=executed, cum_nu=cum_nu)
                )
            else:
                o = RestingOrder(
                    a.order_id,
                    a.user_id,
                    a.client_order_id,
                    a.side,
                    a.type,
                    a.tif,
                    a.price_ticks,
                    a.qty_lots,
                    remaining,
                    executed,
                    cum_nu,
                    a.ts,
                    seq,
                    a.stp,
                )
                deltas.append(LevelDelta(a.side, a.price_ticks, self._rest(o)))
        return MatchedEvent(
            symbol=self._symbol,
            seq=seq,
            ts=ts,
            request_id=a.order_id,
            updates=updates,
            trades=trades,
            deltas=deltas,
        )

    # --- matching ------------------------------------------------------------------------------------------
    def _fillable(self, a: AcceptedOrder, opposite: _Ladder) -> bool:
        """FOK pre-check: could the whole quantity fill without expiring the taker?"""
        is_buy = a.side is _BUY
        need = a.qty_lots or -1
        budget = a.budget
        orders = self._orders
        for level in opposite.sorted_levels():
            price = level.price
            if price > a.price_ticks if is_buy else price < a.price_ticks:
                return False
            for o in level.queue:
                if orders.get(o.order_id) is not o:
                    continue  # cancelled
                if o.user_id == a.user_id and a.stp is not _STP_NONE:
                    if a.stp is _EXPIRE_MAKER:
                        continue
                    return False
                lots = min(need, o.remaining)
                if is_buy:
                    lots = min(lots, budget // price)
                    budget -= lots * price
                need -= lots
                if need == 0:
                    return True
        return False

    def _match(
        self,
        a: AcceptedOrder,
        ts: int,
        opposite: _Ladder,
        new: OrderUpdate,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: list[LevelDelta],
    ) -> tuple[int, int, int, bool]:
        """Fill ``a`` against ``opposite`` best-first, appending what happened.

        Returns (remaining, executed lots, cumulative notional, expired by self-trade prevention); remaining
        is 0 once the taker is done, including a quote-sized one whose quote no longer buys one more lot.
        """
        is_buy, is_market, limit, stp = a.side is _BUY, a.type is _MARKET, a.price_ticks, a.stp
        uid, taker_id = a.user_id, a.order_id
        stp_on = stp is not _STP_NONE
        expire_maker = stp is _EXPIRE_MAKER or stp is _EXPIRE_BOTH
        expire_taker = stp is _EXPIRE_TAKER or stp is _EXPIRE_BOTH
        remaining = a.qty_lots or -1  # -1: sized by quote
        quote_left, budget = a.quote_nu, a.budget
        executed = cum_nu = 0
        stop = completed_late = stp_expired = False
        orders = self._orders
        state = self.state
        trade_id = state.next_trade_id
        buyer_k, seller_k = self._buyer_k[a.side], self._seller_k[a.side]
        maker_side = opposite.side
        buyer_is_maker = not is_buy
        append_update, append_trade = updates.append, trades.append
        touched: list[_Level] = []
        level = opposite.best()
        while level is not None:
            price = level.price
            if not is_market and (price > limit if is_buy else price < limit):
                break
            queue = level.queue
            touched_here = False
            while True:
                maker = queue[0]
                if orders.get(maker.order_id) is not maker:
                    queue.popleft()  # cancelled while it waited
                    continue
                mrem = maker.remaining
                if stp_on and maker.user_id == uid:
                    if expire_maker:
                        queue.popleft()
                        del orders[maker.order_id]
                        level.lots -= mrem
                        level.live -= 1
                        if not touched_here:
                            touched.append(level)
                            touched_here = True
                        append_update(_ended(maker, maker_side, price, _EXPIRED_IN_MATCH, _X_PREVENTION))
                    if expire_taker:
                        stp_expired = stop = True
                        break
                    if not level.live:
                        break
                    continue
                # how many lots the taker can take here: its size, budget and quote all bound it
                lots = mrem if remaining < 0 or mrem < remaining else remaining
                if is_buy:
                    cap = budget // price
                    if cap < lots:
                        lots = cap
                elif budget < lots:
                    lots = budget
                if quote_left:
                    cap = quote_left // price
                    if cap < lots:
                        lots = cap
                if lots == 0:
                    if remaining < 0 and executed and quote_left // price == 0:
                        completed_late = True  # its quote no longer buys a lot: it is complete
                    stop = True
                    break
                nu = price * lots
                executed += lots
                cum_nu += nu
                if remaining > 0:
                    remaining -= lots
                if quote_left:
                    quote_left -= nu
                    if quote_left == 0:
                        remaining = 0
                budget -= nu if is_buy else lots
                mrem -= lots
                maker.remaining = mrem
                maker.executed_lots += lots
                maker.cum_nu += nu
                level.lots -= lots
                if not touched_here:
                    touched.append(level)
                    touched_here = True
                buyer_fee = lots * buyer_k // BPS
                seller_fee = nu * seller_k // BPS
                if buyer_is_maker:
                    maker_fee, taker_fee = buyer_fee, seller_fee
                    append_trade(
                        Trade(
                            trade_id,
                            price,
                            lots,
                            maker.order_id,
                            taker_id,
                            maker.user_id,
                            uid,
                            True,
                            buyer_fee,
                            seller_fee,
                            ts,
                        )
                    )
                else:
                    maker_fee, taker_fee = seller_fee, buyer_fee
                    append_trade(
                        Trade(
                            trade_id,
                            price,
                            lots,
                            taker_id,
                            maker.order_id,
                            uid,
                            maker.user_id,
                            False,
                            buyer_fee,
                            seller_fee,
                            ts,
                        )
                    )
                if mrem == 0:
                    queue.popleft()
                    del orders[maker.order_id]
                    level.live -= 1
                append_update(
                    OrderUpdate(  # 18 fields: eight positional keep it off CPython's slow path for 16+ keywords
                        maker.order_id,
                        maker.user_id,
                        maker.client_order_id,
                        maker_side,
                        maker.type,
                        maker.tif,
                        price,
                        maker.qty_lots,
                        status=_PARTIALLY_FILLED if mrem else _FILLED,
                        exec_type=_X_TRADE,
                        executed_lots=maker.executed_lots,
                        cum_nu=maker.cum_nu,
                        created_ts=maker.created_ts,
                        last_lots=lots,
                        last_ticks=price,
                        trade_id=trade_id,
                        is_maker=True,
                        fee=maker_fee,
                    )
                )
                stop = remaining == 0
                append_update(
                    _replace(
                        new,
                        status=_FILLED if stop else _PARTIALLY_FILLED,
                        exec_type=_X_TRADE,
                        executed_lots=executed,
                        cum_nu=cum_nu,
                        last_lots=lots,
                        last_ticks=price,
                        trade_id=trade_id,
                        fee=taker_fee,
                    )
                )
                trade_id += 1
                if stop or not level.live:
                    break
            if not level.live:
                opposite.level_emptied(level)
            if stop:
                break
            level = opposite.best()
        state.next_trade_id = trade_id
        for lv in touched:
            deltas.append(LevelDelta(maker_side, lv.price, lv.lots))
        if completed_late:
            # its last fill is the one that completed it, even if self-trade prevention expired makers after
            for i in range(len(updates) - 1, 0, -1):
                last = updates[i]
                if last.order_id == taker_id:
                    if last.exec_type is _X_TRADE and last.status is not _FILLED:
                        updates[i] = _replace(last, status=_FILLED)
                    break
            remaining = 0
        return remaining, executed, cum_nu, stp_expired

    # --- book maintenance ------------------------------------------------------------------------------
    def _rest(self, o: RestingOrder) -> int:
        """Queue ``o`` at the back of its level; returns the level's new total."""
        price = o.price_ticks
        ladder = self._bids if o.side is _BUY else self._asks
        level = ladder.levels.get(price)
        if level is None:
            level = ladder.levels[price] = _Level(price)
            heappush(ladder.heap, price * ladder.sign)
        elif not level.live:
            ladder.empty -= 1
        level.queue.append(o)
        level.live += 1
        level.lots += o.remaining
        self._orders[o.order_id] = o
        return level.lots
