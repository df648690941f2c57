"""Redis step of the order processor: the accepted order enters the hot book (ElastiCache).

``hot:{SYMBOL}:accepted`` (``shared.rediskeys.hot_key``, a family this service owns) maps order id to the
accepted order until the matcher takes it into its book state (``services/matcher/bookstore.py`` removes the
entry in the same transaction that commits the book).
Writing the same entry twice is harmless, so a redelivery simply repeats it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared import redis as sredis
from shared.messages import AcceptedOrder, encode
from shared.rediskeys import hot_key


class HotBook:
    def __init__(self, cache: sredis.Client) -> None:
        self.cache = cache

    async def add(self, orders: Sequence[AcceptedOrder]) -> None:
        if orders:
            pipe = self.cache.pipeline(transaction=False)
            queue(pipe, orders)
            await pipe.execute()


def queue(pipe: sredis.Pipeline, orders: Sequence[AcceptedOrder]) -> None:
    """Add the orders' entries to ``pipe``: one HSET per symbol, not per order, since redis-py's cost is per
    command (packing, parsing a reply)."""
    by_symbol: dict[str, dict[Any, bytes]] = {}  # Any: redis-py's mapping type is invariant in its keys
    for o in orders:
        entries = by_symbol.get(o.symbol)
        if entries is None:
            entries = by_symbol[o.symbol] = {}
        entries[str(o.order_id)] = encode(o)
    for symbol, entries in by_symbol.items():
        pipe.hset(hot_key(symbol), mapping=entries)
