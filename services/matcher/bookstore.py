"""Redis side of the matcher: the book snapshot and the outbox, committed together per symbol.

Per symbol, one MULTI/EXEC writes the changed resting orders, the counters (``BookState``: seq, next trade
id, last source position), removes the hot-book entries the matcher took over, and stores the outputs
of the batch as the symbol's outbox. Outputs are published only after that commit, so:

* a crash before the commit loses nothing: the inputs are redelivered and applied again;
* a crash after it re-publishes the outbox on restart; consumers skip what they saw by ``(symbol, seq)``.

All keys of a symbol share the hash tag ``{SYMBOL}``, so the transaction is valid on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import redis.asyncio as aioredis

from shared import redis as sredis
from shared.domain import Market
from shared.messages import MatchedEvent

from ..order_processor.hotbook import hot_key
from .book import Book, BookState, RestingOrder

_pack = msgspec.msgpack.Encoder().encode
_unpack_order = msgspec.msgpack.Decoder(RestingOrder).decode
_unpack_state = msgspec.msgpack.Decoder(BookState).decode
_unpack_outbox = msgspec.msgpack.Decoder(list[tuple[str, bytes]]).decode


def orders_key(symbol: str) -> str:
    return f"book:{{{symbol}}}:orders"


def state_key(symbol: str) -> str:
    return f"book:{{{symbol}}}:state"


def outbox_key(symbol: str) -> str:
    return f"book:{{{symbol}}}:outbox"


class BookStore:
    def __init__(self, cache: aioredis.Redis) -> None:
        self.cache = cache

    async def load(self, market: Market) -> tuple[Book, list[tuple[str, bytes]]]:
        """The committed book of a symbol and the outputs of its last committed batch."""
        pipe = self.cache.pipeline(transaction=True)
        pipe.get(state_key(market.symbol))
        pipe.hvals(orders_key(market.symbol))
        pipe.get(outbox_key(market.symbol))
        with sredis.timed("book_load"):
            raw_state, raw_orders, raw_outbox = await pipe.execute()
        book = Book(market, _unpack_state(raw_state) if raw_state else BookState())
        book.restore([_unpack_order(o) for o in raw_orders])
        return book, (_unpack_outbox(raw_outbox) if raw_outbox else [])

    async def commit(
        self, book: Book, events: Iterable[MatchedEvent], outputs: list[tuple[str, bytes]], taken: Iterable[int]
    ) -> None:
        """Write what ``events`` changed in ``book`` and the outbox, atomically."""
        symbol = book.market.symbol
        pipe = self.cache.pipeline(transaction=True)
        okey = orders_key(symbol)
        touched: dict[int, None] = {}
        for event in events:
            for update in event.updates:
                touched[update.order_id] = None
        changed: dict[str, bytes] = {}
        gone: list[str] = []
        for order_id in touched:  # one HSET and one HDEL per symbol: a command per order costs ~10 µs in redis-py
            resting = book.order(order_id)
            if resting is None:
                gone.append(str(order_id))
            else:
                changed[str(order_id)] = _pack(resting)
        if gone:
            pipe.hdel(okey, *gone)
        if changed:
            pipe.hset(okey, mapping=changed)  # type: ignore[arg-type]  # Mapping keys are invariant
        taken_ids = [str(i) for i in taken]
        if taken_ids:
            pipe.hdel(hot_key(symbol), *taken_ids)
        pipe.set(state_key(symbol), _pack(book.state))
        pipe.set(outbox_key(symbol), _pack(outputs))
        with sredis.timed("book_commit"):
            await pipe.execute()
