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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import msgspec
from sortedcontainers import SortedDict

from shared.domain import ExecType, Market, OrderStatus, OrderType, Side, StpMode, TimeInForce
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


class RestingOrder(msgspec.Struct, array_like=True):
    """An open order in the book; ``arrival`` (the seq that placed it) orders a level's queue."""

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


class BookState(msgspec.Struct, array_like=True):
    """Counters that must survive a restart together with the orders."""

    seq: int = 0
    next_trade_id: int = 1
    src_partition: int = -1
    src_offset: int = -1


class _Taker:
    """Working state of the incoming order while it matches (not part of the book)."""

    __slots__ = ("budget_left", "cum_nu", "executed", "new", "order", "quote_filled", "quote_left", "remaining")

    def __init__(self, order: AcceptedOrder, new: OrderUpdate) -> None:
        self.order = order
        self.new = new  # its NEW update: every later update of the taker is this one, moved on
        self.remaining = order.qty_lots if order.qty_lots else -1  # -1: sized by quote
        self.quote_left = order.quote_nu
        self.budget_left = order.budget
        self.executed = 0
        self.cum_nu = 0
        self.quote_filled = False  # a quote-sized order whose quote no longer buys/sells one more lot

    def lots_at(self, price: int, level_lots: int) -> int:
        """How many lots this taker can take at ``price`` from an order of ``level_lots``."""
        o = self.order
        lots = level_lots if self.remaining < 0 else min(level_lots, self.remaining)
        if o.side is Side.BUY:
            lots = min(lots, self.budget_left // price)
            if self.quote_left:
                lots = min(lots, self.quote_left // price)
        else:
            lots = min(lots, self.budget_left)
            if self.quote_left:
                lots = min(lots, self.quote_left // price)
        return lots

    def take(self, price: int, lots: int) -> None:
        nu = price * lots
        self.executed += lots
        self.cum_nu += nu
        if self.remaining > 0:
            self.remaining -= lots
        if self.quote_left:
            self.quote_left -= nu
            self.quote_filled = self.quote_left == 0
        self.budget_left -= nu if self.order.side is Side.BUY else lots

    @property
    def done(self) -> bool:
        return self.remaining == 0 or self.quote_filled

    def status(self, terminal: OrderStatus) -> OrderStatus:
        if self.done:
            return OrderStatus.FILLED
        return terminal


class Book:
    def __init__(self, market: Market, state: BookState | None = None) -> None:
        self.market = market
        self.state = state or BookState()
        # price -> {order_id: order} in arrival order; bids keyed by -price so both iterate best-first
        self._levels: dict[Side, SortedDict] = {Side.BUY: SortedDict(), Side.SELL: SortedDict()}
        self._lots: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        self._orders: dict[int, RestingOrder] = {}

    # --- queries ---------------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        levels = self._levels[Side.BUY]
        return -levels.peekitem(0)[0] if levels else None

    def best_ask(self) -> int | None:
        levels = self._levels[Side.SELL]
        return levels.peekitem(0)[0] if levels else None

    def order(self, order_id: int) -> RestingOrder | None:
        return self._orders.get(order_id)

    def orders(self) -> Iterator[RestingOrder]:
        return iter(self._orders.values())

    def depth(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """(price_ticks, lots) best-first."""
        out = []
        for key in self._levels[side]:
            price = -key if side is Side.BUY else key
            out.append((price, self._lots[side][price]))
            if limit is not None and len(out) >= limit:
                break
        return out

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
        if self.is_duplicate(command):
            return None
        self.state.src_partition, self.state.src_offset = command.src_partition, command.src_offset
        self.state.seq += 1
        if isinstance(command, AcceptedOrder):
            return self._place(command, ts)
        if isinstance(command, CancelOrder):
            return self._cancel(command, ts)
        return self._reject(command, ts)

    def _event(
        self,
        command: MatcherCommand,
        ts: int,
        updates: list[OrderUpdate] | None = None,
        trades: list[Trade] | None = None,
        deltas: list[LevelDelta] | None = None,
        error: CommandError | None = None,
    ) -> MatchedEvent:
        return MatchedEvent(
            symbol=self.market.symbol,
            seq=self.state.seq,
            ts=ts,
            request_id=command.request_id,
            updates=updates or [],
            trades=trades or [],
            deltas=deltas or [],
            error=error,
        )

    def _reject(self, r: RejectedOrder, ts: int) -> MatchedEvent:
        update = OrderUpdate(
            order_id=r.order_id,
            user_id=r.user_id,
            client_order_id=r.client_order_id,
            side=r.side,
            type=r.type,
            tif=r.tif,
            price_ticks=r.price_ticks,
            qty_lots=r.qty_lots,
            status=OrderStatus.REJECTED,
            exec_type=ExecType.REJECTED,
            created_ts=r.ts,
            reject_code=r.code,
            reason=r.msg,
        )
        return self._event(r, ts, updates=[update])

    def _cancel(self, c: CancelOrder, ts: int) -> MatchedEvent:
        o = self._orders.get(c.order_id)
        if o is None or o.user_id != c.user_id:
            error = CommandError(user_id=c.user_id, order_id=c.order_id, code=UNKNOWN_ORDER, msg="Unknown order sent.")
            return self._event(c, ts, error=error)
        deltas: dict[tuple[Side, int], int] = {}
        self._remove(o, deltas)
        update = self._update(o, OrderStatus.CANCELED, ExecType.CANCELED)
        return self._event(c, ts, updates=[update], deltas=self._deltas(deltas))

    def _place(self, a: AcceptedOrder, ts: int) -> MatchedEvent:
        updates: list[OrderUpdate] = []
        trades: list[Trade] = []
        deltas: dict[tuple[Side, int], int] = {}
        new = OrderUpdate(
            order_id=a.order_id,
            user_id=a.user_id,
            client_order_id=a.client_order_id,
            side=a.side,
            type=a.type,
            tif=None if a.type is OrderType.MARKET else a.tif,
            price_ticks=a.price_ticks,
            qty_lots=a.qty_lots,
            quote_nu=a.quote_nu,
            status=OrderStatus.NEW,
            exec_type=ExecType.NEW,
            created_ts=a.ts,
        )
        taker = _Taker(a, new)
        if a.type is OrderType.LIMIT_MAKER and self._crosses(a.side, a.price_ticks):
            rejected = msgspec.structs.replace(
                new,
                status=OrderStatus.REJECTED,
                exec_type=ExecType.REJECTED,
                reject_code=WOULD_TAKE,
                reason="Order would immediately match and take.",
            )
            return self._event(a, ts, updates=[rejected])
        updates.append(new)
        if a.tif is TimeInForce.FOK and a.type is OrderType.LIMIT and not self._fillable(taker):
            updates.append(msgspec.structs.replace(new, status=OrderStatus.EXPIRED, exec_type=ExecType.EXPIRED))
            return self._event(a, ts, updates=updates)

        expired_in_match = self._match(taker, ts, updates, trades, deltas)
        if taker.done:
            # a quote-sized order learns it is complete only when the next lot no longer fits, possibly after
            # self-trade prevention expired a maker: its last fill is the one that completed it
            for i in range(len(updates) - 1, 0, -1):
                last = updates[i]
                if last.order_id == a.order_id:
                    if last.exec_type is ExecType.TRADE and last.status is not OrderStatus.FILLED:
                        updates[i] = msgspec.structs.replace(last, status=OrderStatus.FILLED)
                    break
        if expired_in_match:
            if not taker.done:
                updates.append(self._taker_update(new, taker, OrderStatus.EXPIRED_IN_MATCH, ExecType.TRADE_PREVENTION))
        elif not taker.done:
            if a.type is OrderType.MARKET or a.tif is not TimeInForce.GTC:
                updates.append(self._taker_update(new, taker, OrderStatus.EXPIRED, ExecType.EXPIRED))
            else:
                self._rest(
                    RestingOrder(
                        order_id=a.order_id,
                        user_id=a.user_id,
                        client_order_id=a.client_order_id,
                        side=a.side,
                        type=a.type,
                        tif=a.tif,
                        price_ticks=a.price_ticks,
                        qty_lots=a.qty_lots,
                        remaining=taker.remaining,
                        executed_lots=taker.executed,
                        cum_nu=taker.cum_nu,
                        created_ts=a.ts,
                        arrival=self.state.seq,
                        stp=a.stp,
                    ),
                    deltas,
                )
        return self._event(a, ts, updates=updates, trades=trades, deltas=self._deltas(deltas))

    # --- matching ------------------------------------------------------------------------------------------
    def _crosses(self, side: Side, price: int) -> bool:
        if side is Side.BUY:
            ask = self.best_ask()
            return ask is not None and ask <= price
        bid = self.best_bid()
        return bid is not None and bid >= price

    def _acceptable(self, a: AcceptedOrder, maker_price: int) -> bool:
        if a.type is OrderType.MARKET:
            return True
        return maker_price <= a.price_ticks if a.side is Side.BUY else maker_price >= a.price_ticks

    def _opposite(self, side: Side) -> Iterator[tuple[int, dict[int, RestingOrder]]]:
        """Opposite levels best-first as (price, queue); safe while levels are removed as we go."""
        levels = self._levels[side.opposite]
        while levels:
            key, queue = levels.peekitem(0)
            yield (-key if side is Side.SELL else key), queue

    def _fillable(self, taker: _Taker) -> bool:
        """FOK pre-check: could the whole quantity fill without expiring the taker?"""
        a = taker.order
        need = taker.remaining
        budget = taker.budget_left
        for key, queue in self._levels[a.side.opposite].items():
            price = -key if a.side is Side.SELL else key
            if not self._acceptable(a, price):
                return False
            for o in queue.values():
                if o.user_id == a.user_id and a.stp is not StpMode.NONE:
                    if a.stp is StpMode.EXPIRE_MAKER:
                        continue
                    return False
                lots = min(need, o.remaining)
                if a.side is Side.BUY:
                    lots = min(lots, budget // price)
                    budget -= lots * price
                need -= lots
                if need == 0:
                    return True
        return False

    def _match(
        self,
        taker: _Taker,
        ts: int,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: dict[tuple[Side, int], int],
    ) -> bool:
        """Fill ``taker`` against the opposite side; True if self-trade prevention expired the taker."""
        a = taker.order
        m = self.market
        for price, queue in self._opposite(a.side):
            if taker.done or not self._acceptable(a, price):
                return False
            while queue:
                maker = next(iter(queue.values()))
                if maker.user_id == a.user_id and a.stp is not StpMode.NONE:
                    if a.stp in (StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH):
                        self._remove(maker, deltas)
                        updates.append(self._update(maker, OrderStatus.EXPIRED_IN_MATCH, ExecType.TRADE_PREVENTION))
                    if a.stp in (StpMode.EXPIRE_TAKER, StpMode.EXPIRE_BOTH):
                        return True
                    continue
                lots = taker.lots_at(price, maker.remaining)
                if lots == 0:
                    if taker.remaining < 0 and taker.executed and taker.quote_left // price == 0:
                        taker.quote_filled = True
                    return False
                taker.take(price, lots)
                nu = price * lots
                maker.remaining -= lots
                maker.executed_lots += lots
                maker.cum_nu += nu
                side_lots = self._lots[maker.side]
                side_lots[price] -= lots
                deltas[(maker.side, price)] = side_lots[price]
                trade_id = self.state.next_trade_id
                self.state.next_trade_id += 1
                buyer_is_maker = maker.side is Side.BUY
                base_atoms, quote_atoms = lots * m.atoms_per_lot, nu * m.atoms_per_nu
                buyer_fee = m.fee_atoms(base_atoms, buyer_is_maker)
                seller_fee = m.fee_atoms(quote_atoms, not buyer_is_maker)
                buyer, seller = (maker, a) if buyer_is_maker else (a, maker)
                trades.append(
                    Trade(
                        trade_id=trade_id,
                        price_ticks=price,
                        qty_lots=lots,
                        buyer_order_id=buyer.order_id,
                        seller_order_id=seller.order_id,
                        buyer_user_id=buyer.user_id,
                        seller_user_id=seller.user_id,
                        buyer_is_maker=buyer_is_maker,
                        buyer_fee=buyer_fee,
                        seller_fee=seller_fee,
                        ts=ts,
                    )
                )
                maker_fee, taker_fee = (buyer_fee, seller_fee) if buyer_is_maker else (seller_fee, buyer_fee)
                if maker.remaining == 0:
                    self._remove(maker, deltas)
                updates.append(
                    self._update(maker, maker.status, ExecType.TRADE, lots, price, trade_id, True, maker_fee)
                )
                updates.append(
                    msgspec.structs.replace(
                        taker.new,
                        status=taker.status(OrderStatus.PARTIALLY_FILLED),
                        exec_type=ExecType.TRADE,
                        executed_lots=taker.executed,
                        cum_nu=taker.cum_nu,
                        last_lots=lots,
                        last_ticks=price,
                        trade_id=trade_id,
                        fee=taker_fee,
                    )
                )
                if taker.done:
                    return False
        return False

    # --- book maintenance ------------------------------------------------------------------------------
    def _rest(self, o: RestingOrder, deltas: dict[tuple[Side, int], int] | None = None) -> None:
        key = -o.price_ticks if o.side is Side.BUY else o.price_ticks
        levels = self._levels[o.side]
        queue = levels.get(key)
        if queue is None:
            queue = levels[key] = {}
        queue[o.order_id] = o
        side_lots = self._lots[o.side]
        side_lots[o.price_ticks] = side_lots.get(o.price_ticks, 0) + o.remaining
        self._orders[o.order_id] = o
        if deltas is not None:
            deltas[(o.side, o.price_ticks)] = side_lots[o.price_ticks]

    def _remove(self, o: RestingOrder, deltas: dict[tuple[Side, int], int]) -> None:
        key = -o.price_ticks if o.side is Side.BUY else o.price_ticks
        levels = self._levels[o.side]
        queue = levels[key]
        del queue[o.order_id]
        del self._orders[o.order_id]
        side_lots = self._lots[o.side]
        left = side_lots[o.price_ticks] - o.remaining
        if queue:
            side_lots[o.price_ticks] = left
        else:
            del levels[key]
            del side_lots[o.price_ticks]
            left = 0
        deltas[(o.side, o.price_ticks)] = left

    @staticmethod
    def _deltas(changed: dict[tuple[Side, int], int]) -> list[LevelDelta]:
        return [LevelDelta(side, price, lots) for (side, price), lots in changed.items()]

    @staticmethod
    def _update(
        o: RestingOrder,
        status: OrderStatus,
        exec_type: ExecType,
        last_lots: int = 0,
        last_ticks: int = 0,
        trade_id: int = -1,
        is_maker: bool = False,
        fee: int = 0,
    ) -> OrderUpdate:
        return OrderUpdate(
            order_id=o.order_id,
            user_id=o.user_id,
            client_order_id=o.client_order_id,
            side=o.side,
            type=o.type,
            tif=o.tif,
            price_ticks=o.price_ticks,
            qty_lots=o.qty_lots,
            status=status,
            exec_type=exec_type,
            executed_lots=o.executed_lots,
            cum_nu=o.cum_nu,
            created_ts=o.created_ts,
            last_lots=last_lots,
            last_ticks=last_ticks,
            trade_id=trade_id,
            is_maker=is_maker,
            fee=fee,
        )

    @staticmethod
    def _taker_update(new: OrderUpdate, taker: _Taker, status: OrderStatus, exec_type: ExecType) -> OrderUpdate:
        return msgspec.structs.replace(
            new, status=status, exec_type=exec_type, executed_lots=taker.executed, cum_nu=taker.cum_nu
        )
