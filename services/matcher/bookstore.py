"""Redis side of the matcher: the book snapshot and the outbox, committed together per symbol.

Per symbol and batch, one script (``COMMIT``, atomic as a MULTI/EXEC is) writes the changed resting
orders, the counters (``BookState``: seq, next trade id, last source position), removes the hot-book
entries the matcher took over, and adds the outputs of the batch to the symbol's outbox. Outputs are
published only after that commit, so:

* a crash before the commit loses nothing: the inputs are redelivered and applied again;
* a crash after it re-publishes the outbox on restart; consumers skip what they saw by ``(symbol, seq)``.

The outbox is a hash of the batches whose outputs may yet be needed again, each under the ``seq`` of its
first event (so in order): a batch's entry is removed by a later commit once the broker acknowledged its
outputs *and* settlement applied them (``settled_key``, which the script returns for the next commit to
judge by), so a broker that loses its log (a reset, the local broker's memory after a kill) loses no fill:
the next owner of the symbol re-publishes it on the new log. ``retention.py`` decides what is removed.
Whatever the outbox holds at a take-over is re-published; consumers skip what they saw by ``(symbol, seq)``.

All keys of a symbol share the hash tag ``{SYMBOL}``, so the script is valid on a Redis Cluster. The layout
and who owns each key family: ``shared/rediskeys.py``; the records: ``shared/booksnapshot.py``.

Why a script and not a MULTI of HSET/HDEL: redis-py packs a command's arguments in Python at ~4 µs each
(it re-joins a growing buffer per argument), and a batch touches thousands of orders; the script takes
them as a few msgpack arguments (ids as strings: a Lua number would round a 64-bit id) and Redis unpacks
them in C, so a commit costs the client a few encodes whatever the size of the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from shared import redis as sredis
from shared.booksnapshot import BookState, decode_order, decode_state
from shared.domain import Market
from shared.messages import MatchedEvent
from shared.rediskeys import hot_key, legacy_outbox_key, orders_key, outbox_key, settled_key, state_key

from .book import Book

Outputs = list[tuple[str, bytes]]  # (topic, record value) in publishing order
Pending = list[tuple[int, Outputs]]  # outbox entries (first seq, outputs) in order

_pack = msgspec.msgpack.Encoder().encode
_unpack_outbox = msgspec.msgpack.Decoder(Outputs).decode
LEGACY_ENTRY = -1  # the single-batch outbox of earlier versions (a plain string key), re-published first

# KEYS: orders, hot, state, outbox (hash), legacy outbox (string), settled (string, settlement's).
# ARGV: state, outbox entry id ("" for none), its outputs, then msgpack arrays (or "" for none) of the
# order ids gone, of id/order pairs changed, of the hot entries taken, of the outbox entries released.
# Returns the settled seq (false when settlement has written none).
# ``unpack`` goes in chunks: Lua's C stack takes at most ~8000 values at once.
COMMIT = """
local function each(command, key, packed)
    if packed == "" then return end
    local items = cmsgpack.unpack(packed)
    local n = #items
    for i = 1, n, 1000 do
        redis.call(command, key, unpack(items, i, math.min(i + 999, n)))
    end
end
each("HDEL", KEYS[1], ARGV[4])
each("HSET", KEYS[1], ARGV[5])
each("HDEL", KEYS[2], ARGV[6])
each("HDEL", KEYS[4], ARGV[7])
redis.call("SET", KEYS[3], ARGV[1])
if ARGV[2] ~= "" then
    redis.call("HSET", KEYS[4], ARGV[2], ARGV[3])
end
redis.call("DEL", KEYS[5])
return redis.call("GET", KEYS[6])
"""


def _lua_string(data: bytes) -> msgspec.Raw:
    """``data`` as a msgpack *str* (its bytes unchanged): Redis's cmsgpack reads no *bin* type, and a Lua
    string holds any bytes."""
    n = len(data)
    if n < 32:
        head = bytes((0xA0 | n,))
    elif n < 0x100:
        head = bytes((0xD9, n))
    elif n < 0x10000:
        head = b"\xda" + n.to_bytes(2, "big")
    else:
        head = b"\xdb" + n.to_bytes(4, "big")
    return msgspec.Raw(head + data)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A symbol's commit, packed: the script's keys and arguments, and its outbox entry (None: no outputs)
    with the seq of its last event."""

    keys: list[str]
    args: list[bytes]
    entry: int | None
    last: int = 0


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit added to the outbox (``entry``, None for nothing; ``last``, its last event's seq), and
    how far settlement had applied the symbol's events when it ran (``settled``)."""

    entry: int | None
    last: int
    settled: int


class BookStore:
    def __init__(self, cache: sredis.Client) -> None:
        self.cache = cache
        self._commit = cache.register_script(COMMIT)

    async def load(self, market: Market) -> tuple[Book, Pending]:
        """The committed book of a symbol and its outbox: the outputs not known to be acknowledged."""
        symbol = market.symbol
        pipe = self.cache.pipeline(transaction=True)
        pipe.get(state_key(symbol))
        pipe.hvals(orders_key(symbol))
        pipe.get(legacy_outbox_key(symbol))
        pipe.hgetall(outbox_key(symbol))
        with sredis.timed("book_load"):
            raw_state, raw_orders, raw_legacy, raw_outbox = await pipe.execute()
        book = Book(market, decode_state(raw_state) if raw_state else BookState())
        book.restore([decode_order(o) for o in raw_orders])
        pending = sorted((int(entry), _unpack_outbox(outputs)) for entry, outputs in raw_outbox.items())
        if raw_legacy:
            pending.insert(0, (LEGACY_ENTRY, _unpack_outbox(raw_legacy)))
        return book, pending

    async def sequences(self, symbols: list[str]) -> dict[str, int]:
        """The committed seq of each symbol's book (0 for a symbol with no book yet)."""
        pipe = self.cache.pipeline(transaction=False)  # not MGET: on a cluster each symbol has its own slot
        for s in symbols:
            pipe.get(state_key(s))
        raw = await pipe.execute()
        return {s: decode_state(r).seq if isinstance(r, bytes) else 0 for s, r in zip(symbols, raw, strict=True)}

    async def commit(
        self,
        book: Book,
        events: list[MatchedEvent],
        outputs: Outputs,
        taken: Iterable[int],
        acked: Iterable[int] = (),
    ) -> int | None:
        """Write what ``events`` changed in ``book`` and add ``outputs`` to the outbox, atomically; remove
        the ``acked`` outbox entries. Returns the outbox entry of ``outputs`` (None when there are none)."""
        return (await self.write(self.prepare(book, events, outputs, taken, acked))).entry

    def prepare(
        self,
        book: Book,
        events: list[MatchedEvent],
        outputs: Outputs,
        taken: Iterable[int] = (),
        acked: Iterable[int] = (),
    ) -> Prepared:
        """``commit``'s script call, packed without I/O: what cannot be stored (a number past 64 bits) raises
        here, before any symbol of the batch is written."""
        symbol = book.market.symbol
        touched: dict[int, None] = {}
        for event in events:
            for update in event.updates:
                touched[update.order_id] = None
        for order_id in book.stops_changed():  # stops whose trailing moved: no update says so
            touched[order_id] = None
        changed: list[str | msgspec.Raw] = []  # id, order, id, order, ...
        gone: list[str] = []
        for order_id in touched:
            resting = book.order(order_id)
            if resting is None:
                gone.append(str(order_id))
            else:
                changed += (str(order_id), _lua_string(_pack(resting)))
        taken_ids = [str(i) for i in taken]
        acked_ids = [str(i) for i in acked if i != LEGACY_ENTRY]  # the legacy key goes at every commit
        entry = events[0].seq if outputs and events else None
        keys = [orders_key(symbol), hot_key(symbol), state_key(symbol), outbox_key(symbol), legacy_outbox_key(symbol),
                settled_key(symbol)]  # fmt: skip
        args = [
            _pack(book.state),
            b"" if entry is None else str(entry).encode(),
            _pack(outputs) if entry is not None else b"",
            _pack(gone) if gone else b"",
            _pack(changed) if changed else b"",
            _pack(taken_ids) if taken_ids else b"",
            _pack(acked_ids) if acked_ids else b"",
        ]
        return Prepared(keys, args, entry, events[-1].seq if entry is not None else 0)

    async def write(self, prepared: Prepared) -> Committed:
        """Run a prepared commit; returns its outbox entry and the symbol's settled seq."""
        with sredis.timed("book_commit"):
            settled = await self._commit(keys=prepared.keys, args=prepared.args)
        return Committed(prepared.entry, prepared.last, int(settled) if settled else 0)
