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
quantity or by quote notional (``quote_nu``), which behaves as IOC; a MARKET order with a ``price_ticks``
(its price-protection limit, ``shared.price_band``) takes the book only up to it and expires the rest. Self-trade
prevention uses the taker's mode, as Binance does: EXPIRE_TAKER / EXPIRE_MAKER / EXPIRE_BOTH end orders;
DECREMENT (and TRANSFER, the same within one account) takes from both orders the lots the taker could have
taken from the maker, expires whichever reaches zero and reports the other's loss (``_decrement``).
``CancelAllOrders`` takes every open order of one owner (or of all) out in one step; ``MarketChange`` swaps
the market's row (its fees) at its place in the sequence.

Conditional orders (``AcceptedStop``: STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT, issue 24) wait
off the book in ``_stops`` (``_Stop``), reported NEW and not working; refused (-2010) when their stop price is met
by the last trade already (not a trailing one) or their owner has ``MAX_NUM_ALGO_ORDERS`` open here (waiting, or
triggered and resting). Every trade of a step is shown, in order, to the waiting stops, in arrival order
(``_run_stops``); those it triggers run right after the step's own matching, in the order they triggered, as the
MARKET or LIMIT they become (``_trigger``), inside the same event, and their trades are shown to the stops in
turn; one that rests keeps its stop on its reports (``_triggered``). A trailing one follows the best price since
its trailing started by ``trailing_delta`` BIPS, as Binance's trailing-stop FAQ says. A waiting stop keeps the
iceberg slice and fee tier rates it was accepted with (its snapshot record too): a triggered *_LIMIT that rests
is an iceberg like any other, and it trades at its owner's rates.
A book without stops pays for them one test per crossing order (and the last trade price, kept in
``BookState``); waiting stops are scanned per trade (O(stops) each: ``MAX_NUM_ALGO_ORDERS`` per owner bounds
them).

Order lists (``OrderListCommand``: OCO, OTO, OTOCO, issue 24) are placed in one step, their legs kept together in a
``_List`` (``_place_list``): an OCO pair's first leg to act (a fill, its stop triggering, an end) cancels the other in
the same step, before the waiting stops see the step's trades (``_lists_acted``, ``_resolve``; at its trigger in
``_run_stops``); an OTO / OTOCO working order's full fill places its pending legs in that step (``_place_pending``),
its other ends cancel them; a leg's cancel takes its whole list (``_cancel_leg``). A step that touched lists returns
a ``ListedEvent`` with their statuses and each leg's list (``_with_lists``). A book without lists pays one test per
crossing order and per cancel; the legs keep their list in the snapshot (``list_id``, ``list_info``; a pending leg
as a ``pending`` record).

Changes to a resting order: a cancel, refused (-2011) when its ``cancelRestrictions`` does not match the
order's status at that point of the sequence; an amend (``AmendOrder``, ``order/amend/keepPriority``) to a
smaller quantity, which keeps the order's place in its queue (its ``arrival``) and reports REPLACED.

Layout, chosen for speed (issue 7; ``bench core`` measures it): each side is a ``_Ladder``, a dict of price
levels plus a heap of the same levels by key (best on top; bids keyed by ``-price``; sifted by our own
functions, which compiled compare native ints) and the best level remembered. A level is a FIFO list of
``_Order`` read from a ``head`` index, with its live total and count. A cancel leaves its order in the list,
marked ``dead`` (skipped when it reaches the head), and a level emptied by a cancel stays in the heap until it
reaches the top; both are compacted once the dead outnumber the live, so memory stays proportional to what
rests. ``depth`` and the FOK pre-check sort a side's levels (O(L log L),
off the hot path).

A crossing order matches in named steps: ``_match`` walks the opposite side best level first,
``_take_level`` takes one level's queue front first, ``_fill`` trades with one maker, and
``_prevent_self_trade`` expires the maker, the taker or both when they have one owner; what the taker may
still take and has taken travels between them in one ``_Taker``.

Compiled: ``setup.py`` builds this module with mypyc (``COMPILED`` says whether the extension or this file
was imported; both behave the same, and the tests run against either). What the compiler wants shapes the
code: constants and other modules' classes are ``Final`` (C statics, not dict lookups); a command's fields are
read in one ``msgspec.structs.astuple`` call; resting orders are native ``_Order`` objects, converted to and
from the snapshot's ``RestingOrder`` only by ``order``, ``orders`` and ``restore``; values only passed from a
command into an event stay ``Boxed`` (untouched Python objects); the hot paths build events and their parts
with positional arguments (msgspec matches each keyword against the field names: ``OrderUpdate`` and
``MatchedEvent`` put their required fields first for it); the counters of ``BookState`` are plain fields;
``Boxed`` ints are compared unboxed (``_same``: ``==`` on two objects is a rich comparison), and no int is
multiplied by a negative one (mypyc does that on boxed objects).
The msgspec records live apart, since mypyc drops class keywords: ``RestingOrder`` and ``BookState`` in
``shared/booksnapshot.py`` (the reconciler reads them too), ``PlainOrder`` (the uncompiled ``_Order``) in
``records.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Final, cast, final

import msgspec

from shared.booksnapshot import BookState as BookState
from shared.booksnapshot import RestingOrder as RestingOrder
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
    EVERY_OWNER,
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
from shared.messages import LIST_ALL_DONE as _LIST_ALL_DONE
from shared.messages import LIST_EXEC_STARTED as _LIST_EXEC_STARTED
from shared.messages import LIST_EXECUTING as _LIST_EXECUTING
from shared.messages import LIST_REJECT as _LIST_REJECT
from shared.messages import LIST_RESPONSE as _LIST_RESPONSE

from .records import PlainOrder

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # not installed at run time: only mypyc (at build time) reads the decorator

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Any:  # type: ignore[misc]
        return lambda cls: cls


UNKNOWN_ORDER: Final = -2011
WOULD_TAKE: Final = -2010
NO_SUCH_ORDER: Final = -2013  # an amend of an order that is not open (Binance's "Order does not exist.")
AMEND_NOT_SMALLER: Final = -2038
RESTRICTED_MSG: Final = "Order was not canceled due to cancel restrictions."
AMEND_NOT_SMALLER_MSG: Final = "Order amend (quantity increase) is not supported."
AMEND_BELOW_EXECUTED_MSG: Final = "Order amend (quantity decrease) below the executed quantity is not supported."
WOULD_TRIGGER_MSG: Final = "Order would trigger immediately."
ALGO_ORDERS_MSG: Final = "Filter failure: MAX_NUM_ALGO_ORDERS"
# dead queue entries / empty levels tolerated before compacting; read when a Book is built (not Final: tests
# lower it)
COMPACT_SLACK = 32
COMPILED: Final = not __file__.endswith(".py")  # True when this module is the extension built by setup.py

Boxed = Any
"""An int the core passes on untouched (ids, prices, timestamps from a command into an event). Compiled, a
value typed ``int`` is unboxed and each hand-back to Python allocates a new object; ``Boxed`` keeps it as the
object it came as. Pure Python is the same either way."""

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_LIMIT_MAKER: Final = OrderType.LIMIT_MAKER
_GTC: Final = TimeInForce.GTC
_FOK: Final = TimeInForce.FOK
_NEW: Final = OrderStatus.NEW
_PENDING_NEW: Final = OrderStatus.PENDING_NEW
_PARTIALLY_FILLED: Final = OrderStatus.PARTIALLY_FILLED
_FILLED: Final = OrderStatus.FILLED
_CANCELED: Final = OrderStatus.CANCELED
_REJECTED: Final = OrderStatus.REJECTED
_EXPIRED: Final = OrderStatus.EXPIRED
_EXPIRED_IN_MATCH: Final = OrderStatus.EXPIRED_IN_MATCH
_X_NEW: Final = ExecType.NEW
_X_TRADE: Final = ExecType.TRADE
_X_CANCELED: Final = ExecType.CANCELED
_X_REJECTED: Final = ExecType.REJECTED
_X_EXPIRED: Final = ExecType.EXPIRED
_X_PREVENTION: Final = ExecType.TRADE_PREVENTION
_X_REPLACED: Final = ExecType.REPLACED
_ONLY_NEW: Final = CancelRestriction.ONLY_NEW
_ONLY_PARTIALLY_FILLED: Final = CancelRestriction.ONLY_PARTIALLY_FILLED
_STP_NONE: Final = StpMode.NONE
_EXPIRE_TAKER: Final = StpMode.EXPIRE_TAKER
_EXPIRE_MAKER: Final = StpMode.EXPIRE_MAKER
_EXPIRE_BOTH: Final = StpMode.EXPIRE_BOTH
_DECREMENT: Final = StpMode.DECREMENT
_TRANSFER: Final = StpMode.TRANSFER
_BPS: Final = BPS
# classes and functions of other modules, bound once: compiled, a Final is a C static, any other global a
# dict lookup per use
_AcceptedOrder: Final = AcceptedOrder
_AcceptedStop: Final = AcceptedStop
_CancelOrder: Final = CancelOrder
_CancelAllOrders: Final = CancelAllOrders
_MarketChange: Final = MarketChange
_OrderListCommand: Final = OrderListCommand
_ListedEvent: Final = ListedEvent
_market_of: Final = market_of
_EVERY_OWNER: Final = EVERY_OWNER
_CommandError: Final = CommandError
_RestingOrder: Final = RestingOrder
_OrderUpdate: Final = OrderUpdate
_Trade: Final = Trade
_LevelDelta: Final = LevelDelta
_MatchedEvent: Final = MatchedEvent
_astuple: Final = msgspec.structs.astuple  # one C call for all fields: cheaper than a getattr per field
_replace: Final = msgspec.structs.replace
# the ``trades`` of every event that traded nothing (a resting order, a cancel): one shared empty list, not a new
# one per event (its allocation and freeing cost about 100 instructions an event on the ``bench core`` flow).
# Nothing appends to an event's lists once it is built; ``tests/unit/matcher/test_core_build.py`` checks it stays
# empty.
_NO_TRADES: Final[list[Trade]] = []


# Positions of fields in ``msgspec.structs.astuple`` of a command or resting order. Literals, not looked up by
# name: compiled, a literal index is a constant in the C code, a computed ``Final`` a static checked for being
# set at every use (a dozen reads per order); ``_check_positions`` holds them to the records' field names.
_A_PARTITION: Final = 1
_A_OFFSET: Final = 2
_A_ID: Final = 3
_A_USER: Final = 4
_A_SIDE: Final = 6
_A_TYPE: Final = 7
_A_TIF: Final = 8
_A_PRICE: Final = 9
_A_QTY: Final = 10
_A_QUOTE: Final = 11
_A_BUDGET: Final = 12
_A_CLIENT_ID: Final = 13
_A_STP: Final = 14
_A_TS: Final = 15
_A_ICEBERG: Final = 16
_A_MAKER_BPS: Final = 17
_A_TAKER_BPS: Final = 18
_A_STOP: Final = 19  # AcceptedStop's: AcceptedOrder's fields, then its own
_A_TRAIL: Final = 20
_RESTING_FIELDS: Final = 14  # RestingOrder's fields up to ``stp``: a resting order's; then a stop's, an iceberg's
# the first of the fields no hot path passes to _Order: iceberg_lots, hidden, sub, maker_bps (after a stop's)
_ICEBERG_FIELDS: Final = 20
_C_PARTITION: Final = 1
_C_OFFSET: Final = 2
_C_REQUEST_ID: Final = 3
_C_ORDER_ID: Final = 4
_C_USER: Final = 5
_C_RESTRICTION: Final = 8


def _check_positions() -> None:
    """Refuse to load if a record's fields moved: the positions above would read the wrong ones."""
    expected = {
        AcceptedStop: {
            "src_partition": _A_PARTITION,
            "src_offset": _A_OFFSET,
            "order_id": _A_ID,
            "user_id": _A_USER,
            "side": _A_SIDE,
            "type": _A_TYPE,
            "tif": _A_TIF,
            "price_ticks": _A_PRICE,
            "qty_lots": _A_QTY,
            "quote_nu": _A_QUOTE,
            "budget": _A_BUDGET,
            "client_order_id": _A_CLIENT_ID,
            "stp": _A_STP,
            "ts": _A_TS,
            "iceberg_lots": _A_ICEBERG,
            "maker_bps": _A_MAKER_BPS,
            "taker_bps": _A_TAKER_BPS,
            "stop_ticks": _A_STOP,
            "trailing_delta": _A_TRAIL,
        },
        CancelOrder: {
            "src_partition": _C_PARTITION,
            "src_offset": _C_OFFSET,
            "request_id": _C_REQUEST_ID,
            "order_id": _C_ORDER_ID,
            "user_id": _C_USER,
            "restriction": _C_RESTRICTION,
        },
        RestingOrder: {"stp": _RESTING_FIELDS - 1, "iceberg_lots": _ICEBERG_FIELDS},
    }
    if AcceptedStop.__struct_fields__[: len(AcceptedOrder.__struct_fields__)] != AcceptedOrder.__struct_fields__:
        raise ImportError("AcceptedStop's fields must begin with AcceptedOrder's")
    for record, positions in expected.items():
        fields = record.__struct_fields__
        for name, i in positions.items():
            if i >= len(fields) or fields[i] != name:
                raise ImportError(f"{record.__name__}.{name} is not at position {i}: update book.py's positions")


_check_positions()


@mypyc_attr(acyclic=True)
class _Order:
    """A resting order as the book keeps it: a plain (compiled: native) object, not a ``RestingOrder``.

    Matching reads and updates a maker's fields in place; compiled, those are C struct fields, where a msgspec
    record costs a tuple (``astuple``) to read and a generic ``setattr`` per field to write. ``RestingOrder``,
    the snapshot format, is built only at the edges (``Book.order``, ``orders``, ``restore``). Fields only
    passed on into events (ids, prices, enums, timestamps) are ``Boxed``; ``dead`` marks a cancelled order
    that still sits in its level's queue (skipped when it reaches the head, dropped by compaction).

    ``acyclic``: it holds only scalars, so (like ``RestingOrder``'s ``gc=False``) the collector need not track
    it; tracked, its walks over a deep book cost about a sixth of the core's work (``bench core`` flow).
    Uncompiled, ``_Order`` is ``records.PlainOrder`` instead: a Python class would be tracked, and slower.
    """

    __slots__ = (
        "arrival",
        "client_order_id",
        "created_ts",
        "cum_nu",
        "dead",
        "executed_lots",
        "hidden",
        "iceberg_lots",
        "maker_bps",
        "order_id",
        "price_ticks",
        "qty_lots",
        "remaining",
        "side",
        "stp",
        "sub",
        "tif",
        "type",
        "user_id",
    )

    def __init__(
        self,
        order_id: Boxed,
        user_id: Boxed,
        client_order_id: Boxed,
        side: Boxed,
        type: Boxed,
        tif: Boxed,
        price_ticks: Boxed,
        qty_lots: Boxed,
        remaining: int,
        executed_lots: int,
        cum_nu: int,
        created_ts: Boxed,
        arrival: Boxed,
        stp: Boxed,
    ) -> None:
        self.order_id: Boxed = order_id
        self.user_id: Boxed = user_id
        self.client_order_id: Boxed = client_order_id
        self.side: Boxed = side
        self.type: Boxed = type
        self.tif: Boxed = tif
        self.price_ticks: Boxed = price_ticks
        self.qty_lots: Boxed = qty_lots
        self.remaining = remaining
        self.executed_lots = executed_lots
        self.cum_nu = cum_nu
        self.created_ts: Boxed = created_ts
        self.arrival: Boxed = arrival
        self.stp: Boxed = stp
        self.iceberg_lots: Boxed = 0  # an iceberg's slice; 0: not an iceberg (set by _hide, _from_record)
        self.hidden = 0  # an iceberg's lots not shown (``remaining`` is its visible slice)
        self.sub = 0  # its place among orders of one ``arrival`` (refilled slices of one step)
        self.maker_bps = -1  # its owner's fee tier's maker rate, stamped at acceptance (-1: the market's)
        self.dead = False


if not COMPILED:  # pure Python: the same fields in a mutable msgspec struct (see PlainOrder)
    _Order = PlainOrder  # type: ignore[assignment, misc]


def _record(o: _Order) -> RestingOrder:
    """A resting order in the snapshot format."""
    return _RestingOrder(
        o.order_id,
        o.user_id,
        o.client_order_id,
        o.side,
        o.type,
        o.tif,
        o.price_ticks,
        o.qty_lots,
        o.remaining,
        o.executed_lots,
        o.cum_nu,
        o.created_ts,
        o.arrival,
        o.stp,
        0,  # a stop's fields (stop_ticks, trailing_delta, trail_ticks, trail_ts, budget, working_ts): not one
        0,
        0,
        -1,
        0,
        0,
        o.iceberg_lots,
        o.hidden,
        o.sub,
        o.maker_bps,
    )


def _from_record(r: RestingOrder) -> _Order:
    """A snapshot's order as the book keeps it (``_Order`` takes ``RestingOrder``'s first fields in order, then
    the iceberg's four, which no hot path passes; a stop's fields, between them, are not the order's)."""
    t = _astuple(r)
    o = _Order(*t[:_RESTING_FIELDS])
    o.iceberg_lots, o.hidden, o.sub, o.maker_bps = t[_ICEBERG_FIELDS : _ICEBERG_FIELDS + 4]
    return o


def _hide(o: _Order, slice_lots: int) -> None:
    """An iceberg about to rest shows ``slice_lots`` of what it has left and hides the rest."""
    o.iceberg_lots = slice_lots
    left: int = o.remaining
    if left > slice_lots:
        o.hidden = left - slice_lots
        o.remaining = slice_lots


class _Stop:
    """An untriggered conditional order (issue 24), kept off the book in ``Book._stops``: the fields of the
    ``AcceptedOrder`` that placed it (``a``, what it takes the book with once triggered, as MARKET or LIMIT),
    the seq that placed it, and its trailing state: ``trail`` the best price since its trailing started (the
    highest for a SELL, the lowest for a BUY; 0 before it started), ``trail_ts`` when it started (-1 before).
    Off the hot path: a plain object."""

    __slots__ = ("a", "above", "arrival", "delta", "sell", "stop", "trail", "trail_ts")

    def __init__(self, a: tuple[Any, ...], arrival: Boxed, trail: int, trail_ts: Boxed) -> None:
        self.a = a
        self.arrival: Boxed = arrival
        self.stop: int = a[_A_STOP]
        self.delta: int = a[_A_TRAIL]
        self.above: bool = stop_above(a[_A_TYPE], a[_A_SIDE])
        self.sell: bool = a[_A_SIDE] is _SELL
        self.trail = trail
        self.trail_ts: Boxed = trail_ts

    def met(self, price: int) -> bool:
        """The stop price condition (Binance's table: at or above the stop, or at or below)."""
        return price >= self.stop if self.above else price <= self.stop

    def see(self, price: int, ts: Boxed) -> int:
        """A trade at ``price``: 2 if it triggers the order, 1 if it changed its trailing state, else 0.

        Without a delta the stop price condition triggers it. With one, the condition (or, without a stop
        price, nothing) starts the trailing at that trade's price; from then on a SELL triggers once the price
        falls ``delta`` BIPS below the highest since, a BUY once it rises ``delta`` BIPS above the lowest."""
        delta = self.delta
        if not delta:
            return 2 if self.met(price) else 0
        trail = self.trail
        if not trail:
            if self.stop and not self.met(price):
                return 0
            self.trail = price
            if self.trail_ts < 0:
                self.trail_ts = ts
            return 1
        if self.sell:
            if price > trail:
                self.trail = price
                return 1
            return 2 if price * _BPS <= trail * (_BPS - delta) else 0
        if price < trail:
            self.trail = price
            return 1
        return 2 if price * _BPS >= trail * (_BPS + delta) else 0


def _stop_state(s: _Stop, working_ts: Boxed) -> StopState:
    return StopState(s.stop, s.delta, s.trail_ts, working_ts)


def _stop_update(s: _Stop, status: OrderStatus, exec_type: ExecType, working_ts: Boxed) -> OrderUpdate:
    """A conditional order's report while it waits (NEW, CANCELED) or as it triggers (NEW, working)."""
    return _accepted_update(s.a, status, exec_type, _stop_state(s, working_ts))


def _accepted_update(
    a: tuple[Any, ...], status: OrderStatus, exec_type: ExecType, stop: StopState | None
) -> OrderUpdate:
    """A report built from the fields an order was accepted with, before any fill (a waiting stop, a list leg);
    a *_LIMIT iceberg's slice is on its reports from placement on."""
    otype = a[_A_TYPE]
    return OrderUpdate(
        a[_A_ID],
        a[_A_USER],
        a[_A_CLIENT_ID],
        a[_A_SIDE],
        otype,
        None if otype.triggered is _MARKET else a[_A_TIF],
        a[_A_PRICE],
        a[_A_QTY],
        status,
        exec_type,
        a[_A_TS],
        stp=a[_A_STP],
        iceberg_lots=a[_A_ICEBERG],
        stop=stop,
    )


def _stop_record(s: _Stop) -> RestingOrder:
    """An untriggered conditional order in the snapshot format (its stop fields set)."""
    a = s.a
    qty: int = a[_A_QTY]
    return RestingOrder(
        a[_A_ID],
        a[_A_USER],
        a[_A_CLIENT_ID],
        a[_A_SIDE],
        a[_A_TYPE],
        a[_A_TIF],
        a[_A_PRICE],
        qty,
        qty,
        0,
        0,
        a[_A_TS],
        s.arrival,
        a[_A_STP],
        s.stop,
        s.delta,
        s.trail,
        s.trail_ts,
        a[_A_BUDGET],
        -1,
        a[_A_ICEBERG],  # the slice it will show once triggered, if it rests; nothing hidden yet
        0,
        0,
        a[_A_MAKER_BPS],
        a[_A_TAKER_BPS],
    )


def _stop_from_record(r: RestingOrder) -> _Stop:
    a = AcceptedStop(
        src_partition=-1,
        src_offset=-1,
        order_id=r.order_id,
        user_id=r.user_id,
        symbol="",
        side=r.side,
        type=r.type,
        tif=r.tif,
        price_ticks=r.price_ticks,
        qty_lots=r.qty_lots,
        budget=r.budget,
        client_order_id=r.client_order_id,
        stp=r.stp,
        ts=r.created_ts,
        stop_ticks=r.stop_ticks,
        trailing_delta=r.trailing_delta,
        iceberg_lots=r.iceberg_lots,
        maker_bps=r.maker_bps,
        taker_bps=r.taker_bps,
    )
    return _Stop(_astuple(a), r.arrival, r.trail_ticks, r.trail_ts)


class _List:
    """An order list (OCO, OTO, OTOCO; issue 24) while any of its legs is open: ``live`` the legs on the book or
    waiting as stops, ``pending`` the fields of the legs its working order's full fill places (OTO, OTOCO), in leg
    order. ``oco``: its live legs cancel each other (an OCO; an OTOCO once its pending pair is placed), so the first
    of them to act (trade, trigger, end) cancels the others. ``done``: its contingency is over (ALL_DONE reported);
    a leg still open after that (an OCO leg partly filled) is an ordinary order that keeps its ``orderListId``.
    Off the hot path: a plain object."""

    __slots__ = ("client_id", "contingency", "done", "legs", "list_id", "live", "oco", "pending", "user_id")

    def __init__(self, list_id: Boxed, user_id: Boxed, contingency: str, client_id: Boxed, legs: list[Any]) -> None:
        self.list_id: Boxed = list_id
        self.user_id: Boxed = user_id
        self.contingency = contingency
        self.client_id: Boxed = client_id
        self.legs: list[Any] = legs  # [order id, client order id] of every leg, in leg order
        self.live: dict[int, None] = {}
        self.pending: list[tuple[Any, ...]] = []
        self.oco = contingency == "OCO"
        self.done = False

    def info(self) -> str:
        """The list as its legs' snapshot records carry it (``list_info``)."""
        info = {"u": self.user_id, "c": self.contingency, "k": self.client_id, "l": self.legs}
        info.update(o=self.oco, d=self.done)
        return msgspec.json.encode(info).decode()


def _list_of(list_id: int, info: str) -> _List:
    """A list back from its legs' ``list_info`` (``restore``)."""
    d = msgspec.json.decode(info)
    lst = _List(list_id, d["u"], d["c"], d["k"], [list(leg) for leg in d["l"]])
    lst.oco, lst.done = d["o"], d["d"]
    return lst


def _leg_update(a: tuple[Any, ...], status: OrderStatus, exec_type: ExecType) -> OrderUpdate:
    """A list leg's report from the fields it was accepted with (a pending leg's; a refused list's legs')."""
    otype = a[_A_TYPE]
    return _accepted_update(a, status, exec_type, StopState(a[_A_STOP], a[_A_TRAIL]) if otype.is_stop else None)


def _stop_fields(a: tuple[Any, ...]) -> tuple[Any, ...]:
    """An accepted order's fields as an ``AcceptedStop``'s (a plain one's stop and delta 0)."""
    return a if len(a) > _A_TRAIL else (*a, 0, 0)


def _last_deltas(deltas: list[LevelDelta]) -> list[LevelDelta]:
    """One delta per level, in order of first touch, with its last total: a step that ran triggered orders
    after its own reports some levels more than once."""
    last: dict[tuple[Any, int], LevelDelta] = {}
    for d in deltas:
        last[(d.side, d.price_ticks)] = d  # an existing key keeps its place
    return list(last.values())


def _fillable_decrementing(
    queue: list[_Order], head: int, uid: int, price: int, need: int, budget: int
) -> tuple[int, int] | None:
    """A FOK taker in DECREMENT/TRANSFER mode through one level that holds an order of its own owner, in the
    order ``_take_level`` would meet them: a fill takes lots (and a BUY's ``budget``, -1 for a SELL), an own
    order takes the same lots from both without a trade, and an iceberg whose slice is used up shows its next
    one at the back. Returns the taker's need and budget after the level, or None when the taker would stop
    here unfilled: it cannot take a lot, or an own order at least its size makes it expire."""
    users: list[int] = []
    left: list[int] = []
    hides: list[int] = []
    slices: list[int] = []
    for i in range(head, len(queue)):
        o = queue[i]
        if not o.dead:
            users.append(o.user_id)
            left.append(o.remaining)
            hides.append(o.hidden)
            slices.append(o.iceberg_lots)
    k = 0
    while k < len(users):
        can = need
        if budget >= 0 and budget // price < can:
            can = budget // price
        if can == 0:
            return None
        rem = left[k]
        lots = can if can < rem else rem
        if users[k] == uid:
            if lots == can:  # the taker has nothing left to trade: it expires
                return None
        elif budget >= 0:
            budget -= lots * price
        need -= lots
        if need == 0:
            return need, budget
        if lots == rem and hides[k]:  # the next slice, at the back of the level
            shown = slices[k] if slices[k] < hides[k] else hides[k]
            users.append(users[k])
            left.append(shown)
            hides.append(hides[k] - shown)
            slices.append(slices[k])
        k += 1
    return need, budget


def _same(a: int, b: int) -> bool:
    """Equal ints: compiled, a native comparison (``==`` on two int objects is a rich comparison)."""
    return a == b


def _ended(o: _Order, status: OrderStatus, exec_type: ExecType) -> OrderUpdate:
    """The last update of a resting order taken out without a fill (cancel, self-trade)."""
    executed: Boxed = o.executed_lots
    cum_nu: Boxed = o.cum_nu
    return _OrderUpdate(  # positional: every field in order (quote_nu: 0, a resting order's)
        o.order_id,
        o.user_id,
        o.client_order_id,
        o.side,
        o.type,
        o.tif,
        o.price_ticks,
        o.qty_lots,
        status,
        exec_type,
        o.created_ts,
        0,
        executed,
        cum_nu,
        0,  # last_lots, last_ticks, trade_id, is_maker, fee, reject_code, reason, orig_client_order_id
        0,
        -1,
        False,
        0,
        0,
        "",
        "",
        o.stp,
        o.iceberg_lots,
    )


class _Level:
    """One price level: orders in arrival order from ``head`` on (cancelled ones linger until skipped), live
    lots and count. Entries before ``head`` were filled or skipped; they are cut off once they are the most.
    ``key`` is its place in its side's heap: ``sign * price``, the smallest the best."""

    __slots__ = ("head", "key", "live", "lots", "price", "queue", "ticks")

    def __init__(self, price: int, ticks: Boxed, key: int) -> None:
        self.price = price
        self.ticks: Boxed = ticks  # the same price as the object events carry
        self.key = key
        self.lots = 0
        self.live = 0
        self.head = 0
        self.queue: list[_Order] = []


def _level_key(level: _Level) -> int:
    return level.key


def _heap_push(heap: list[_Level], level: _Level) -> None:
    """``heapq.heappush`` on ``_Level.key``: compiled, native int comparisons instead of a rich comparison of
    boxed keys per step (and the heap holds the levels themselves, so its top needs no lookup by price)."""
    key = level.key
    i = len(heap)
    heap.append(level)
    while i:
        parent = (i - 1) >> 1
        above = heap[parent]
        if above.key < key:
            break
        heap[i] = above
        i = parent
    heap[i] = level


def _heap_pop(heap: list[_Level]) -> None:
    """Drop the top of a ``_heap_push`` heap (``heapq.heappop``; keys are distinct, one level per price)."""
    last = heap.pop()
    n = len(heap)
    if not n:
        return
    key = last.key
    i = 0
    child = 1
    while child < n:
        below = heap[child]
        right = child + 1
        if right < n:
            other = heap[right]
            if other.key < below.key:
                child, below = right, other
        if key < below.key:
            break
        heap[i] = below
        i = child
        child = 2 * i + 1
    heap[i] = last


class _Ladder:
    """One side's levels: ``levels`` by price, and ``heap`` of the same levels, by key (best on top).

    ``empty`` counts levels whose last order left by a cancel or a fill and that wait to be popped at the top
    (or compacted). ``top``, when set, is the level with the best key of all in ``levels`` (it may be empty):
    the usual answer of ``best`` without touching the heap. ``slack`` is ``COMPACT_SLACK`` when the book was
    built (compiled, a module global read is a dict lookup).
    """

    __slots__ = ("empty", "heap", "levels", "side", "sign", "slack", "top")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.sign = -1 if side is _BUY else 1
        self.levels: dict[int, _Level] = {}
        self.heap: list[_Level] = []
        self.empty = 0
        self.top: _Level | None = None
        self.slack: int = COMPACT_SLACK

    def best(self) -> _Level | None:
        """The best level with an order in it, popping emptied levels off the top."""
        top = self.top
        if top is not None and top.live:
            return top
        heap = self.heap
        while heap:
            level = heap[0]
            if level.live:
                self.top = level
                return level
            _heap_pop(heap)
            del self.levels[level.ticks]  # the key itself: found by identity, no int comparison
            self.empty -= 1
        self.top = None
        return None

    def add(self, price: int, ticks: Boxed) -> _Level:
        """A new, empty level at ``price`` (not yet in ``levels``)."""
        key = -price if self.sign < 0 else price  # not price * sign: mypyc multiplies negatives the slow way
        level = self.levels[ticks] = _Level(price, ticks, key)
        heap = self.heap
        _heap_push(heap, level)
        if heap[0] is level:  # the best key of all
            self.top = level
        return level

    def sorted_levels(self) -> list[_Level]:
        """Levels with orders, best first (a sort: for depth, FOK checks and snapshots, not the hot path)."""
        return [lv for lv in sorted(self.heap, key=_level_key) if lv.live]

    def leave(self, level: _Level, head: int) -> None:
        """A taker is done with ``level``, whose queue it took up to ``head``: an emptied level is counted,
        and the filled and skipped entries are cut off once they are the most."""
        if not level.live:
            self.level_emptied(level)
        elif 2 * head > len(level.queue):
            del level.queue[:head]
            level.head = 0
        else:
            level.head = head

    def level_emptied(self, level: _Level) -> None:
        """Count a level whose last order left; rebuild the side once emptied levels outnumber live ones."""
        level.queue = []  # only cancelled orders can be left in it
        level.head = 0
        self.empty += 1
        if self.empty > self.slack and 2 * self.empty > len(self.levels):
            self.levels = {p: lv for p, lv in self.levels.items() if lv.live}
            self.heap = sorted(self.levels.values(), key=_level_key)  # sorted: a heap already
            self.empty = 0
            self.top = None


@final
@mypyc_attr(acyclic=True)
class _Taker:
    """An order crossing the book, while it matches (``Book._match``): its own fields, repeated by each of its
    fill updates, what still bounds it, and what it has taken.

    Compiled, a native object: its fields are C struct fields, read and written about as cheaply as the
    locals of one long function, which is what lets matching be split into named steps. ``acyclic``: it holds
    only scalars (see ``_Order``). ``remaining`` is -1 while a quote-sized taker has no lot count.
    """

    __slots__ = (
        "budget",
        "buyer_k",
        "client_order_id",
        "completed_late",
        "created_ts",
        "cum_nu",
        "decrement",
        "executed",
        "expire_maker",
        "expire_taker",
        "iceberg_lots",
        "is_buy",
        "last",
        "limit",
        "order_id",
        "prevented",
        "price_ticks",
        "qty_lots",
        "quote_left",
        "quote_nu",
        "remaining",
        "seller_k",
        "side",
        "stop",
        "stp",
        "stp_expired",
        "stp_on",
        "tif",
        "trade_id",
        "type",
        "unbounded",
        "user_id",
    )

    def __init__(self, a: tuple[Any, ...], trade_id: int, buyer_k: int, seller_k: int) -> None:
        side, otype, stp = a[_A_SIDE], a[_A_TYPE], a[_A_STP]
        qty: int = a[_A_QTY]
        self.order_id: Boxed = a[_A_ID]
        self.user_id: Boxed = a[_A_USER]
        self.client_order_id: Boxed = a[_A_CLIENT_ID]
        self.side: Boxed = side
        self.type: Boxed = otype
        self.is_buy = side is _BUY
        self.unbounded = otype is _MARKET and not a[_A_PRICE]  # a MARKET with a price stops at it (price_band)
        self.tif: Boxed = None if otype is _MARKET else a[_A_TIF]
        self.price_ticks: Boxed = a[_A_PRICE]
        self.limit: int = a[_A_PRICE]
        self.qty_lots: Boxed = a[_A_QTY]
        self.quote_nu: Boxed = a[_A_QUOTE]
        self.created_ts: Boxed = a[_A_TS]
        self.stp: Boxed = stp
        self.iceberg_lots: Boxed = a[_A_ICEBERG]
        self.stp_on = stp is not _STP_NONE
        self.expire_maker = stp is _EXPIRE_MAKER or stp is _EXPIRE_BOTH
        self.expire_taker = stp is _EXPIRE_TAKER or stp is _EXPIRE_BOTH
        self.decrement = stp is _DECREMENT or stp is _TRANSFER
        self.prevented = 0  # lots lost to DECREMENT/TRANSFER prevented matches
        self.remaining: int = qty or -1  # -1: sized by quote
        self.quote_left: int = a[_A_QUOTE]
        self.budget: int = a[_A_BUDGET]
        self.executed = 0
        self.cum_nu = 0
        self.trade_id = trade_id
        self.buyer_k = buyer_k  # fee = lots * buyer_k // BPS (the buyer's, in base atoms)
        self.seller_k = seller_k  # fee = nu * seller_k // BPS (the seller's, in quote atoms)
        self.stop = False
        self.completed_late = False
        self.stp_expired = False
        self.last = 0  # the price of its last fill (the symbol's last trade price, which triggers stops)

    def reaches(self, price: int) -> bool:
        """Whether the taker's limit lets it take at ``price`` (a MARKET order without a limit takes at any)."""
        return self.unbounded or (price <= self.limit if self.is_buy else price >= self.limit)

    def lots_at(self, price: int, offered: int) -> int:
        """How many of ``offered`` lots at ``price`` the taker takes: its size, budget and quote all bound it."""
        remaining = self.remaining
        lots = offered if remaining < 0 or offered < remaining else remaining
        budget = self.budget
        if self.is_buy:
            cap = budget // price
            if cap < lots:
                lots = cap
        elif budget < lots:
            lots = budget
        quote_left = self.quote_left
        if quote_left:
            cap = quote_left // price
            if cap < lots:
                lots = cap
        return lots

    def prevent(self, lots: int, price: int) -> None:
        """Count ``lots`` lost to a prevented match at ``price`` (DECREMENT/TRANSFER): they leave the taker's
        size (or its quote, for a quote-sized one) as a fill would, but trade nothing and spend no budget."""
        self.prevented += lots
        if self.remaining > 0:
            self.remaining -= lots
        quote_left = self.quote_left
        if quote_left:
            quote_left -= lots * price
            self.quote_left = quote_left
            if quote_left == 0:
                self.remaining = 0

    def stop_short(self, price: int) -> None:
        """The taker can take no lot at ``price``: it stops, and a quote-sized one whose quote no longer buys a
        lot (after at least one fill) is complete."""
        if self.remaining < 0 and self.executed and self.quote_left // price == 0:
            self.completed_late = True
        self.stop = True

    def took(self, lots: int, nu: int) -> None:
        """Count a fill of ``lots`` for ``nu`` notional units against what bounds the taker."""
        self.executed += lots
        self.cum_nu += nu
        if self.remaining > 0:
            self.remaining -= lots
        quote_left = self.quote_left
        if quote_left:
            quote_left -= nu
            self.quote_left = quote_left
            if quote_left == 0:
                self.remaining = 0
        self.budget -= nu if self.is_buy else lots


def _last_fill_completes(updates: list[OrderUpdate], taker_id: Boxed) -> bool:
    """A quote-sized taker completed by its quote running out: its last fill is the one that completed it
    (FILLED), even if self-trade prevention expired makers after it. False when the taker's last update is
    not a fill (a DECREMENT it survived came after): it is not complete but expires, its quote unspent."""
    for i in range(len(updates) - 1, 0, -1):
        last = updates[i]
        if last.order_id == taker_id:
            if last.exec_type is not _X_TRADE:
                return False
            if last.status is not _FILLED:
                updates[i] = _replace(last, status=_FILLED)
            return True
    return False


class Book:
    """One symbol's book. ``state`` is read from counters kept as plain fields, so it is a fresh copy."""

    def __init__(self, market: Market, state: BookState | None = None) -> None:
        self.market = market
        s = state if state is not None else BookState()
        self._seq: int = s.seq
        self._next_trade_id: int = s.next_trade_id
        self._next_prevented_id: int = s.next_prevented_id
        # the last taker expiry's match id, counter order, lots prevented in all and in that match
        self._taker_prevented: tuple[int, Boxed, int, int] = (-1, -1, 0, 0)
        self._refill_seq = 0  # the seq of the last iceberg refill, and how many it refilled so far
        self._refill_sub = 0
        self._src_partition: int = s.src_partition
        self._src_offset: int = s.src_offset
        self._symbol: str = market.symbol
        self._bids, self._asks = _Ladder(_BUY), _Ladder(_SELL)
        self._orders: dict[int, _Order] = {}
        self._last: int = s.last_ticks  # the last trade's price (0: none yet)
        self._stops: dict[int, _Stop] = {}  # untriggered conditional orders, in arrival order
        self._stops_changed: dict[int, None] = {}  # ids of stops whose trailing state moved (for the snapshot)
        self._triggering = False  # running a triggered order: its trades are scanned by the caller
        self._triggered: dict[int, StopState] = {}  # triggered orders that rest: their stop, on all their reports
        self._legs: dict[int, _List] = {}  # open order-list legs (on the book, waiting, pending) by order id
        self._list_news: list[ListStatus] = []  # the list statuses of the step being built
        self._ended_legs: dict[int, Boxed] = {}  # legs that ended in that step, by order id: their list's id
        self._buyer_k_buy = self._buyer_k_sell = self._seller_k_buy = self._seller_k_sell = 0
        self._apl = self._apn = 0  # the market's atoms per lot and per notional unit (fee tiers' rates)
        self._set_market(market)

    def _set_market(self, market: Market) -> None:
        """Take ``market``'s row, from a ``MarketChange`` on: its fee arithmetic (of Market.fee_atoms), folded
        per taker side: fee = lots * k // BPS (base, buyer) or nu * k // BPS (quote, seller). Its tick and
        step never change (``spot admin market update`` refuses it), so the resting orders keep their meaning."""
        self.market = market
        apl, apn = market.atoms_per_lot, market.atoms_per_nu
        self._apl, self._apn = apl, apn
        mk, tk = market.maker_fee_bps, market.taker_fee_bps
        self._buyer_k_buy, self._buyer_k_sell = apl * tk, apl * mk  # by taker side
        self._seller_k_buy, self._seller_k_sell = apn * mk, apn * tk

    @property
    def state(self) -> BookState:
        """The counters that must survive a restart (a snapshot: changing it changes nothing here)."""
        return BookState(
            self._seq, self._next_trade_id, self._src_partition, self._src_offset, self._next_prevented_id, self._last
        )

    # --- queries ---------------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        level = self._bids.best()
        return None if level is None else level.price

    def best_ask(self) -> int | None:
        level = self._asks.best()
        return None if level is None else level.price

    def order(self, order_id: int) -> RestingOrder | None:
        """A resting order, as a snapshot record (a copy: changing it changes nothing here)."""
        o = self._orders.get(order_id)
        if o is None:
            s = self._stops.get(order_id)  # an untriggered stop (its record carries its stop fields)
            if s is None:
                lst = self._legs.get(order_id) if self._legs else None
                return None if lst is None else self._pending_record(lst, order_id)
            record = _stop_record(s)
        else:
            record = self._resting_record(o)
        if self._legs:
            lst = self._legs.get(order_id)
            if lst is not None:
                return _replace(record, list_id=lst.list_id, list_info=lst.info())
        return record

    def orders(self) -> Iterator[RestingOrder]:
        """The resting orders, as snapshot records (copies)."""
        if self._legs:
            return (cast(RestingOrder, self.order(o.order_id)) for o in list(self._orders.values()))
        return (self._resting_record(o) for o in self._orders.values())

    def _pending_record(self, lst: _List, order_id: int) -> RestingOrder | None:
        """A pending leg's snapshot record (``pending``: not on the book), None if ``order_id`` is not one."""
        for a in lst.pending:
            if _same(a[_A_ID], order_id):
                stop = _Stop(_stop_fields(a), -1, 0, -1)
                return _replace(_stop_record(stop), list_id=lst.list_id, list_info=lst.info(), pending=True)
        return None

    def _resting_record(self, o: _Order) -> RestingOrder:
        """A resting order's record; a triggered conditional one's with its stop and when it triggered."""
        record = _record(o)
        stop = self._triggered.get(o.order_id) if self._triggered else None
        if stop is None:
            return record
        return _replace(
            record,
            stop_ticks=stop.stop_ticks,
            trailing_delta=stop.trailing_delta,
            trail_ts=stop.trailing_ts,
            working_ts=stop.working_ts,
        )

    def _carry(self, u: OrderUpdate) -> OrderUpdate:
        """A triggered order that rests keeps its stop on every report, until the one that ends it."""
        stop = self._triggered.get(u.order_id)
        if stop is None:
            return u
        if not u.status.is_open:
            del self._triggered[u.order_id]
        return _replace(u, stop=stop)

    def stops(self) -> Iterator[RestingOrder]:
        """The untriggered conditional orders, as snapshot records (copies), in arrival order."""
        if self._legs:
            return (cast(RestingOrder, self.order(s.a[_A_ID])) for s in list(self._stops.values()))
        return (_stop_record(s) for s in self._stops.values())

    def lists(self) -> Iterator[RestingOrder]:
        """The pending legs of order lists (OTO, OTOCO), as snapshot records (copies)."""
        for lst in {id(x): x for x in self._legs.values()}.values():
            for a in lst.pending:
                record = self._pending_record(lst, a[_A_ID])
                if record is not None:
                    yield record

    def stops_changed(self) -> list[int]:
        """The ids of stops whose trailing state moved since the last call (no update reports that), for the
        snapshot to write; a stop that left since is among them too, and ``order`` tells it is gone."""
        changed = list(self._stops_changed)
        self._stops_changed.clear()
        return changed

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
            + ((o.iceberg_lots, o.hidden, o.sub) if o.iceberg_lots else ())
            + ((o.maker_bps,) if o.maker_bps >= 0 else ())
            for o in sorted(self.orders(), key=lambda o: (o.side, o.price_ticks, o.arrival, o.sub))
        )
        held: tuple[Any, ...] = (rows, self._seq, self._next_trade_id)
        if self._stops:  # a book without stops hashes as before they existed; times left out, as above
            stops = tuple(self._stop_row(s) for s in self._stops.values())
            held += (stops, self._last)
        if self._triggered:
            held += (tuple(sorted((i, s.stop_ticks, s.trailing_delta) for i, s in self._triggered.items())),)
        if self._legs:  # a book without lists hashes as before they existed
            lists = {id(x): x for x in self._legs.values()}.values()
            listed = ((x.list_id, x.oco, x.done, tuple(x.live), tuple(p[_A_ID] for p in x.pending)) for x in lists)
            held += (tuple(sorted(listed)),)
        digest = hashlib.blake2b(msgspec.msgpack.encode(held), digest_size=8)
        return int.from_bytes(digest.digest(), "big", signed=True)  # the same in every process, unlike hash()

    @staticmethod
    def _stop_row(s: _Stop) -> tuple[Any, ...]:
        """A waiting stop's part of ``state_hash``: what it is and its trailing state, no times."""
        a = s.a
        row = (s.arrival, a[_A_ID], a[_A_TYPE], a[_A_PRICE], a[_A_QTY], a[_A_BUDGET], s.stop, s.delta, s.trail)
        extra = (a[_A_ICEBERG], a[_A_MAKER_BPS], a[_A_TAKER_BPS])  # an iceberg's slice, a tier's rates
        return row + extra if extra != (0, -1, -1) else row  # a plain stop hashes as before the iceberg

    # --- restore -----------------------------------------------------------------------------------------
    def restore(self, orders: list[RestingOrder]) -> None:
        """Rebuild from a snapshot; orders may come in any order, ``arrival`` restores the queues."""
        lists: dict[int, _List] = {}
        for o in sorted(orders, key=lambda o: (o.arrival, o.sub)):
            if o.list_id >= 0:  # a list's leg: its list, once for all its legs
                lst = lists.get(o.list_id)
                if lst is None:
                    lst = lists[o.list_id] = _list_of(o.list_id, o.list_info)
                self._legs[o.order_id] = lst
                if o.pending:
                    lst.pending.append(_stop_from_record(o).a)
                    continue
                lst.live[o.order_id] = None
            if (o.stop_ticks or o.trailing_delta) and o.working_ts == -1:
                self._stops[o.order_id] = _stop_from_record(o)
            else:
                if o.stop_ticks or o.trailing_delta:  # triggered, resting
                    self._triggered[o.order_id] = StopState(o.stop_ticks, o.trailing_delta, o.trail_ts, o.working_ts)
                self._rest(_from_record(o))
        for lst in lists.values():  # live and pending legs in leg order, as the list placed them
            order = [leg[0] for leg in lst.legs]
            lst.pending.sort(key=lambda a: order.index(a[_A_ID]))
            lst.live = {i: None for i in order if i in lst.live}

    # --- commands ------------------------------------------------------------------------------------------
    def is_duplicate(self, command: MatcherCommand) -> bool:
        """A redelivered command: its source position is not past the last one applied."""
        return (command.src_partition, command.src_offset) <= (self._src_partition, self._src_offset)

    def apply(self, command: MatcherCommand, ts: Boxed) -> MatchedEvent | None:
        """Apply one command at ``ts`` (an int, ms); ``None`` if it was already applied (a redelivery).

        ``ts`` is ``Boxed``: compiled, an ``int`` parameter would be unboxed here and boxed again into a new
        object for the event."""
        # by exact type first: decoded commands are never subclasses, and a failed isinstance on a Struct
        # class costs a call of its metaclass's __instancecheck__
        kind = type(command)
        placing = kind is _AcceptedOrder or (kind is not _CancelOrder and isinstance(command, AcceptedOrder))
        if not placing and not (kind is _CancelOrder or isinstance(command, CancelOrder)):
            if kind is _MarketChange or isinstance(command, MarketChange):
                change = cast(MarketChange, command)  # takes the position, not a seq: nothing to report
                if self.skip(change.src_partition, change.src_offset):
                    self._set_market(_market_of(change.market))
                return None
            seq = self._advance(command.src_partition, command.src_offset)
            if not seq:
                return None
            if kind is _CancelAllOrders or isinstance(command, CancelAllOrders):
                return self._cancel_all(cast(CancelAllOrders, command), ts, seq)
            if isinstance(command, AmendOrder):  # off the hot paths: amends are rare next to orders
                return self._amend(command, ts, seq)
            if kind is _OrderListCommand or isinstance(command, OrderListCommand):
                return self._place_list(cast(OrderListCommand, command), ts, seq)
            return self._reject(cast(RejectedOrder, command), ts, seq)
        t = _astuple(command)
        partition: int = t[_A_PARTITION] if placing else t[_C_PARTITION]
        offset: int = t[_A_OFFSET] if placing else t[_C_OFFSET]
        # _advance, inlined on the two hot paths
        if partition < self._src_partition or (partition == self._src_partition and offset <= self._src_offset):
            return None
        self._src_partition = partition
        self._src_offset = offset
        self._seq = seq = self._seq + 1
        if not placing:
            return self._cancel(t, ts, seq)
        if kind is not _AcceptedOrder and isinstance(command, AcceptedStop):  # a conditional order: off the hot path
            return self._place_stop(t, ts, seq)
        return self._place(t, ts, seq)

    def skip(self, partition: int, offset: int) -> bool:
        """Pass over a command that cannot be applied (dead-lettered): its source position is taken, so a
        redelivery is skipped as a duplicate, but no ``seq`` is used, so the output stays gap-free. False if
        the position was passed already."""
        if partition < self._src_partition or (partition == self._src_partition and offset <= self._src_offset):
            return False
        self._src_partition, self._src_offset = partition, offset
        return True

    def _advance(self, partition: int, offset: int) -> int:
        """The seq of a command from this source position, or 0 if it was already applied (a redelivery)."""
        if partition < self._src_partition or (partition == self._src_partition and offset <= self._src_offset):
            return 0
        self._src_partition, self._src_offset = partition, offset
        self._seq += 1
        return self._seq

    def _reject(self, r: RejectedOrder, ts: Boxed, seq: Boxed) -> MatchedEvent:
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
        return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=r.order_id, updates=[update])

    def _cancel(self, c: tuple[Any, ...], ts: Boxed, seq: Boxed) -> MatchedEvent:
        """A ``CancelOrder`` (``c``: its fields)."""
        order_id = c[_C_ORDER_ID]
        if self._legs and order_id in self._legs:  # a list's leg: the whole list goes (off the hot path)
            return self._cancel_leg(c, ts, seq)
        o = self._orders.get(order_id)
        if o is None and order_id in self._stops:
            return self._cancel_stop(c, ts, seq)
        if o is None or not _same(o.user_id, c[_C_USER]):
            error = _CommandError(user_id=c[_C_USER], order_id=order_id, code=UNKNOWN_ORDER, msg="Unknown order sent.")
            return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c[_C_REQUEST_ID], error=error)
        restriction = c[_C_RESTRICTION]
        if restriction is not None and (
            (restriction is _ONLY_NEW and o.executed_lots)
            or (restriction is _ONLY_PARTIALLY_FILLED and not o.executed_lots)
        ):
            error = _CommandError(user_id=c[_C_USER], order_id=order_id, code=UNKNOWN_ORDER, msg=RESTRICTED_MSG)
            return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c[_C_REQUEST_ID], error=error)
        side, price = o.side, o.price_ticks
        ladder = self._bids if side is _BUY else self._asks
        level = ladder.levels[price]
        del self._orders[o.order_id]  # the key itself (the command's order_id is an equal, other object)
        o.dead = True  # its queue entry lingers: skipped at the front, or compacted
        level.lots -= o.remaining
        level.live -= 1
        if not level.live:
            ladder.level_emptied(level)
        elif len(level.queue) - level.head > 2 * level.live + ladder.slack:
            level.queue = [q for q in level.queue[level.head :] if not q.dead]
            level.head = 0
        ended = _ended(o, _CANCELED, _X_CANCELED)
        if self._triggered:
            ended = self._carry(ended)
        return _MatchedEvent(  # positional (see MatchedEvent): updates, trades, deltas
            self._symbol, seq, ts, c[_C_REQUEST_ID], [ended], _NO_TRADES, [_LevelDelta(side, price, level.lots)]
        )

    def _cancel_all(self, c: CancelAllOrders, ts: Boxed, seq: Boxed) -> MatchedEvent:
        """A ``CancelAllOrders``: every open order of its user (``EVERY_OWNER``: all of them) leaves the book in
        this one step, in arrival order (``_orders`` keeps it: orders enter it as they arrive, and ``restore``
        adds them by ``arrival``); one delta per level touched, in order of first touch, with its total after.
        Nothing to cancel is -2011 for a user, as Binance answers ``DELETE openOrders`` then, and an empty
        event for every owner (an operator's halt of an empty book). Off the hot path."""
        user_id = c.user_id
        every = _same(user_id, _EVERY_OWNER)
        gone = [o for o in self._orders.values() if every or _same(o.user_id, user_id)]
        stops = [s for s in self._stops.values() if every or _same(s.a[_A_USER], user_id)]
        if not gone and not stops and not every:
            error = _CommandError(user_id=user_id, order_id=0, code=UNKNOWN_ORDER, msg="Unknown order sent.")
            return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c.request_id, error=error)
        updates: list[OrderUpdate] = []
        touched: dict[tuple[Any, int], _Level] = {}
        for o in gone:
            side = o.side
            ladder = self._bids if side is _BUY else self._asks
            level = ladder.levels[o.price_ticks]
            del self._orders[o.order_id]
            o.dead = True
            level.lots -= o.remaining
            level.live -= 1
            if (side, level.price) not in touched:
                touched[(side, level.price)] = level
            if not level.live:
                ladder.level_emptied(level)
            updates.append(self._carry(_ended(o, _CANCELED, _X_CANCELED)))
        for level in touched.values():  # levels still holding orders: drop their dead entries
            if level.live:
                level.queue = [q for q in level.queue[level.head :] if not q.dead]
                level.head = 0
        for s in stops:  # then the untriggered stops, in arrival order
            del self._stops[s.a[_A_ID]]
            updates.append(_stop_update(s, _CANCELED, _X_CANCELED, -1))
        deltas = [_LevelDelta(side, level.ticks, level.lots) for (side, _), level in touched.items()]
        if self._legs:  # lists: their pending legs go too, and each reports ALL_DONE
            self._lists_acted(updates, 0, [], deltas, ts, seq)
            for lst in list({id(x): x for x in self._legs.values()}.values()):
                if (every or _same(lst.user_id, user_id)) and lst.pending:
                    self._end_list(lst, updates, deltas)
            return self._with_lists(_MatchedEvent(self._symbol, seq, ts, c.request_id, updates, [], deltas))
        return _MatchedEvent(self._symbol, seq, ts, c.request_id, updates, [], deltas)

    def _amend(self, c: AmendOrder, ts: Boxed, seq: Boxed) -> MatchedEvent:
        """An ``AmendOrder``: a smaller quantity for a resting order, which keeps its place in its level's
        queue (its ``arrival``); its level's total and its remaining lots shrink by the difference, and it
        takes the new client order id. Its one update is REPLACED, in its current status, ``qty_lots`` the new
        quantity and ``orig_client_order_id`` the one it had. The new quantity must be below the order's and
        above what it executed and lost to DECREMENT / TRANSFER (an order is never ended by an amend)."""
        o = self._orders.get(c.order_id)
        error: CommandError | None = None
        if o is None or not _same(o.user_id, c.user_id):
            error = _CommandError(
                user_id=c.user_id, order_id=c.order_id, code=NO_SUCH_ORDER, msg="Order does not exist."
            )
        elif c.qty_lots >= o.qty_lots:
            error = _CommandError(
                user_id=c.user_id, order_id=c.order_id, code=AMEND_NOT_SMALLER, msg=AMEND_NOT_SMALLER_MSG
            )
        elif c.qty_lots <= o.qty_lots - o.remaining - o.hidden:  # executed, and lost to DECREMENT / TRANSFER
            error = _CommandError(
                user_id=c.user_id, order_id=c.order_id, code=AMEND_NOT_SMALLER, msg=AMEND_BELOW_EXECUTED_MSG
            )
        if o is None or error is not None:
            return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c.request_id, error=error)
        cut: int = o.qty_lots - c.qty_lots
        level = (self._bids if o.side is _BUY else self._asks).levels[o.price_ticks]
        unseen = min(cut, o.hidden)  # an iceberg gives up what it hides first; its slice shrinks only after
        o.hidden -= unseen
        cut -= unseen
        level.lots -= cut
        o.remaining -= cut
        o.qty_lots = c.qty_lots
        before = o.client_order_id
        o.client_order_id = c.client_order_id
        update = self._carry(
            _replace(
                _ended(o, _PARTIALLY_FILLED if o.executed_lots else _NEW, _X_REPLACED), orig_client_order_id=before
            )
        )
        event = _MatchedEvent(
            self._symbol, seq, ts, c.request_id, [update], [], [_LevelDelta(o.side, o.price_ticks, level.lots)]
        )
        return self._with_lists(event) if self._legs else event

    def _place(self, a: tuple[Any, ...], ts: Boxed, seq: Boxed) -> MatchedEvent:
        """An ``AcceptedOrder`` (``a``: its fields)."""
        side, otype, tif, ticks = a[_A_SIDE], a[_A_TYPE], a[_A_TIF], a[_A_PRICE]
        limit: int = ticks
        is_buy, is_market = side is _BUY, otype is _MARKET
        order_id, qty, user, client_id, created = a[_A_ID], a[_A_QTY], a[_A_USER], a[_A_CLIENT_ID], a[_A_TS]
        new = _OrderUpdate(  # positional (see OrderUpdate): every field, in order
            order_id,
            user,
            client_id,
            side,
            otype,
            None if is_market else tif,
            ticks,
            qty,
            _NEW,
            _X_NEW,
            created,
            a[_A_QUOTE],
            0,  # executed_lots, cum_nu, last_lots, last_ticks, trade_id, is_maker, fee, reject_code, reason, orig
            0,
            0,
            0,
            -1,
            False,
            0,
            0,
            "",
            "",
            a[_A_STP],
            a[_A_ICEBERG],
        )
        opposite = self._asks if is_buy else self._bids
        best = opposite.top  # best(), its usual answer inlined
        if best is None or not best.live:
            best = opposite.best()
        if best is not None and ((is_market and not limit) or (best.price <= limit if is_buy else best.price >= limit)):
            return self._take(a, ts, seq, new, opposite)
        if is_market or tif is not _GTC:  # IOC, FOK or MARKET with nothing to take: expires untouched
            return _MatchedEvent(
                self._symbol, seq, ts, order_id, [new, _replace(new, status=_EXPIRED, exec_type=_X_EXPIRED)]
            )
        # the common case, a passive GTC order: _rest, inlined
        remaining: int = qty
        if not remaining:
            remaining = -1  # sized by quote
        stp = a[_A_STP]
        own = self._bids if is_buy else self._asks
        # its level without a lookup by price when it is the side's top, or better than the top (no level yet)
        top = own.top
        if top is not None and top.price == limit:
            level = top
            if not level.live:
                own.empty -= 1
        elif top is not None and (limit > top.price if is_buy else limit < top.price):
            level = own.add(limit, ticks)
        else:
            found = own.levels.get(ticks)
            if found is None:
                level = own.add(limit, ticks)
            else:
                level = found
                if not level.live:
                    own.empty -= 1
        # its price as the level's key object: a cancel then finds the level by identity
        o = _Order(order_id, user, client_id, side, otype, tif, level.ticks, qty, remaining, 0, 0, created, seq, stp)
        o.maker_bps = a[_A_MAKER_BPS]
        iceberg: int = a[_A_ICEBERG]  # unboxed: compiled, a native test where a boxed one calls PyObject_IsTrue
        if iceberg:
            _hide(o, iceberg)
            remaining = o.remaining
        level.queue.append(o)
        level.live += 1
        level.lots += remaining
        self._orders[order_id] = o
        return _MatchedEvent(self._symbol, seq, ts, order_id, [new], _NO_TRADES, [_LevelDelta(side, ticks, level.lots)])

    def _take(self, a: tuple[Any, ...], ts: Boxed, seq: Boxed, new: OrderUpdate, opposite: _Ladder) -> MatchedEvent:
        """An order that crosses the book: match what it can, then expire or rest the rest."""
        updates = [new]
        trades: list[Trade] = []
        deltas: list[LevelDelta] = []
        otype, tif = a[_A_TYPE], a[_A_TIF]
        if otype is _LIMIT_MAKER:
            rejected = _replace(
                new,
                status=_REJECTED,
                exec_type=_X_REJECTED,
                reject_code=WOULD_TAKE,
                reason="Order would immediately match and take.",
            )
            updates = [rejected]
        elif tif is _FOK and otype is _LIMIT and not self._fillable(a, opposite):
            updates.append(_replace(new, status=_EXPIRED, exec_type=_X_EXPIRED))
        else:
            remaining, executed, cum_nu, stp_expired = self._match(a, ts, opposite, updates, trades, deltas)
            if stp_expired:  # before remaining == 0: a DECREMENT may have taken the taker's size to 0
                updates.append(self._taker_expired(new, executed, cum_nu))
            elif remaining == 0:  # done (a quote-sized taker that completed reports remaining 0 too)
                pass
            elif otype is _MARKET or tif is not _GTC:
                updates.append(
                    _replace(new, status=_EXPIRED, exec_type=_X_EXPIRED, executed_lots=executed, cum_nu=cum_nu)
                )
            else:
                side, ticks = a[_A_SIDE], a[_A_PRICE]
                o = _Order(
                    a[_A_ID],
                    a[_A_USER],
                    a[_A_CLIENT_ID],
                    side,
                    otype,
                    tif,
                    ticks,
                    a[_A_QTY],
                    remaining,
                    executed,
                    cum_nu,
                    a[_A_TS],
                    seq,
                    a[_A_STP],
                )
                o.maker_bps = a[_A_MAKER_BPS]
                iceberg: int = a[_A_ICEBERG]
                if iceberg:
                    _hide(o, iceberg)
                deltas.append(_LevelDelta(side, ticks, self._rest(o)))
        if self._legs:  # order lists are open here: one of their legs may have acted (off the hot path)
            return self._take_lists(a[_A_ID], ts, seq, updates, trades, deltas)
        if trades and self._stops and not self._triggering:
            deltas = self._run_stops(updates, trades, deltas, ts, seq)
        return _MatchedEvent(self._symbol, seq, ts, a[_A_ID], updates, trades, deltas)

    def _taker_expired(self, new: OrderUpdate, executed: int, cum_nu: int) -> OrderUpdate:
        """The last update of a taker that self-trade prevention expired (``_taker_prevented``: its match)."""
        prevented_id, counter, prevented, last = self._taker_prevented
        return _replace(
            new,
            status=_EXPIRED_IN_MATCH,
            exec_type=_X_PREVENTION,
            executed_lots=executed,
            cum_nu=cum_nu,
            prevented_match_id=prevented_id,
            counter_order_id=counter,
            prevented_lots=prevented,
            last_prevented_lots=last,
        )

    # --- conditional orders (off the hot path: a book without stops pays one test per crossing order) --------
    def _place_stop(self, a: tuple[Any, ...], ts: Boxed, seq: Boxed) -> MatchedEvent:
        """A STOP_LOSS(_LIMIT) or TAKE_PROFIT(_LIMIT): it waits in ``_stops``, reported NEW and not working.

        Refused (-2010) when its stop price is met by the last trade already (not a trailing order: its stop
        price only starts the trailing, at once) or when its owner has ``MAX_NUM_ALGO_ORDERS`` open here.
        A trailing order whose trailing starts at once starts it from the last trade's price."""
        user = a[_A_USER]
        last = self._last
        s = _Stop(a, seq, 0, -1)
        new = _stop_update(s, _NEW, _X_NEW, -1)
        reason = ""
        if not s.delta and last and s.met(last):
            reason = WOULD_TRIGGER_MSG
        elif self._algo_orders(user) >= MAX_NUM_ALGO_ORDERS:
            reason = ALGO_ORDERS_MSG
        if reason:
            rejected = _replace(new, status=_REJECTED, exec_type=_X_REJECTED, reject_code=WOULD_TAKE, reason=reason)
            return _MatchedEvent(self._symbol, seq, ts, a[_A_ID], [rejected])
        if s.delta and (not s.stop or (last and s.met(last))):
            s.trail_ts = ts  # trailing from placement: from the last price, or (no trade yet) the next one
            s.trail = last
            new = _stop_update(s, _NEW, _X_NEW, -1)
        self._stops[a[_A_ID]] = s
        return _MatchedEvent(self._symbol, seq, ts, a[_A_ID], [new])

    def _algo_orders(self, user: Boxed) -> int:
        """``user``'s open conditional orders here ("algo" orders, as Binance counts them): waiting or triggered
        and resting."""
        waiting = sum(1 for s in self._stops.values() if _same(s.a[_A_USER], user))
        return waiting + sum(1 for i in self._triggered if _same(self._orders[i].user_id, user))

    def _cancel_stop(self, c: tuple[Any, ...], ts: Boxed, seq: Boxed) -> MatchedEvent:
        """A ``CancelOrder`` of an untriggered stop: it leaves ``_stops`` (nothing on the book changes)."""
        s = self._stops[c[_C_ORDER_ID]]
        if not _same(s.a[_A_USER], c[_C_USER]) or c[_C_RESTRICTION] is _ONLY_PARTIALLY_FILLED:
            msg = "Unknown order sent." if not _same(s.a[_A_USER], c[_C_USER]) else RESTRICTED_MSG
            error = _CommandError(user_id=c[_C_USER], order_id=c[_C_ORDER_ID], code=UNKNOWN_ORDER, msg=msg)
            return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c[_C_REQUEST_ID], error=error)
        del self._stops[s.a[_A_ID]]
        return _MatchedEvent(self._symbol, seq, ts, c[_C_REQUEST_ID], [_stop_update(s, _CANCELED, _X_CANCELED, -1)])

    def _run_stops(
        self, updates: list[OrderUpdate], trades: list[Trade], deltas: list[LevelDelta], ts: Boxed, seq: Boxed
    ) -> list[LevelDelta]:
        """Show each trade of the step, in order, to every waiting stop, in arrival order; run each one that
        triggers, in the order they triggered, after the step's own fills, and show its trades too (they can
        trigger more). Everything lands in this step's lists; returns its deltas, one per level."""
        stops = self._stops
        fired: list[_Stop] = []
        seen = ran = 0
        while True:
            while seen < len(trades) and stops:
                price: int = trades[seen].price_ticks
                seen += 1
                legs = self._legs
                for s in list(stops.values()):
                    if legs and stops.get(s.a[_A_ID]) is not s:
                        continue  # an OCO leg its sibling's trigger canceled just now
                    moved = s.see(price, ts)
                    if moved == 2:
                        del stops[s.a[_A_ID]]
                        fired.append(s)
                        if legs:
                            lst = legs.get(s.a[_A_ID])
                            if lst is not None and lst.oco and not lst.done:  # its trigger cancels its sibling
                                self._resolve(lst, s.a[_A_ID], updates, deltas)
                    elif moved:
                        self._stops_changed[s.a[_A_ID]] = None
            seen = len(trades)
            if ran == len(fired):
                break
            self._trigger(fired[ran], updates, trades, deltas, ts, seq)
            ran += 1
        self._last = trades[-1].price_ticks
        return _last_deltas(deltas)

    def _trigger(
        self,
        s: _Stop,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: list[LevelDelta],
        ts: Boxed,
        seq: Boxed,
    ) -> None:
        """Run a triggered stop as the MARKET or LIMIT order it becomes, at ``ts``: reported NEW and working,
        then as that order would be (its own type and stop fields on its reports; a remainder that rests
        keeps its type)."""
        a = s.a
        order_id, otype = a[_A_ID], a[_A_TYPE]
        updates.append(_stop_update(s, _NEW, _X_NEW, ts))
        self._stops_changed[order_id] = None
        fields = list(a)  # AcceptedStop's: _place reads only AcceptedOrder's, which come first
        fields[_A_TYPE] = otype.triggered
        taking = tuple(fields)
        self._triggering = True
        try:
            step = self._place(taking, ts, seq)
        finally:
            self._triggering = False
        first = len(updates)
        for u in step.updates[1:]:  # its own NEW is the one above
            if _same(u.order_id, order_id):
                u = _replace(u, type=otype, stop=_stop_state(s, ts))
            updates.append(u)
        trades.extend(step.trades)
        deltas.extend(step.deltas)
        if self._legs:  # a list's leg that ended as it ran (a MARKET with nothing to take) leaves its list
            self._lists_acted(updates, first, trades, deltas, ts, seq)
        resting = self._orders.get(order_id)
        if resting is not None:  # rests as the LIMIT it became, under its own type, its stop on its reports
            resting.type = otype
            self._triggered[order_id] = _stop_state(s, ts)
            self._behind_refills(resting, seq)

    # --- order lists (OCO, OTO, OTOCO; off the hot path: a book without lists pays one test per crossing order
    # and per cancel) ------------------------------------------------------------------------------------------
    def _status(self, lst: _List, status_type: str, order_status: str, reason: str = "NONE") -> None:
        """A ``listStatus`` of this step."""
        legs = [(leg[0], leg[1]) for leg in lst.legs]
        status = ListStatus(lst.list_id, lst.user_id, lst.contingency, status_type, order_status, lst.client_id, legs)
        self._list_news.append(_replace(status, reject_reason=reason) if reason != "NONE" else status)

    def _list_refusal(self, c: OrderListCommand) -> str:
        """Why the matcher refuses a list at this point of the sequence ("" if it does not): a LIMIT_MAKER leg
        that would take, a stop leg the last trade already meets, or its stop legs past ``MAX_NUM_ALGO_ORDERS``;
        a refused list places none of its legs (Binance refuses the list whole)."""
        algo = 0
        for i, o in enumerate(c.orders):
            if o.type.is_stop:
                algo += 1
            if i >= c.working:
                continue  # a pending leg is checked only as it is placed
            if o.type is _LIMIT_MAKER:
                best = (self._asks if o.side is _BUY else self._bids).best()
                price: int = o.price_ticks
                if best is not None and (best.price <= price if o.side is _BUY else best.price >= price):
                    return "Order would immediately match and take."
            elif o.type.is_stop:
                stop = _Stop(_astuple(o), 0, 0, -1)
                if not stop.delta and self._last and stop.met(self._last):
                    return WOULD_TRIGGER_MSG
        if algo and self._algo_orders(c.user_id) + algo > MAX_NUM_ALGO_ORDERS:
            return ALGO_ORDERS_MSG
        return ""

    def _place_list(self, c: OrderListCommand, ts: Boxed, seq: Boxed) -> MatchedEvent:
        """An ``OrderListCommand``: its working legs go on the book (or wait, as stops) in leg order, its pending
        legs wait in the list, reported NEW; or, refused (by the processor, or here: ``_list_refusal``), every
        leg is REJECTED. Its ``listStatus``: EXEC_STARTED / EXECUTING, or RESPONSE / REJECT."""
        fields = [_astuple(o) for o in c.orders]
        legs = [[o.order_id, o.client_order_id] for o in (c.orders or c.rejected)]
        lst = _List(c.list_id, c.user_id, c.contingency, c.list_client_id, legs)
        reason = self._list_refusal(c) if c.orders else ""
        updates: list[OrderUpdate]
        if c.rejected or reason:
            if c.rejected:
                updates = [self._reject(r, ts, seq).updates[0] for r in c.rejected]
                reason = c.rejected[0].msg
            else:
                updates = [
                    _replace(
                        _leg_update(_stop_fields(a), _REJECTED, _X_REJECTED), reject_code=WOULD_TAKE, reason=reason
                    )
                    for a in fields
                ]
            for u in updates:
                self._ended_legs[u.order_id] = c.list_id
            self._status(lst, _LIST_RESPONSE, _LIST_REJECT, reason)
            return self._with_lists(_MatchedEvent(self._symbol, seq, ts, c.list_id, updates))
        self._status(lst, _LIST_EXEC_STARTED, _LIST_EXECUTING)
        for a in fields:
            self._legs[a[_A_ID]] = lst
        lst.pending = fields[c.working :]
        updates = []
        trades: list[Trade] = []
        deltas: list[LevelDelta] = []
        for a in fields[: c.working]:
            self._place_leg(lst, a, ts, seq, updates, trades, deltas)
        updates += [_leg_update(_stop_fields(a), _PENDING_NEW, _X_NEW) for a in lst.pending]
        self._lists_acted(updates, 0, trades, deltas, ts, seq)
        if trades and self._stops:
            deltas = self._run_stops(updates, trades, deltas, ts, seq)
        return self._with_lists(_MatchedEvent(self._symbol, seq, ts, c.list_id, updates, trades, _last_deltas(deltas)))

    def _place_leg(
        self,
        lst: _List,
        a: tuple[Any, ...],
        ts: Boxed,
        seq: Boxed,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: list[LevelDelta],
    ) -> None:
        """One leg goes live: a stop waits in ``_stops`` (as ``_place_stop`` has it, its refusals checked by the
        caller), any other order takes the book as placed orders do (its trades are the caller's to scan)."""
        order_id = a[_A_ID]
        lst.live[order_id] = None
        if a[_A_TYPE].is_stop:
            last = self._last
            s = _Stop(_stop_fields(a), seq, 0, -1)
            if s.delta and (not s.stop or (last and s.met(last))):
                s.trail_ts = ts
                s.trail = last
            self._stops[order_id] = s
            updates.append(_stop_update(s, _NEW, _X_NEW, -1))
            return
        triggering = self._triggering
        self._triggering = True
        try:
            step = self._place(a, ts, seq)
        finally:
            self._triggering = triggering
        updates += step.updates
        trades += step.trades
        deltas += step.deltas
        resting = self._orders.get(order_id)
        if resting is not None:
            self._behind_refills(resting, seq)

    def _behind_refills(self, o: _Order, seq: Boxed) -> None:
        """An order placed inside a step (a triggered stop, a list's leg) that rested behind iceberg slices the
        step refilled: its ``sub`` follows theirs, so its place in the queue survives a restore."""
        if _same(o.arrival, seq) and _same(self._refill_seq, seq) and not o.sub:
            self._refill_sub += 1
            o.sub = self._refill_sub

    def _take_lists(
        self,
        request_id: Boxed,
        ts: Boxed,
        seq: Boxed,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: list[LevelDelta],
    ) -> MatchedEvent:
        """The end of ``_take`` while lists are open: what the step did to their legs (``_lists_acted``), before
        the waiting stops see its trades (a leg that traded has canceled its OCO sibling by then)."""
        self._lists_acted(updates, 0, trades, deltas, ts, seq)
        if self._triggering:  # the caller scans the trades and builds the step's event
            return _MatchedEvent(self._symbol, seq, ts, request_id, updates, trades, deltas)
        if trades and self._stops:
            deltas = self._run_stops(updates, trades, deltas, ts, seq)
        else:
            deltas = _last_deltas(deltas)
        return self._with_lists(_MatchedEvent(self._symbol, seq, ts, request_id, updates, trades, deltas))

    def _lists_acted(
        self,
        updates: list[OrderUpdate],
        start: int,
        trades: list[Trade],
        deltas: list[LevelDelta],
        ts: Boxed,
        seq: Boxed,
    ) -> None:
        """Apply the lists' contingencies to the updates from ``start`` on (and to those this appends): the first
        leg of an OCO pair to act (anything but its NEW) cancels the other legs; an OTO / OTOCO working order
        that fills places its pending legs, one that ends otherwise cancels them; a leg that ends leaves."""
        legs = self._legs
        i = start
        while i < len(updates):
            u = updates[i]
            i += 1
            oid = u.order_id
            lst = legs.get(oid)
            if lst is None:
                continue
            ended = not u.status.is_open
            if not lst.done and oid in lst.live:
                if lst.pending:  # the working order of an OTO / OTOCO
                    if u.status is _FILLED:
                        self._place_pending(lst, ts, seq, updates, trades, deltas)
                    elif ended:
                        self._end_list(lst, updates, deltas, oid)
                elif lst.oco and u.exec_type is not _X_NEW and u.exec_type is not _X_REPLACED:
                    self._resolve(lst, oid, updates, deltas)
            if ended:
                del legs[oid]
                lst.live.pop(oid, None)
                self._ended_legs[oid] = lst.list_id
                if not lst.done and not lst.live and not lst.pending:
                    lst.done = True
                    self._status(lst, _LIST_ALL_DONE, _LIST_ALL_DONE)

    def _resolve(self, lst: _List, acting: Boxed, updates: list[OrderUpdate], deltas: list[LevelDelta]) -> None:
        """An OCO leg acted: every other live leg of its list is canceled in this step; the list is done."""
        for oid in list(lst.live):
            if _same(oid, acting):
                continue
            update = self._drop_leg(oid, deltas)
            if update is not None:
                updates.append(update)
                del lst.live[oid]
                del self._legs[oid]
                self._ended_legs[oid] = lst.list_id
        lst.oco = False
        lst.done = True
        self._status(lst, _LIST_ALL_DONE, _LIST_ALL_DONE)

    def _drop_leg(self, order_id: Boxed, deltas: list[LevelDelta]) -> OrderUpdate | None:
        """Take a live leg off the book or out of the waiting stops: its CANCELED, None if it already left."""
        s = self._stops.pop(order_id, None)
        if s is not None:
            return _stop_update(s, _CANCELED, _X_CANCELED, -1)
        o = self._orders.get(order_id)
        if o is None:
            return None
        ladder = self._bids if o.side is _BUY else self._asks
        level = ladder.levels[o.price_ticks]
        del self._orders[o.order_id]
        o.dead = True
        level.lots -= o.remaining
        level.live -= 1
        if not level.live:
            ladder.level_emptied(level)
        elif len(level.queue) - level.head > 2 * level.live + ladder.slack:
            level.queue = [q for q in level.queue[level.head :] if not q.dead]
            level.head = 0
        deltas.append(_LevelDelta(o.side, level.ticks, level.lots))
        ended = _ended(o, _CANCELED, _X_CANCELED)
        return self._carry(ended) if self._triggered else ended

    def _end_list(self, lst: _List, updates: list[OrderUpdate], deltas: list[LevelDelta], first: Any = None) -> None:
        """Cancel what is left of a list: its live legs (``first``, a leg already ended, is left out), then its
        pending legs (never placed); ALL_DONE."""
        for oid in list(lst.live):
            if first is not None and _same(oid, first):
                continue
            update = self._drop_leg(oid, deltas)
            if update is not None:
                updates.append(update)
                del lst.live[oid]
                del self._legs[oid]
                self._ended_legs[oid] = lst.list_id
        for a in lst.pending:
            updates.append(_leg_update(_stop_fields(a), _CANCELED, _X_CANCELED))
            del self._legs[a[_A_ID]]
            self._ended_legs[a[_A_ID]] = lst.list_id
        lst.pending = []
        if not lst.done:
            lst.done = True
            lst.oco = False
            self._status(lst, _LIST_ALL_DONE, _LIST_ALL_DONE)

    def _place_pending(
        self,
        lst: _List,
        ts: Boxed,
        seq: Boxed,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: list[LevelDelta],
    ) -> None:
        """An OTO / OTOCO working order filled: its pending legs go live in this step, in leg order (an OTOCO's
        pair then cancel each other as an OCO's legs do, and its list stays EXECUTING until one acts; an OTO is
        ALL_DONE, its pending order an order like any other)."""
        pending, lst.pending = lst.pending, []
        lst.oco = len(pending) > 1
        if not lst.oco:  # an OTO's contingency is over once its pending order is placed: ALL_DONE
            lst.done = True
            self._status(lst, _LIST_ALL_DONE, _LIST_ALL_DONE)
        for a in pending:
            self._place_leg(lst, a, ts, seq, updates, trades, deltas)

    def _cancel_leg(self, c: tuple[Any, ...], ts: Boxed, seq: Boxed) -> MatchedEvent:
        """A ``CancelOrder`` of a list's leg: the whole list is canceled, as on Binance (the named leg last, so
        the cancel's outcome is its order); a leg left open after its list was done goes alone."""
        order_id = c[_C_ORDER_ID]
        lst = self._legs[order_id]
        o = self._orders.get(order_id)
        restriction = c[_C_RESTRICTION]
        refused = ""
        if not _same(lst.user_id, c[_C_USER]):
            refused = "Unknown order sent."
        elif restriction is not None and (
            (restriction is _ONLY_NEW and o is not None and o.executed_lots)
            or (restriction is _ONLY_PARTIALLY_FILLED and (o is None or not o.executed_lots))
        ):
            refused = RESTRICTED_MSG
        if refused:
            error = _CommandError(user_id=c[_C_USER], order_id=order_id, code=UNKNOWN_ORDER, msg=refused)
            return _MatchedEvent(symbol=self._symbol, seq=seq, ts=ts, request_id=c[_C_REQUEST_ID], error=error)
        updates: list[OrderUpdate] = []
        deltas: list[LevelDelta] = []
        named = self._drop_leg(order_id, deltas)
        if named is None:  # a pending leg
            a = next(a for a in lst.pending if _same(a[_A_ID], order_id))
            lst.pending = [p for p in lst.pending if p is not a]
            named = _leg_update(_stop_fields(a), _CANCELED, _X_CANCELED)
        del self._legs[order_id]
        lst.live.pop(order_id, None)
        self._ended_legs[order_id] = lst.list_id
        self._end_list(lst, updates, deltas)
        updates.append(named)
        return self._with_lists(
            _MatchedEvent(self._symbol, seq, ts, c[_C_REQUEST_ID], updates, [], _last_deltas(deltas))
        )

    def _with_lists(self, event: MatchedEvent) -> MatchedEvent:
        """The step's event as a ``ListedEvent`` when it touched lists: the list of each of its updates that is a
        leg (``g``), and its list statuses."""
        legs, ended = self._legs, self._ended_legs
        tags: dict[int, int] = {}
        for u in event.updates:
            lst = legs.get(u.order_id)
            list_id = lst.list_id if lst is not None else ended.get(u.order_id)
            if list_id is not None:
                tags[u.order_id] = list_id
        ended.clear()
        news, self._list_news = self._list_news, []
        if not tags and not news:
            return event
        e = event
        return _ListedEvent(
            e.symbol, e.seq, e.ts, e.request_id, e.updates, e.trades, e.deltas, e.error, lists=tuple(news), legs=tags
        )

    # --- matching ------------------------------------------------------------------------------------------
    def _fillable(self, a: tuple[Any, ...], opposite: _Ladder) -> bool:
        """FOK pre-check: could the whole quantity fill without expiring the taker?"""
        is_buy = a[_A_SIDE] is _BUY
        limit: int = a[_A_PRICE]
        qty: int = a[_A_QTY]
        budget: int = a[_A_BUDGET]
        uid, stp = a[_A_USER], a[_A_STP]
        need = qty or -1
        for level in opposite.sorted_levels():
            price = level.price
            if price > limit if is_buy else price < limit:
                return False
            # what the taker meets at this level: every visible slice in queue order up to an order of its own
            # owner that stops it; without one, icebergs' refills come back behind the rest, so all they hide
            queue = level.queue
            shown = hidden = 0
            blocked = False
            for i in range(level.head, len(queue)):
                o = queue[i]
                if o.dead:
                    continue  # cancelled
                if o.user_id == uid and stp is not _STP_NONE:
                    if stp is _EXPIRE_MAKER:
                        continue
                    if stp is _DECREMENT or stp is _TRANSFER:  # rare: the level walked as the match would
                        left = _fillable_decrementing(queue, level.head, uid, price, need, budget if is_buy else -1)
                        if left is None:
                            return False
                        need, budget = left
                        if need == 0:
                            return True
                        shown = hidden = -1
                    blocked = True
                    break
                shown += o.remaining
                hidden += o.hidden
            if shown < 0:  # walked whole by ``_fillable_decrementing``: on to the next level
                continue
            lots = min(need, shown if blocked else shown + hidden)
            if is_buy:
                lots = min(lots, budget // price)
                budget -= lots * price
            need -= lots
            if need == 0:
                return True
            if blocked:
                return False
        return False

    def _match(
        self,
        a: tuple[Any, ...],
        ts: Boxed,
        opposite: _Ladder,
        updates: list[OrderUpdate],
        trades: list[Trade],
        deltas: list[LevelDelta],
    ) -> tuple[int, int, int, bool]:
        """Fill ``a`` (the taker's fields) against ``opposite`` best level first, appending what happened.

        Returns (remaining, executed lots, cumulative notional, expired by self-trade prevention); remaining
        is 0 once the taker is done, including a quote-sized one whose quote no longer buys one more lot.
        """
        is_buy = a[_A_SIDE] is _BUY
        buyer_k = self._buyer_k_buy if is_buy else self._buyer_k_sell
        seller_k = self._seller_k_buy if is_buy else self._seller_k_sell
        taker_bps: int = a[_A_TAKER_BPS]
        if taker_bps >= 0:  # its owner's fee tier's taker rate, in place of the market's
            if is_buy:
                buyer_k = self._apl * taker_bps
            else:
                seller_k = self._apn * taker_bps
        taker = _Taker(a, self._next_trade_id, buyer_k, seller_k)
        level = opposite.best()
        while level is not None and taker.reaches(level.price):
            head, touched = self._take_level(taker, level, ts, updates, trades)
            if touched:  # a level is left for good: its total is final
                deltas.append(_LevelDelta(opposite.side, level.ticks, level.lots))
            opposite.leave(level, head)
            if taker.stop:
                break
            level = opposite.best()
        self._next_trade_id = taker.trade_id
        if taker.executed:
            self._last = taker.last
        remaining = taker.remaining
        if taker.completed_late and _last_fill_completes(updates, taker.order_id):
            remaining = 0
        return remaining, taker.executed, taker.cum_nu, taker.stp_expired

    def _take_level(
        self, taker: _Taker, level: _Level, ts: Boxed, updates: list[OrderUpdate], trades: list[Trade]
    ) -> tuple[int, bool]:
        """Fill the taker from one level, front of its queue first, until the taker stops or the level is
        empty. Returns the level's new head and whether its total changed (an order filled or left)."""
        queue = level.queue
        head = level.head
        touched = False
        while True:
            maker = queue[head]
            if maker.dead:
                head += 1  # cancelled while it waited
                continue
            if taker.stp_on and maker.user_id == taker.user_id:
                if taker.decrement:
                    left = self._decrement(taker, level, maker, updates)
                    if left < 0:  # the taker cannot take one lot here: no match to prevent
                        break
                    touched = True
                    if left:
                        head += 1
                elif self._prevent_self_trade(taker, level, maker, updates):
                    head += 1
                    touched = True
                if taker.stop or not level.live:
                    break
                continue
            lots = taker.lots_at(level.price, maker.remaining)
            if lots == 0:
                taker.stop_short(level.price)
                break
            touched = True
            if self._fill(taker, level, maker, lots, ts, updates, trades):
                head += 1
            if taker.stop or not level.live:
                break
        return head, touched

    def _prevent_self_trade(self, taker: _Taker, level: _Level, maker: _Order, updates: list[OrderUpdate]) -> bool:
        """The taker meets a resting order of its own owner: by the taker's mode (Binance's, as the taker's
        mode rules), the maker expires and leaves its level, the taker expires and stops, or both. Returns
        whether the maker left."""
        prevented_id = self._next_prevented_id  # one id per prevented match, on both orders' reports
        self._next_prevented_id = prevented_id + 1
        left = taker.expire_maker
        if left:
            del self._orders[maker.order_id]
            level.lots -= maker.remaining
            level.live -= 1
            ended = _ended(maker, _EXPIRED_IN_MATCH, _X_PREVENTION)
            ended = _replace(ended, prevented_match_id=prevented_id, counter_order_id=taker.order_id)
            updates.append(self._carry(ended) if self._triggered else ended)
        if taker.expire_taker:
            taker.stp_expired = taker.stop = True
            self._taker_prevented = (prevented_id, maker.order_id, 0, 0)
        return left

    def _decrement(self, taker: _Taker, level: _Level, maker: _Order, updates: list[OrderUpdate]) -> int:
        """DECREMENT (and TRANSFER, within one account): the taker and ``maker`` both lose the lots the taker
        would have taken from it (the smaller of what each could still trade); whichever reaches zero expires,
        both if they are equal, and the other reports the loss (TRADE_PREVENTION, in its current status).
        Returns 1 if the maker left its level, 0 if it stays (smaller), -1 if the taker can take no lot at
        this price (nothing prevented: it stops short, as before a fill)."""
        price = level.price
        mrem = maker.remaining
        can = taker.lots_at(price, mrem + 1)  # what the taker could take here, were the maker larger
        lots = can if can < mrem else mrem
        if lots == 0:
            taker.stop_short(price)
            return -1
        prevented_id = self._next_prevented_id
        self._next_prevented_id = prevented_id + 1
        taker.prevent(lots, price)
        maker.remaining = mrem - lots
        level.lots -= lots
        maker_gone = lots == mrem and not maker.hidden
        if maker_gone:
            del self._orders[maker.order_id]
            level.live -= 1
            status = _EXPIRED_IN_MATCH
        else:
            status = _PARTIALLY_FILLED if maker.executed_lots else _NEW
            if lots == mrem:  # an iceberg's slice is gone, not the iceberg: its next slice goes to the back
                self._refill(level, maker)
        ended = _replace(
            _ended(maker, status, _X_PREVENTION),
            prevented_match_id=prevented_id,
            counter_order_id=taker.order_id,
            prevented_lots=maker.qty_lots - maker.executed_lots - maker.remaining - maker.hidden,
            last_prevented_lots=lots,
        )
        updates.append(self._carry(ended) if self._triggered else ended)
        if lots == can:  # the taker has nothing left to trade here: it expires (after the maker's update)
            taker.stp_expired = taker.stop = True
            self._taker_prevented = (prevented_id, maker.order_id, taker.prevented, lots)
        else:
            updates.append(
                _OrderUpdate(
                    taker.order_id,
                    taker.user_id,
                    taker.client_order_id,
                    taker.side,
                    taker.type,
                    taker.tif,
                    taker.price_ticks,
                    taker.qty_lots,
                    _PARTIALLY_FILLED if taker.executed else _NEW,
                    _X_PREVENTION,
                    taker.created_ts,
                    taker.quote_nu,
                    taker.executed,
                    taker.cum_nu,
                    0,
                    0,
                    -1,
                    False,
                    0,
                    0,
                    "",
                    "",
                    taker.stp,
                    taker.iceberg_lots,
                    prevented_id,
                    maker.order_id,
                    taker.prevented,
                    lots,
                )
            )
        return 1 if lots == mrem else 0

    def _fill(
        self,
        taker: _Taker,
        level: _Level,
        maker: _Order,
        lots: int,
        ts: Boxed,
        updates: list[OrderUpdate],
        trades: list[Trade],
    ) -> bool:
        """One trade of ``lots`` between the taker and ``maker``, at the front of ``level``: both orders and
        the level's total updated, the trade and both orders' updates appended (maker first). Returns whether
        the maker is filled (it left the level)."""
        price = level.price
        ticks = level.ticks
        nu = price * lots
        taker.took(lots, nu)
        taker.last = price
        mrem = maker.remaining - lots
        m_executed = maker.executed_lots + lots
        m_cum_nu = maker.cum_nu + nu
        maker.remaining = mrem
        maker.executed_lots = m_executed
        maker.cum_nu = m_cum_nu
        level.lots -= lots
        maker_id = maker.order_id
        maker_uid = maker.user_id
        taker_id = taker.order_id
        uid = taker.user_id
        tid: Boxed = taker.trade_id  # each value boxed once, however many events carry it
        boxed_lots: Boxed = lots
        buyer_fee: Boxed = lots * taker.buyer_k // _BPS
        seller_fee: Boxed = nu * taker.seller_k // _BPS
        maker_bps = maker.maker_bps
        if maker_bps >= 0:  # the maker's fee tier's rate, in place of the market's
            if taker.is_buy:
                seller_fee = nu * (self._apn * maker_bps) // _BPS
            else:
                buyer_fee = lots * (self._apl * maker_bps) // _BPS
        if taker.is_buy:
            maker_fee, taker_fee = seller_fee, buyer_fee
            trade = _Trade(tid, ticks, boxed_lots, taker_id, maker_id, uid, maker_uid, False, buyer_fee, seller_fee, ts)
        else:
            maker_fee, taker_fee = buyer_fee, seller_fee
            trade = _Trade(tid, ticks, boxed_lots, maker_id, taker_id, maker_uid, uid, True, buyer_fee, seller_fee, ts)
        trades.append(trade)
        filled = mrem == 0
        status = _PARTIALLY_FILLED
        if filled:
            if maker.hidden:  # an iceberg's slice is gone: the next one goes to the back of the level
                self._refill(level, maker)
            else:
                del self._orders[maker_id]
                level.live -= 1
                status = _FILLED
        made = _OrderUpdate(  # positional (see OrderUpdate), up to fee
            maker_id,
            maker_uid,
            maker.client_order_id,
            maker.side,
            maker.type,
            maker.tif,
            ticks,
            maker.qty_lots,
            status,
            _X_TRADE,
            maker.created_ts,
            0,  # quote_nu: a resting order is sized in lots
            m_executed,
            m_cum_nu,
            boxed_lots,  # last_lots, last_ticks, trade_id, is_maker
            ticks,
            tid,
            True,
            maker_fee,
            0,  # reject_code, reason, orig_client_order_id
            "",
            "",
            maker.stp,
            maker.iceberg_lots,
        )
        updates.append(self._carry(made) if self._triggered else made)
        done = taker.remaining == 0
        taker.stop = done
        updates.append(
            _OrderUpdate(
                taker_id,
                uid,
                taker.client_order_id,
                taker.side,
                taker.type,
                taker.tif,
                taker.price_ticks,
                taker.qty_lots,
                _FILLED if done else _PARTIALLY_FILLED,
                _X_TRADE,
                taker.created_ts,
                taker.quote_nu,
                taker.executed,
                taker.cum_nu,
                boxed_lots,
                ticks,
                tid,
                False,
                taker_fee,
                0,
                "",
                "",
                taker.stp,
                taker.iceberg_lots,
            )
        )
        taker.trade_id += 1
        return filled

    # --- book maintenance ------------------------------------------------------------------------------
    def _refill(self, level: _Level, o: _Order) -> None:
        """An iceberg whose visible slice is gone shows its next one, from what it hides, at the back of its
        level's queue (it loses its place, as on Binance): at this step's seq, after any slice refilled before
        it in the step (``sub``), so a restore rebuilds the same queue. The caller advances past its old entry."""
        slice_lots: int = o.iceberg_lots
        hidden = o.hidden
        shown = slice_lots if slice_lots < hidden else hidden
        o.hidden = hidden - shown
        o.remaining = shown
        level.lots += shown
        seq = self._seq
        if seq != self._refill_seq:
            self._refill_seq = seq
            self._refill_sub = 0
        self._refill_sub += 1
        o.arrival = seq
        o.sub = self._refill_sub
        level.queue.append(o)
        order_id = o.order_id  # and last in ``_orders``, which keeps arrival order (``_cancel_all``, ``restore``)
        del self._orders[order_id]
        self._orders[order_id] = o

    def _rest(self, o: _Order) -> int:
        """Queue ``o`` at the back of its level; returns the level's new total."""
        price = o.price_ticks
        ladder = self._bids if o.side is _BUY else self._asks
        level = ladder.levels.get(price)
        if level is None:
            level = ladder.add(price, price)
        elif not level.live:
            ladder.empty -= 1
        o.price_ticks = level.ticks  # the level's key object (see _place)
        level.queue.append(o)
        level.live += 1
        level.lots += o.remaining
        self._orders[o.order_id] = o
        return level.lots
