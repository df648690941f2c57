"""What a book persists: its resting orders and its counters, in the Redis snapshot format (``bookstore.py``).

Kept out of ``book.py`` because that module is compiled (mypyc, ``setup.py``), and a compiled module builds
its classes without their class keywords: ``array_like`` and ``gc`` would be dropped, silently changing the
snapshot's wire format. ``book.py`` re-exports both, so ``from services.matcher.book import RestingOrder``
still works.
"""

from __future__ import annotations

import msgspec

from shared.domain import OrderStatus, OrderType, Side, StpMode, TimeInForce


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


class PlainOrder(msgspec.Struct, gc=False):
    """The book's working copy of a resting order when ``book.py`` runs as pure Python (not compiled).

    Compiled, the book keeps its own native ``_Order`` objects; uncompiled, a Python class with these fields
    would be slower to build and tracked by the collector, and a mutable msgspec struct is neither. Not a wire
    format: the fields of ``RestingOrder``, and ``dead`` (cancelled, still in its level's queue).
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
    dead: bool = False


class BookState(msgspec.Struct, array_like=True):
    """Counters that must survive a restart together with the orders."""

    seq: int = 0
    next_trade_id: int = 1
    src_partition: int = -1
    src_offset: int = -1
