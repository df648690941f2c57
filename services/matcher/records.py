"""The uncompiled book's working copy of a resting order (``PlainOrder``).

What a book persists (``RestingOrder``, ``BookState``) is ``shared/booksnapshot.py``, since the reconciler
reads it too. Kept out of ``book.py`` because that module is compiled (mypyc, ``setup.py``), and a compiled
module builds its classes without their class keywords (``gc`` here).
"""

from __future__ import annotations

import msgspec

from shared.domain import OrderType, Side, StpMode, TimeInForce


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
    iceberg_lots: int = 0
    hidden: int = 0
    sub: int = 0
    maker_bps: int = -1
    dead: bool = False
