"""What the matcher's book persists in Redis: its resting orders and its counters. Pure.

The matcher (``services/matcher/bookstore.py``) is the only writer of a book (keys: ``shared/rediskeys.py``);
the reconciler (``shared/reconcile.py``) reads it to compare with Postgres. The records are msgpack arrays
(``array_like``), so their field order is the snapshot's wire format: a field is added at the end, with a
default, or not at all.

Kept apart from ``services/matcher/book.py`` because that module is compiled (mypyc, ``setup.py``), and a
compiled module builds its classes without their class keywords: ``array_like`` and ``gc`` would be
dropped, silently changing the format. ``book.py`` re-exports both records. It imports only msgspec and
``shared.domain``: the compiled book's build type-checks it with nothing else installed.
"""

from __future__ import annotations

import msgspec

from shared.domain import OrderStatus, OrderType, Side, StpMode, TimeInForce


class RestingOrder(msgspec.Struct, array_like=True, gc=False):
    """An open order in the book; ``arrival`` (the seq that placed it) orders a level's queue.

    ``gc=False``: it holds only scalars, so the collector need not walk the hundreds of thousands a deep
    book holds.
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
    # a conditional order (``stop_ticks`` or ``trailing_delta`` set): its stop; untriggered (``working_ts`` -1),
    # its trailing state (``trail_ticks``: the best price since its trailing started, 0 before; ``trail_ts``:
    # when it started) and the budget it will take the book with; triggered and resting, when it triggered
    stop_ticks: int = 0
    trailing_delta: int = 0
    trail_ticks: int = 0
    trail_ts: int = -1
    budget: int = 0
    working_ts: int = 0
    # an iceberg: its slice size, the lots it hides (``remaining`` is what it shows), and its place among orders
    # of one ``arrival`` (a refilled slice goes to the back of its level at the seq that refilled it)
    iceberg_lots: int = 0
    hidden: int = 0
    sub: int = 0
    maker_bps: int = -1  # its owner's fee tier's maker rate (-1: the market's)
    taker_bps: int = -1  # a waiting stop's owner's fee tier's taker rate, which it takes the book with
    # a leg of an order list (OCO, OTO, OTOCO): its list's id, the list itself as ``list_info`` (JSON: contingency,
    # client id, legs, what is left of its contingency), and whether it is a pending leg not on the book yet
    list_id: int = -1
    list_info: str = ""
    pending: bool = False

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
    next_prevented_id: int = 1  # the next self-trade prevention's ``preventedMatchId`` (a snapshot without it: 1)
    last_ticks: int = 0  # the last trade's price, which triggers conditional orders (0: no trade yet)


decode_order = msgspec.msgpack.Decoder(RestingOrder).decode
decode_state = msgspec.msgpack.Decoder(BookState).decode
