"""A slow, obviously-right model of ``services/matcher/book.py``, for the property tests only.

Everything the fast book caches is recomputed here by a linear scan of one plain list:

* ``self.resting`` holds the open orders in arrival order; nothing else is stored about them;
* the next maker is the best-priced opposite order, ties broken by arrival (``_next_maker``);
* a level's total is the sum of its orders' remaining lots, computed when a delta is reported;
* a taker's remaining quantity, quote and budget are derived from what it executed so far, never decremented;
* FOK is "all or nothing" taken literally: the match is tried on a deep copy and kept only if it filled.

Semantics (the contract ``Book.apply`` must meet, in Binance's terms):

* a command whose ``(src_partition, src_offset)`` is not past the last one applied is a redelivery: ``None``;
  every other command advances ``seq`` by one, errors included;
* ``RejectedOrder`` becomes one REJECTED update; ``CancelOrder`` of an order that is not open or belongs to
  someone else is a ``CommandError`` -2011;
* ``CancelAllOrders`` cancels every open order of its user (user 0: of everyone) in arrival order, or is
  -2011 when its user has none (user 0: an empty event);
* ``MarketChange`` takes its position but no ``seq`` and reports nothing: later fills use its fees;
* a cancel whose ``restriction`` is ONLY_NEW of an order that executed something, or ONLY_PARTIALLY_FILLED of
  one that executed nothing, is a ``CommandError`` -2011 and changes nothing;
* ``AmendOrder`` of an order not open (or someone else's) is a ``CommandError`` -2013; to a quantity not below
  the order's or not above what it executed and lost to DECREMENT / TRANSFER, -2038; otherwise the order keeps
  its arrival (its place), its quantity and remaining lots shrink by the cut, it takes the new client id, and it
  reports one REPLACED update in its current status with the old client id as ``orig_client_order_id``;
* ``LIMIT_MAKER`` that would take is REJECTED (-2010) with no NEW before it;
* a taker reports NEW, then per fill a maker TRADE update and a taker TRADE update, then, if it neither
  filled nor rests, EXPIRED (or EXPIRED_IN_MATCH when self-trade prevention stopped it);
* MARKET behaves as IOC whatever its ``tif``, and takes only makers within its ``price_ticks`` when it has one
  (the price-protection limit); a BUY never spends more than ``budget`` notional units, a SELL
  never sells more than ``budget`` lots; an order sized by ``quote_nu`` is FILLED once its quote is spent
  or the quote left no longer pays for one lot at the next maker's price (having filled something);
* self-trade prevention follows the taker's mode and is checked before the taker's size; each prevented match
  takes the next ``preventedMatchId`` (from 1, kept in the snapshot), which the expired order's update carries
  with the other order's id (both orders' under EXPIRE_BOTH);
* DECREMENT and TRANSFER (one account: the same) take from both orders the lots the taker would have taken
  from the maker (its size, quote and budget bound it, not the maker's size) or the maker's remaining lots,
  whichever is smaller; the maker reports TRADE_PREVENTION (EXPIRED_IN_MATCH at zero, else its status), then
  the taker (EXPIRED_IN_MATCH, last, if it took what it could; else in its status, and matching goes on);
  both carry ``prevented_lots`` (all lost so far) and ``last_prevented_lots``; the lots lost no longer count
  towards the size (or the quote) of either; the taker's budget is untouched; a quote-sized taker whose
  last update is such a report, and whose quote then no longer pays for a lot, expires instead of filling;
* an iceberg (``iceberg_lots``) takes as any order; what it rests with shows ``iceberg_lots`` (``remaining``,
  all a level's total and depth count) and hides the rest; a maker whose slice is gone while it hides more
  shows its next slice (up to ``iceberg_lots``) with ``arrival`` the step's seq and ``sub`` 1, 2, ... in the
  order the step refilled them: the back of its level, where the taker may meet it again; it is FILLED (or
  expires under DECREMENT) only when nothing is hidden either; an amend takes from what it hides first; every
  update of an iceberg carries its ``iceberg_lots``;
* a trade's fees are at the market's rates (its row at that point of the sequence) but for an order whose
  owner's fee tier stamped its own rates on it (``maker_bps`` for what it does resting, ``taker_bps`` taking);
* deltas list each level touched by the step, in order of first touch, with its total after the step;
* a conditional order (STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT: a stop price, a trailing
  delta or both) waits off the book, reported NEW with ``working_ts`` -1; it is REJECTED (-2010) when it has no
  delta and the last trade price already meets its stop (``stop_above``: at or above it, or at or below), or
  when its owner has ``MAX_NUM_ALGO_ORDERS`` open (waiting, or triggered and resting); a trailing order starts
  trailing at placement (from the last price) when it has no stop price or the last price meets it, else at the
  first trade that meets it;
* every trade of a step, in order, is shown to the waiting stops in arrival order: one without a delta
  triggers when the trade's price meets its stop; a trailing one that trails keeps the best price since it
  started (highest for a SELL, lowest for a BUY) and triggers at a trade ``delta`` BIPS worse than it;
* the triggered orders run after the step's own matching, in the order they triggered, each reported NEW
  with ``working_ts`` the step's ts, then as the MARKET or LIMIT it becomes, under its own type and stop
  fields; their trades are shown to the stops in turn; one that rests carries its stop (working since its
  trigger) on every later report; an untriggered stop can be cancelled (cancel-all takes them after the
  resting orders), never amended; it keeps its ``iceberg_lots`` (on its reports from placement) and its fee
  tier's rates: triggered, it takes and rests with them as any order would.

* an order list (``OrderListCommand``) is refused whole (every leg REJECTED, a RESPONSE / REJECT list status) when
  the processor refused it, a working LIMIT_MAKER leg would take, a working stop leg without a delta is met by the
  last price, or its stop legs pass ``MAX_NUM_ALGO_ORDERS``; else EXEC_STARTED, its working legs placed in leg order
  (a stop waits, trailing from the step's last price when it may), its pending legs reported NEW; the first leg of
  an OCO pair to report anything but NEW or REPLACED (or to trigger) cancels the pair's other legs at once (their
  CANCELED right after it), ALL_DONE; an OTO / OTOCO working order FILLED places the pending legs (an OTO is then
  ALL_DONE first), ended otherwise cancels them; a leg's cancel cancels every other leg of its list, then itself
  (reported last); a step that touched a leg says each leg's list and the list statuses (``ListedEvent``); an order
  placed inside a step behind iceberg slices the step refilled comes after them (its ``sub``).

Only ``state_hash`` borrows from the fast book: it is ``Book.state_hash`` of the model's contents, since the
hash is defined as a function of what a book holds; the tests compare those contents directly as well.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import msgspec

from services.matcher.book import Book, BookState, RestingOrder
from shared.domain import (
    BPS,
    MAX_NUM_ALGO_ORDERS,
    CancelRestriction,
    ExecType,
    Market,
    OrderStatus,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
    stop_above,
)
from shared.messages import (
    AcceptedOrder,
    AcceptedStop,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    CommandError,
    LevelDelta,
    ListedEvent,
    ListStatus,
    MarketChange,
    MatchedEvent,
    MatcherCommand,
    OrderListCommand,
    OrderUpdate,
    RejectedOrder,
    StopState,
    Trade,
    market_of,
)

UNKNOWN_ORDER = -2011
WOULD_TAKE = -2010
NO_SUCH_ORDER = -2013
AMEND_REFUSED = -2038


@dataclass
class Order:
    """One resting order."""

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
    # a triggered conditional order that rests: its stop, on every report until the one that ends it
    stop_ticks: int = 0
    trailing_delta: int = 0
    trail_ticks: int = 0
    trail_ts: int = -1
    budget: int = 0
    working_ts: int = 0

    iceberg_lots: int = 0  # an iceberg: the slice it shows (``remaining``), the lots it hides, its place
    hidden: int = 0  # among orders of one arrival
    sub: int = 0
    maker_bps: int = -1  # its owner's fee tier's maker rate (-1: the market's when it trades)

    def stop(self) -> StopState | None:
        if not (self.stop_ticks or self.trailing_delta):
            return None
        return StopState(self.stop_ticks, self.trailing_delta, self.trail_ts, self.working_ts)


@dataclass
class Stop:
    """One waiting conditional order: what placed it, when, and its trailing state (``trail`` 0: not yet)."""

    a: AcceptedStop
    arrival: int
    trail: int = 0
    trail_ts: int = -1

    def met(self, price: int) -> bool:
        above = stop_above(self.a.type, self.a.side)
        return price >= self.a.stop_ticks if above else price <= self.a.stop_ticks

    def record(self) -> RestingOrder:
        a = self.a
        return _unfilled_record(
            a,
            self.arrival,
            stop_ticks=a.stop_ticks,
            trailing_delta=a.trailing_delta,
            trail_ticks=self.trail,
            trail_ts=self.trail_ts,
        )

    def update(self, status: OrderStatus, exec_type: ExecType, working_ts: int, **more: object) -> OrderUpdate:
        a = self.a
        stop = StopState(a.stop_ticks, a.trailing_delta, self.trail_ts, working_ts)
        return _accepted_update(a, status, exec_type, stop, **more)

    def triggers(self, price: int, ts: int) -> bool:
        """A trade at ``price``, seen by this stop: whether it triggers, its trailing state kept up."""
        delta = self.a.trailing_delta
        if not delta:
            return self.met(price)
        if not self.trail:
            if not self.a.stop_ticks or self.met(price):
                self.trail = price
                if self.trail_ts < 0:
                    self.trail_ts = ts
            return False
        if self.a.side is Side.SELL:
            if price >= self.trail:
                self.trail = price
                return False
            return price * BPS <= self.trail * (BPS - delta)
        if price <= self.trail:
            self.trail = price
            return False
        return price * BPS >= self.trail * (BPS + delta)


@dataclass
class OrderList:
    """An order list (OCO, OTO, OTOCO): its legs (id, client id) in leg order, those live (on the book or
    waiting), those pending (placed when its working order fills), whether its live legs cancel each other, and
    whether its contingency is over."""

    list_id: int
    user_id: int
    contingency: str
    client_id: str
    legs: list[list[object]]
    live: list[int]
    pending: list[AcceptedOrder]
    oco: bool
    done: bool = False

    def info(self) -> str:
        info = {"u": self.user_id, "c": self.contingency, "k": self.client_id, "l": self.legs, "o": self.oco}
        info["d"] = self.done
        return msgspec.json.encode(info).decode()

    def status(self, status_type: str, order_status: str, reason: str = "NONE") -> ListStatus:
        legs = [(int(str(i)), str(c)) for i, c in self.legs]
        return ListStatus(
            self.list_id, self.user_id, self.contingency, status_type, order_status, self.client_id, legs, reason
        )


def _leg_update(a: AcceptedOrder, status: OrderStatus, exec_type: ExecType, **more: object) -> OrderUpdate:
    """A list leg's report from what it was accepted with (a pending leg; a refused list's legs)."""
    stop = StopState(a.stop_ticks, a.trailing_delta) if isinstance(a, AcceptedStop) and a.type.is_stop else None
    return _accepted_update(a, status, exec_type, stop, **more)


def _accepted_update(
    a: AcceptedOrder, status: OrderStatus, exec_type: ExecType, stop: StopState | None, **more: object
) -> OrderUpdate:
    """An order's report built from what it was accepted with, before any fill (a waiting stop, a list leg)."""
    return OrderUpdate(
        order_id=a.order_id,
        user_id=a.user_id,
        client_order_id=a.client_order_id,
        side=a.side,
        type=a.type,
        tif=None if a.type.triggered is OrderType.MARKET else a.tif,
        price_ticks=a.price_ticks,
        qty_lots=a.qty_lots,
        status=status,
        exec_type=exec_type,
        created_ts=a.ts,
        stp=a.stp,
        iceberg_lots=a.iceberg_lots,
        stop=stop,
        **more,  # type: ignore[arg-type]
    )


@dataclass
class _Step:
    """What one command did, collected while it runs."""

    updates: list[OrderUpdate]
    trades: list[Trade]
    touched: list[tuple[Side, int]]  # levels in order of first touch
    lists: list[ListStatus] | None = None  # the list statuses of the step (shared with its sub-steps)

    def touch(self, side: Side, price: int) -> None:
        if (side, price) not in self.touched:
            self.touched.append((side, price))


class ReferenceBook:
    def __init__(self, market: Market) -> None:
        self.market = market
        self.resting: list[Order] = []  # arrival order
        self.seq = 0
        self.next_trade_id = 1
        self.next_prevented_id = 1
        self.taker_prevented: dict[str, int] = {}  # the last taker expiry's prevented match id and counter order
        self.prevented_lots = 0  # the taker's lots lost to DECREMENT/TRANSFER in this step
        self.prevented_nu = 0  # ... and their notional (what they took from a quote-sized taker's quote)
        self.refills = 0  # icebergs refilled in this step so far
        self.last_src = (-1, -1)
        self.stops: list[Stop] = []  # waiting conditional orders, in arrival order
        self.last = 0  # the last trade's price
        self.lists: list[OrderList] = []  # order lists with a leg open, in placement order
        self.leg_list: dict[int, int] = {}  # every list leg ever: its list's id

    # --- queries ---------------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return max((o.price_ticks for o in self.resting if o.side is Side.BUY), default=None)

    def best_ask(self) -> int | None:
        return min((o.price_ticks for o in self.resting if o.side is Side.SELL), default=None)

    def level_lots(self, side: Side, price: int) -> int:
        return sum(o.remaining for o in self.resting if o.side is side and o.price_ticks == price)

    def depth(self, side: Side) -> list[tuple[int, int]]:
        prices = sorted({o.price_ticks for o in self.resting if o.side is side}, reverse=side is Side.BUY)
        return [(p, self.level_lots(side, p)) for p in prices]

    def snapshot(self) -> tuple[BookState, list[RestingOrder]]:
        """What the model holds, in the fast book's snapshot types."""
        state = BookState(
            seq=self.seq,
            next_trade_id=self.next_trade_id,
            src_partition=self.last_src[0],
            src_offset=self.last_src[1],
            next_prevented_id=self.next_prevented_id,
            last_ticks=self.last,
        )
        records = [RestingOrder(**asdict(o)) for o in self.resting] + [s.record() for s in self.stops]
        out = []
        for r in records:
            lst = self._list_of(r.order_id)
            out.append(r if lst is None else msgspec.structs.replace(r, list_id=lst.list_id, list_info=lst.info()))
        for lst in self.lists:
            for a in lst.pending:
                out.append(_pending_record(a, lst))
        return state, out

    def state_hash(self) -> int:
        """``Book.state_hash`` of a book restored from this model: the hash is of what is held, not how."""
        state, orders = self.snapshot()
        book = Book(self.market, state)  # restore tells the stops by their stop fields
        book.restore(orders)
        return book.state_hash()

    # --- commands --------------------------------------------------------------------------------------
    def apply(self, command: MatcherCommand, ts: int) -> MatchedEvent | None:
        src = (command.src_partition, command.src_offset)
        if src <= self.last_src:
            return None
        self.last_src = src
        if isinstance(command, MarketChange):  # the new row from here on; no seq, no event
            self.market = market_of(command.market)
            return None
        self.seq += 1
        self.refills = 0
        step = _Step([], [], [], [])
        error = None
        if isinstance(command, RejectedOrder):
            step.updates.append(
                OrderUpdate(
                    order_id=command.order_id,
                    user_id=command.user_id,
                    client_order_id=command.client_order_id,
                    side=command.side,
                    type=command.type,
                    tif=command.tif,
                    price_ticks=command.price_ticks,
                    qty_lots=command.qty_lots,
                    status=OrderStatus.REJECTED,
                    exec_type=ExecType.REJECTED,
                    created_ts=command.ts,
                    reject_code=command.code,
                    reason=command.msg,
                )
            )
        elif isinstance(command, CancelOrder):
            error = self._cancel(command, step)
        elif isinstance(command, CancelAllOrders):
            error = self._cancel_all(command, step)
        elif isinstance(command, AmendOrder):
            error = self._amend(command, step)
        elif isinstance(command, OrderListCommand):
            self._place_list(command, ts, step)
        else:
            self._place(command, ts, step)
            self._lists_acted(ts, step, 0)
            if step.trades:
                self._run_stops(ts, step)
        deltas = [LevelDelta(side, price, self.level_lots(side, price)) for side, price in step.touched]
        legs = {u.order_id: self.leg_list[u.order_id] for u in step.updates if u.order_id in self.leg_list}
        if legs or step.lists:  # a step that touched lists says which, and how
            return ListedEvent(
                symbol=self.market.symbol,
                seq=self.seq,
                ts=ts,
                request_id=command.request_id,
                updates=step.updates,
                trades=step.trades,
                deltas=deltas,
                error=error,
                lists=tuple(step.lists or ()),
                legs=legs,
            )
        return MatchedEvent(
            symbol=self.market.symbol,
            seq=self.seq,
            ts=ts,
            request_id=command.request_id,
            updates=step.updates,
            trades=step.trades,
            deltas=deltas,
            error=error,
        )

    def _cancel(self, c: CancelOrder, step: _Step) -> CommandError | None:
        lst = self._list_of(c.order_id)
        if lst is not None:
            return self._cancel_leg(lst, c, step)
        found = [o for o in self.resting if o.order_id == c.order_id and o.user_id == c.user_id]
        waiting = [s for s in self.stops if s.a.order_id == c.order_id and s.a.user_id == c.user_id]
        if waiting:
            if c.restriction is CancelRestriction.ONLY_PARTIALLY_FILLED:  # a waiting stop executed nothing
                msg = "Order was not canceled due to cancel restrictions."
                return CommandError(user_id=c.user_id, order_id=c.order_id, code=UNKNOWN_ORDER, msg=msg)
            self.stops.remove(waiting[0])
            step.updates.append(waiting[0].update(OrderStatus.CANCELED, ExecType.CANCELED, -1))
            return None
        if not found:
            return CommandError(user_id=c.user_id, order_id=c.order_id, code=UNKNOWN_ORDER, msg="Unknown order sent.")
        o = found[0]
        if (c.restriction is CancelRestriction.ONLY_NEW and o.executed_lots > 0) or (
            c.restriction is CancelRestriction.ONLY_PARTIALLY_FILLED and o.executed_lots == 0
        ):
            msg = "Order was not canceled due to cancel restrictions."
            return CommandError(user_id=c.user_id, order_id=c.order_id, code=UNKNOWN_ORDER, msg=msg)
        self.resting.remove(o)
        step.touch(o.side, o.price_ticks)
        step.updates.append(_maker_update(o, OrderStatus.CANCELED, ExecType.CANCELED))
        return None

    def _cancel_all(self, c: CancelAllOrders, step: _Step) -> CommandError | None:
        found = [o for o in self.resting if c.user_id == 0 or o.user_id == c.user_id]
        waiting = [s for s in self.stops if c.user_id == 0 or s.a.user_id == c.user_id]
        if not found and not waiting and c.user_id != 0:
            return CommandError(user_id=c.user_id, order_id=0, code=UNKNOWN_ORDER, msg="Unknown order sent.")
        for o in found:
            self.resting.remove(o)
            step.touch(o.side, o.price_ticks)
            step.updates.append(_maker_update(o, OrderStatus.CANCELED, ExecType.CANCELED))
        for s in waiting:
            self.stops.remove(s)
            step.updates.append(s.update(OrderStatus.CANCELED, ExecType.CANCELED, -1))
        self._lists_acted(0, step, 0)
        for lst in list(self.lists):
            if (c.user_id == 0 or lst.user_id == c.user_id) and lst.pending:
                self._end_list(lst, step)
        return None

    def _amend(self, c: AmendOrder, step: _Step) -> CommandError | None:
        found = [o for o in self.resting if o.order_id == c.order_id and o.user_id == c.user_id]
        if not found:
            return CommandError(user_id=c.user_id, order_id=c.order_id, code=NO_SUCH_ORDER, msg="Order does not exist.")
        o = found[0]
        if c.qty_lots >= o.qty_lots:
            msg = "Order amend (quantity increase) is not supported."
            return CommandError(user_id=c.user_id, order_id=c.order_id, code=AMEND_REFUSED, msg=msg)
        if c.qty_lots <= o.qty_lots - o.remaining - o.hidden:  # what it executed, and lost to DECREMENT
            msg = "Order amend (quantity decrease) below the executed quantity is not supported."
            return CommandError(user_id=c.user_id, order_id=c.order_id, code=AMEND_REFUSED, msg=msg)
        before = o.client_order_id
        cut = o.qty_lots - c.qty_lots
        unseen = min(cut, o.hidden)
        o.hidden -= unseen
        o.remaining -= cut - unseen
        o.qty_lots, o.client_order_id = c.qty_lots, c.client_order_id
        status = OrderStatus.PARTIALLY_FILLED if o.executed_lots else OrderStatus.NEW
        step.updates.append(_maker_update(o, status, ExecType.REPLACED, orig_client_order_id=before))
        step.touch(o.side, o.price_ticks)
        return None

    def _place_stop(self, a: AcceptedStop, ts: int, step: _Step) -> None:
        stop = Stop(a, self.seq)
        reason = ""
        if not a.trailing_delta and self.last and stop.met(self.last):
            reason = "Order would trigger immediately."
        elif (
            len([s for s in self.stops if s.a.user_id == a.user_id])
            + len([o for o in self.resting if o.user_id == a.user_id and o.stop() is not None])
            >= MAX_NUM_ALGO_ORDERS
        ):
            reason = "Filter failure: MAX_NUM_ALGO_ORDERS"
        if reason:
            step.updates.append(
                stop.update(OrderStatus.REJECTED, ExecType.REJECTED, -1, reject_code=WOULD_TAKE, reason=reason)
            )
            return
        if a.trailing_delta and (not a.stop_ticks or (self.last and stop.met(self.last))):
            stop.trail, stop.trail_ts = self.last, ts
        self.stops.append(stop)
        step.updates.append(stop.update(OrderStatus.NEW, ExecType.NEW, -1))

    def _run_stops(self, ts: int, step: _Step) -> None:
        """Show the step's trades to the stops, one by one; run what triggers, then show its trades too."""
        fired: list[Stop] = []
        shown = 0
        while True:
            for trade in step.trades[shown:]:
                for s in list(self.stops):
                    if s not in self.stops:
                        continue  # an OCO leg whose sibling's trigger canceled it just now
                    if s.triggers(trade.price_ticks, ts):
                        self.stops.remove(s)
                        fired.append(s)
                        lst = self._list_of(s.a.order_id)
                        if lst is not None and lst.oco and not lst.done:
                            self._resolve(lst, s.a.order_id, step)
            shown = len(step.trades)
            if not fired:
                break
            s = fired.pop(0)
            step.updates.append(s.update(OrderStatus.NEW, ExecType.NEW, ts))
            plain = {f: getattr(s.a, f) for f in AcceptedOrder.__struct_fields__}
            taking = AcceptedOrder(**{**plain, "type": s.a.type.triggered})
            mine = _Step([], step.trades, step.touched, step.lists)  # trades, levels, lists shared with the step
            self._place(taking, ts, mine)
            first = len(step.updates)
            for u in mine.updates[1:]:
                if u.order_id == s.a.order_id:
                    stop = StopState(s.a.stop_ticks, s.a.trailing_delta, s.trail_ts, ts)
                    u = _replace(u, type=s.a.type, stop=stop)
                step.updates.append(u)
            for o in self.resting:
                if o.order_id == s.a.order_id:
                    o.type = s.a.type
                    o.stop_ticks, o.trailing_delta = s.a.stop_ticks, s.a.trailing_delta
                    o.trail_ts, o.working_ts = s.trail_ts, ts
                    self._behind_refills(o)
            self._lists_acted(ts, step, first)
        self.last = step.trades[-1].price_ticks

    def _place(self, a: AcceptedOrder, ts: int, step: _Step) -> None:
        if isinstance(a, AcceptedStop):
            self._place_stop(a, ts, step)
            return
        new = _taker_update(a, status=OrderStatus.NEW, exec_type=ExecType.NEW)
        if a.type is OrderType.LIMIT_MAKER:
            maker = self._next_maker(a.side)
            if maker is not None and _acceptable(a, maker.price_ticks):
                reason = "Order would immediately match and take."
                step.updates.append(
                    _replace(
                        new,
                        status=OrderStatus.REJECTED,
                        exec_type=ExecType.REJECTED,
                        reject_code=WOULD_TAKE,
                        reason=reason,
                    )
                )
                return
        step.updates.append(new)
        if a.type is OrderType.LIMIT and a.tif is TimeInForce.FOK:
            trial = copy.deepcopy(self)
            if trial._match(a, ts, _Step([], [], [])) != "FILLED":
                step.updates.append(_replace(new, status=OrderStatus.EXPIRED, exec_type=ExecType.EXPIRED))
                return
        outcome = self._match(a, ts, step)
        executed, cum_nu = _taker_totals(a, step.trades)
        if outcome == "EXPIRED_IN_MATCH":
            step.updates.append(
                _replace(
                    new,
                    status=OrderStatus.EXPIRED_IN_MATCH,
                    exec_type=ExecType.TRADE_PREVENTION,
                    executed_lots=executed,
                    cum_nu=cum_nu,
                    **self.taker_prevented,
                )
            )
        elif outcome == "OPEN" and (a.type is OrderType.MARKET or a.tif is not TimeInForce.GTC):
            step.updates.append(
                _replace(
                    new, status=OrderStatus.EXPIRED, exec_type=ExecType.EXPIRED, executed_lots=executed, cum_nu=cum_nu
                )
            )
        elif outcome == "OPEN":
            self.resting.append(
                Order(
                    order_id=a.order_id,
                    user_id=a.user_id,
                    client_order_id=a.client_order_id,
                    side=a.side,
                    type=a.type,
                    tif=a.tif,
                    price_ticks=a.price_ticks,
                    qty_lots=a.qty_lots,
                    remaining=a.qty_lots - executed - self.prevented_lots,
                    executed_lots=executed,
                    cum_nu=cum_nu,
                    created_ts=a.ts,
                    arrival=self.seq,
                    stp=a.stp,
                )
            )
            o = self.resting[-1]
            if a.iceberg_lots and o.remaining > a.iceberg_lots:
                o.hidden, o.remaining = o.remaining - a.iceberg_lots, a.iceberg_lots
            o.iceberg_lots = a.iceberg_lots
            o.maker_bps = a.maker_bps
            step.touch(a.side, a.price_ticks)

    # --- order lists -------------------------------------------------------------------------------------
    def _list_of(self, order_id: int) -> OrderList | None:
        """The list of an open leg (live or pending)."""
        for lst in self.lists:
            if order_id in lst.live or any(a.order_id == order_id for a in lst.pending):
                return lst
        return None

    def _leave(self, lst: OrderList, order_id: int) -> None:
        if order_id in lst.live:
            lst.live.remove(order_id)
        if not lst.live and not lst.pending:
            self.lists.remove(lst)

    def _place_list(self, c: OrderListCommand, ts: int, step: _Step) -> None:
        """Refused (by the processor, or here: a working LIMIT_MAKER leg that would take, a working stop leg
        without a delta the last price meets, the stop legs past MAX_NUM_ALGO_ORDERS): every leg REJECTED,
        RESPONSE / REJECT. Else EXEC_STARTED / EXECUTING, the working legs placed in leg order, the pending
        ones reported NEW, the contingencies applied, then the stops shown the step's trades."""
        assert step.lists is not None
        legs: list[list[object]] = [[o.order_id, o.client_order_id] for o in (c.orders or c.rejected)]
        lst = OrderList(c.list_id, c.user_id, c.contingency, c.list_client_id, legs, [], [], c.contingency == "OCO")
        for order_id, _ in legs:
            self.leg_list[int(str(order_id))] = c.list_id
        if c.rejected:
            for r in c.rejected:
                step.updates.append(
                    OrderUpdate(
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
                )
            step.lists.append(lst.status("RESPONSE", "REJECT", c.rejected[0].msg))
            return
        reason = ""
        for i, o in enumerate(c.orders):
            if i >= c.working:
                continue
            if o.type is OrderType.LIMIT_MAKER:
                maker = self._next_maker(o.side)
                if maker is not None and _acceptable(o, maker.price_ticks):
                    reason = "Order would immediately match and take."
                    break
            elif isinstance(o, AcceptedStop) and o.type.is_stop:
                if not o.trailing_delta and self.last and Stop(o, 0).met(self.last):
                    reason = "Order would trigger immediately."
                    break
        algo = sum(1 for o in c.orders if o.type.is_stop)
        if not reason and algo:
            mine = len([s for s in self.stops if s.a.user_id == c.user_id]) + len(
                [o for o in self.resting if o.user_id == c.user_id and o.stop() is not None]
            )
            if mine + algo > MAX_NUM_ALGO_ORDERS:
                reason = "Filter failure: MAX_NUM_ALGO_ORDERS"
        if reason:
            for o in c.orders:
                step.updates.append(
                    _leg_update(o, OrderStatus.REJECTED, ExecType.REJECTED, reject_code=WOULD_TAKE, reason=reason)
                )
            step.lists.append(lst.status("RESPONSE", "REJECT", reason))
            return
        step.lists.append(lst.status("EXEC_STARTED", "EXECUTING"))
        self.lists.append(lst)
        lst.pending = list(c.orders[c.working :])
        for o in c.orders[: c.working]:
            self._place_leg(lst, o, ts, step)
        step.updates += [_leg_update(a, OrderStatus.PENDING_NEW, ExecType.NEW) for a in lst.pending]
        self._lists_acted(ts, step, 0)
        if step.trades:
            self._run_stops(ts, step)

    def _place_leg(self, lst: OrderList, a: AcceptedOrder, ts: int, step: _Step) -> None:
        """A leg goes live: a stop waits (trailing from now if it may), any other takes the book as placed."""
        lst.live.append(a.order_id)
        if isinstance(a, AcceptedStop) and a.type.is_stop:
            stop = Stop(a, self.seq)
            last = step.trades[-1].price_ticks if step.trades else self.last  # the step's trades so far count
            if a.trailing_delta and (not a.stop_ticks or (last and stop.met(last))):
                stop.trail, stop.trail_ts = last, ts
            self.stops.append(stop)
            step.updates.append(stop.update(OrderStatus.NEW, ExecType.NEW, -1))
            return
        plain = AcceptedOrder(**{f: getattr(a, f) for f in AcceptedOrder.__struct_fields__})
        maker = self._next_maker(a.side)
        crosses = maker is not None and _acceptable(plain, maker.price_ticks)
        mine = _Step([], step.trades, step.touched, step.lists)
        self._place(plain, ts, mine)
        if crosses:  # as the book, which applies the contingencies where an order takes (a passive one acts on none)
            self._lists_acted(ts, mine, 0)
        step.updates += mine.updates
        for o in self.resting:
            if o.order_id == a.order_id:
                self._behind_refills(o)

    def _behind_refills(self, o: Order) -> None:
        """An order placed inside a step (a triggered stop, a list's leg) that rests behind the iceberg slices
        the step refilled comes after them: its ``sub`` follows theirs."""
        if o.arrival == self.seq and self.refills and not o.sub:
            self.refills += 1
            o.sub = self.refills

    def _lists_acted(self, ts: int, step: _Step, start: int) -> None:
        """The contingencies, over the step's updates from ``start`` (and those they add): an OCO pair's first
        leg to act (anything but NEW or REPLACED) cancels the others; an OTO / OTOCO working order that fills
        places the pending legs, one that ends otherwise cancels them; a leg that ends leaves its list."""
        assert step.lists is not None
        i = start
        while i < len(step.updates):
            u = step.updates[i]
            i += 1
            lst = self._list_of(u.order_id)
            if lst is None:
                continue
            ended = not u.status.is_open
            if not lst.done and u.order_id in lst.live:
                if lst.pending:
                    if u.status is OrderStatus.FILLED:
                        self._place_pending(lst, ts, step)
                    elif ended:
                        self._end_list(lst, step, u.order_id)
                elif lst.oco and u.exec_type not in (ExecType.NEW, ExecType.REPLACED):
                    self._resolve(lst, u.order_id, step)
            if ended and lst in self.lists:
                if not lst.done and lst.live == [u.order_id] and not lst.pending:
                    lst.done = True
                    step.lists.append(lst.status("ALL_DONE", "ALL_DONE"))
                self._leave(lst, u.order_id)

    def _drop_leg(self, order_id: int, step: _Step) -> OrderUpdate | None:
        for s in self.stops:
            if s.a.order_id == order_id:
                self.stops.remove(s)
                return s.update(OrderStatus.CANCELED, ExecType.CANCELED, -1)
        for o in self.resting:
            if o.order_id == order_id:
                self.resting.remove(o)
                step.touch(o.side, o.price_ticks)
                return _maker_update(o, OrderStatus.CANCELED, ExecType.CANCELED)
        return None

    def _resolve(self, lst: OrderList, acting: int, step: _Step) -> None:
        assert step.lists is not None
        for order_id in list(lst.live):
            if order_id != acting:
                update = self._drop_leg(order_id, step)
                if update is not None:
                    step.updates.append(update)
                    self._leave(lst, order_id)
        lst.oco, lst.done = False, True
        step.lists.append(lst.status("ALL_DONE", "ALL_DONE"))

    def _end_list(self, lst: OrderList, step: _Step, first: int | None = None) -> None:
        assert step.lists is not None
        for order_id in list(lst.live):
            if order_id != first:
                update = self._drop_leg(order_id, step)
                if update is not None:
                    step.updates.append(update)
                    lst.live.remove(order_id)
        for a in lst.pending:
            step.updates.append(_leg_update(a, OrderStatus.CANCELED, ExecType.CANCELED))
        lst.pending = []
        if not lst.done:
            lst.done, lst.oco = True, False
            step.lists.append(lst.status("ALL_DONE", "ALL_DONE"))
        if not lst.live and lst in self.lists:
            self.lists.remove(lst)

    def _place_pending(self, lst: OrderList, ts: int, step: _Step) -> None:
        assert step.lists is not None
        pending, lst.pending = lst.pending, []
        lst.oco = len(pending) > 1
        if not lst.oco:
            lst.done = True
            step.lists.append(lst.status("ALL_DONE", "ALL_DONE"))
        for a in pending:
            self._place_leg(lst, a, ts, step)

    def _cancel_leg(self, lst: OrderList, c: CancelOrder, step: _Step) -> CommandError | None:
        """A leg's cancel takes its whole list (the named leg reported last); a leg left alone after its list was
        done goes alone."""
        o = next((o for o in self.resting if o.order_id == c.order_id), None)
        refused = ""
        if lst.user_id != c.user_id:
            refused = "Unknown order sent."
        elif (c.restriction is CancelRestriction.ONLY_NEW and o is not None and o.executed_lots) or (
            c.restriction is CancelRestriction.ONLY_PARTIALLY_FILLED and (o is None or not o.executed_lots)
        ):
            refused = "Order was not canceled due to cancel restrictions."
        if refused:
            return CommandError(user_id=c.user_id, order_id=c.order_id, code=UNKNOWN_ORDER, msg=refused)
        named = self._drop_leg(c.order_id, step)
        if named is None:
            a = next(a for a in lst.pending if a.order_id == c.order_id)
            lst.pending.remove(a)
            named = _leg_update(a, OrderStatus.CANCELED, ExecType.CANCELED)
        if c.order_id in lst.live:
            lst.live.remove(c.order_id)
        if lst.done:
            if not lst.live and not lst.pending:
                self.lists.remove(lst)
        else:
            self._end_list(lst, step)
        step.updates.append(named)
        return None

    # --- matching ----------------------------------------------------------------------------------------
    def _next_maker(self, taker_side: Side) -> Order | None:
        """Best price first, then earliest arrival."""
        makers = [o for o in self.resting if o.side is taker_side.opposite]
        sign = 1 if taker_side is Side.BUY else -1  # a BUY takes the lowest ask, a SELL the highest bid
        return min(makers, key=lambda o: (sign * o.price_ticks, o.arrival, o.sub), default=None)

    def _match(self, a: AcceptedOrder, ts: int, step: _Step) -> str:
        """Fill the taker; returns FILLED, EXPIRED_IN_MATCH or OPEN (what is left may rest or expire)."""
        m = self.market
        self.prevented_lots = self.prevented_nu = 0
        while True:
            executed, cum_nu = _taker_totals(a, step.trades)
            if _complete(a, executed + self.prevented_lots, cum_nu + self.prevented_nu):
                return "FILLED"
            maker = self._next_maker(a.side)
            if maker is None or not _acceptable(a, maker.price_ticks):
                return "OPEN"
            price = maker.price_ticks
            can = self._taker_can(a, price, executed, cum_nu)
            if maker.user_id == a.user_id and a.stp in (StpMode.DECREMENT, StpMode.TRANSFER):
                lots = min(can, maker.remaining)
                if lots == 0:
                    return self._short(a, step, price, executed, cum_nu)
                self._decrement(a, maker, lots, can, step)
                if lots == can:
                    return "EXPIRED_IN_MATCH"
                continue
            if maker.user_id == a.user_id and a.stp is not StpMode.NONE:
                prevented = {"prevented_match_id": self.next_prevented_id}
                self.next_prevented_id += 1
                if a.stp in (StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH):
                    self.resting.remove(maker)
                    step.touch(maker.side, price)
                    step.updates.append(
                        _maker_update(
                            maker,
                            OrderStatus.EXPIRED_IN_MATCH,
                            ExecType.TRADE_PREVENTION,
                            **prevented,
                            counter_order_id=a.order_id,
                        )
                    )
                if a.stp in (StpMode.EXPIRE_TAKER, StpMode.EXPIRE_BOTH):
                    self.taker_prevented = {**prevented, "counter_order_id": maker.order_id}
                    return "EXPIRED_IN_MATCH"
                continue
            lots = min(can, maker.remaining)
            if lots == 0:
                return self._short(a, step, price, executed, cum_nu)

            trade_id = self.next_trade_id
            self.next_trade_id += 1
            nu = lots * price
            buyer_is_maker = maker.side is Side.BUY
            buyer_rate = maker.maker_bps if buyer_is_maker else a.taker_bps  # a fee tier's, or -1
            seller_rate = a.taker_bps if buyer_is_maker else maker.maker_bps
            buyer_fee = _fee(m, lots * m.atoms_per_lot, buyer_is_maker, buyer_rate)
            seller_fee = _fee(m, nu * m.atoms_per_nu, not buyer_is_maker, seller_rate)
            maker_fee, taker_fee = (buyer_fee, seller_fee) if buyer_is_maker else (seller_fee, buyer_fee)
            maker_side, taker_side = (maker.order_id, maker.user_id), (a.order_id, a.user_id)
            (buyer_id, buyer_user), (seller_id, seller_user) = (
                (maker_side, taker_side) if buyer_is_maker else (taker_side, maker_side)
            )
            step.trades.append(
                Trade(
                    trade_id=trade_id,
                    price_ticks=price,
                    qty_lots=lots,
                    buyer_order_id=buyer_id,
                    seller_order_id=seller_id,
                    buyer_user_id=buyer_user,
                    seller_user_id=seller_user,
                    buyer_is_maker=buyer_is_maker,
                    buyer_fee=buyer_fee,
                    seller_fee=seller_fee,
                    ts=ts,
                )
            )
            maker.remaining -= lots
            maker.executed_lots += lots
            maker.cum_nu += nu
            maker_status = OrderStatus.PARTIALLY_FILLED
            if maker.remaining == 0 and maker.hidden:
                self._refill(maker)
            elif maker.remaining == 0:
                self.resting.remove(maker)
                maker_status = OrderStatus.FILLED
            step.touch(maker.side, price)
            step.updates.append(
                _maker_update(
                    maker,
                    maker_status,
                    ExecType.TRADE,
                    last_lots=lots,
                    last_ticks=price,
                    trade_id=trade_id,
                    is_maker=True,
                    fee=maker_fee,
                )
            )
            executed, cum_nu = _taker_totals(a, step.trades)
            complete = _complete(a, executed + self.prevented_lots, cum_nu + self.prevented_nu)
            step.updates.append(
                _taker_update(
                    a,
                    status=OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED,
                    exec_type=ExecType.TRADE,
                    executed_lots=executed,
                    cum_nu=cum_nu,
                    last_lots=lots,
                    last_ticks=price,
                    trade_id=trade_id,
                    is_maker=False,
                    fee=taker_fee,
                )
            )

    def _refill(self, o: Order) -> None:
        """An iceberg's next slice, at the back of its level (this step's seq, after the step's earlier ones)."""
        shown = min(o.iceberg_lots, o.hidden)
        o.hidden -= shown
        o.remaining = shown
        self.refills += 1
        o.arrival, o.sub = self.seq, self.refills
        self.resting.remove(o)  # ``resting`` keeps arrival order
        self.resting.append(o)

    def _taker_can(self, a: AcceptedOrder, price: int, executed: int, cum_nu: int) -> int:
        """The lots the taker could take at ``price`` from a maker of any size: its size, quote and budget."""
        caps = []
        if a.qty_lots:
            caps.append(a.qty_lots - executed - self.prevented_lots)
        if a.quote_nu:
            caps.append((a.quote_nu - cum_nu - self.prevented_nu) // price)
        caps.append((a.budget - cum_nu) // price if a.side is Side.BUY else a.budget - executed)
        return max(0, min(caps))

    def _short(self, a: AcceptedOrder, step: _Step, price: int, executed: int, cum_nu: int) -> str:
        """The taker cannot take one lot at ``price``: a quote-sized one that filled something and whose quote
        no longer pays for a lot is FILLED (by its last update, a fill); otherwise what is left may rest."""
        if a.quote_nu and executed and a.quote_nu - cum_nu - self.prevented_nu < price:
            last = [u for u in step.updates if u.order_id == a.order_id][-1]
            if last.exec_type is ExecType.TRADE:
                _mark_taker_filled(a, step.updates)
                return "FILLED"
        return "OPEN"

    def _decrement(self, a: AcceptedOrder, maker: Order, lots: int, can: int, step: _Step) -> None:
        """DECREMENT / TRANSFER: both orders lose ``lots``; the maker reports it, then the taker unless it
        expires (``lots == can``: its report comes last, from ``_place``)."""
        pid = self.next_prevented_id
        self.next_prevented_id += 1
        self.prevented_lots += lots
        self.prevented_nu += lots * maker.price_ticks
        maker.remaining -= lots
        step.touch(maker.side, maker.price_ticks)
        if maker.remaining == 0 and not maker.hidden:
            self.resting.remove(maker)
            status = OrderStatus.EXPIRED_IN_MATCH
        else:
            status = OrderStatus.PARTIALLY_FILLED if maker.executed_lots else OrderStatus.NEW
            if maker.remaining == 0:
                self._refill(maker)
        step.updates.append(
            _maker_update(
                maker,
                status,
                ExecType.TRADE_PREVENTION,
                prevented_match_id=pid,
                counter_order_id=a.order_id,
                prevented_lots=maker.qty_lots - maker.executed_lots - maker.remaining - maker.hidden,
                last_prevented_lots=lots,
            )
        )
        prevented = {
            "prevented_match_id": pid,
            "counter_order_id": maker.order_id,
            "prevented_lots": self.prevented_lots,
            "last_prevented_lots": lots,
        }
        if lots == can:
            self.taker_prevented = prevented
            return
        executed, cum_nu = _taker_totals(a, step.trades)
        step.updates.append(
            _taker_update(
                a,
                status=OrderStatus.PARTIALLY_FILLED if executed else OrderStatus.NEW,
                exec_type=ExecType.TRADE_PREVENTION,
                executed_lots=executed,
                cum_nu=cum_nu,
                **prevented,
            )
        )


# --- plain functions ---------------------------------------------------------------------------------------
def _fee(m: Market, gross_atoms: int, is_maker: bool, tier_bps: int) -> int:
    """A side's commission: at its owner's fee tier's rate when it has one (``tier_bps`` >= 0), else at the
    market's, rounded down."""
    if tier_bps < 0:
        return m.fee_atoms(gross_atoms, is_maker=is_maker)
    return gross_atoms * tier_bps // BPS


def _acceptable(a: AcceptedOrder, maker_price: int) -> bool:
    if a.type is OrderType.MARKET and not a.price_ticks:  # a MARKET's price is its protection limit
        return True
    return maker_price <= a.price_ticks if a.side is Side.BUY else maker_price >= a.price_ticks


def _taker_totals(a: AcceptedOrder, trades: list[Trade]) -> tuple[int, int]:
    """(executed lots, notional) of the taker, summed from its trades of this step."""
    mine = [t for t in trades if a.order_id in (t.buyer_order_id, t.seller_order_id)]
    return sum(t.qty_lots for t in mine), sum(t.qty_lots * t.price_ticks for t in mine)


def _complete(a: AcceptedOrder, executed: int, cum_nu: int) -> bool:
    return executed == a.qty_lots if a.qty_lots else cum_nu == a.quote_nu


def _mark_taker_filled(a: AcceptedOrder, updates: list[OrderUpdate]) -> None:
    """A quote-sized taker learns it is complete after its last fill: that fill's update says FILLED."""
    for i in range(len(updates) - 1, -1, -1):
        u = updates[i]
        if u.order_id == a.order_id and u.exec_type is ExecType.TRADE:
            updates[i] = _replace(u, status=OrderStatus.FILLED)
            return


def _taker_update(a: AcceptedOrder, **state: object) -> OrderUpdate:
    """The incoming order as its owner sees it; a MARKET order reports no time in force."""
    return OrderUpdate(
        order_id=a.order_id,
        user_id=a.user_id,
        client_order_id=a.client_order_id,
        side=a.side,
        type=a.type,
        tif=None if a.type is OrderType.MARKET else a.tif,
        price_ticks=a.price_ticks,
        qty_lots=a.qty_lots,
        quote_nu=a.quote_nu,
        created_ts=a.ts,
        stp=a.stp,
        iceberg_lots=a.iceberg_lots,
        **state,  # type: ignore[arg-type]
    )


def _maker_update(o: Order, status: OrderStatus, exec_type: ExecType, **fill: object) -> OrderUpdate:
    """A resting order's report; a triggered conditional one's carries its stop."""
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
        stp=o.stp,
        iceberg_lots=o.iceberg_lots,
        stop=o.stop(),
        **fill,  # type: ignore[arg-type]
    )


def _replace(u: OrderUpdate, **changes: object) -> OrderUpdate:
    return msgspec.structs.replace(u, **changes)


def _pending_record(a: AcceptedOrder, lst: OrderList) -> RestingOrder:
    """A pending leg in the snapshot format (``pending``, arrival -1: not on the book)."""
    stop = isinstance(a, AcceptedStop)
    return _unfilled_record(
        a,
        -1,
        stop_ticks=a.stop_ticks if stop else 0,  # type: ignore[attr-defined]
        trailing_delta=a.trailing_delta if stop else 0,  # type: ignore[attr-defined]
        list_id=lst.list_id,
        list_info=lst.info(),
        pending=True,
    )


def _unfilled_record(a: AcceptedOrder, arrival: int, **more: object) -> RestingOrder:
    """An order that has traded nothing, in the snapshot format, from what it was accepted with (a waiting stop,
    a pending list leg); ``more``: its stop and list fields."""
    return RestingOrder(
        order_id=a.order_id,
        user_id=a.user_id,
        client_order_id=a.client_order_id,
        side=a.side,
        type=a.type,
        tif=a.tif,
        price_ticks=a.price_ticks,
        qty_lots=a.qty_lots,
        remaining=a.qty_lots,
        executed_lots=0,
        cum_nu=0,
        created_ts=a.ts,
        arrival=arrival,
        stp=a.stp,
        budget=a.budget,
        working_ts=-1,
        iceberg_lots=a.iceberg_lots,
        maker_bps=a.maker_bps,
        taker_bps=a.taker_bps,
        **more,  # type: ignore[arg-type]
    )
