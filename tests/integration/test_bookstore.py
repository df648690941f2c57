"""The matcher's Redis commit on a real server: book, counters, hot entries and outbox in one script.

A committed batch is what a restart loads: the same resting orders and counters, and every batch whose
outputs were not acknowledged, in order; a batch's outbox entry goes once a later commit says it was
acknowledged; the single-batch outbox of earlier versions is re-published first, then dropped.
"""

from __future__ import annotations

import asyncio

import msgspec
import redis.asyncio as aioredis

from services.matcher.bookstore import LEGACY_ENTRY, BookStore
from shared.domain import OrderType, Side, TimeInForce
from shared.messages import AcceptedOrder, MatchedEvent, Topic
from shared.postgres import DEFAULT_MARKETS
from shared.rediskeys import hot_key, legacy_outbox_key, outbox_key, settled_key

MARKET = DEFAULT_MARKETS[0]


def order(n: int, side: Side, price: int, lots: int) -> AcceptedOrder:
    budget = price * lots if side is Side.BUY else lots
    return AcceptedOrder(
        src_partition=0,
        src_offset=n,
        order_id=10**15 + n,  # beyond a Lua number's exact integers: ids must travel as strings
        user_id=1 + n % 3,
        symbol=MARKET.symbol,
        side=side,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price_ticks=price,
        qty_lots=lots,
        budget=budget,
        client_order_id=f"c{n}",
        ts=1_700_000_000_000,
    )


async def _round_trip(redis_url: str) -> None:
    cache = aioredis.from_url(redis_url)
    await cache.flushdb()
    store = BookStore(cache)
    try:
        book, pending = await store.load(MARKET)
        assert pending == [] and book.state.seq == 0
        first = [
            order(i, Side.BUY if i % 2 else Side.SELL, 5_000_000 + (i % 7) * (1 if i % 2 else -1), 2 + i % 5)
            for i in range(1, 2500)
        ]  # thousands of changed orders: the script unpacks them in chunks
        await cache.hset(hot_key(MARKET.symbol), mapping={str(o.order_id): b"hot" for o in first})
        events: list[MatchedEvent] = [e for o in first if (e := book.apply(o, 1)) is not None]
        out1 = [(Topic.MATCHED_EVENTS.value, b"batch-1")]
        entry1 = await store.commit(book, events, out1, [o.order_id for o in first])
        assert entry1 == events[0].seq

        second = [order(3000 + i, Side.SELL, 4_000_000, 50) for i in range(3)]  # sweeps the bids
        events2 = [e for o in second if (e := book.apply(o, 2)) is not None]
        out2 = [(Topic.MATCHED_EVENTS.value, b"batch-2"), (Topic.TRADE_EXECUTION.value, b"trades-2")]
        entry2 = await store.commit(book, events2, out2, [o.order_id for o in second])

        loaded, pending = await store.load(MARKET)
        assert loaded.state == book.state and loaded.state_hash() == book.state_hash()
        assert sorted(o.order_id for o in loaded.orders()) == sorted(o.order_id for o in book.orders())
        assert pending == [(entry1, out1), (entry2, out2)]  # both unacknowledged, in order
        assert await cache.hlen(hot_key(MARKET.symbol)) == 0

        await store.commit(book, [], [], [], acked=[entry1])  # batch 1's acks came in, and settlement applied it
        assert (await store.load(MARKET))[1] == [(entry2, out2)]
        # each commit reads how far settlement got (what its next commit releases by)
        assert (await store.write(store.prepare(book, [], []))).settled == 0  # settlement wrote nothing yet
        await cache.set(settled_key(MARKET.symbol), events2[-1].seq)
        assert (await store.write(store.prepare(book, [], []))).settled == events2[-1].seq

        await cache.set(legacy_outbox_key(MARKET.symbol), msgspec.msgpack.encode([("matched-events", b"old")]))
        assert (await store.load(MARKET))[1] == [(LEGACY_ENTRY, [("matched-events", b"old")]), (entry2, out2)]
        await store.commit(book, [], [], [], acked=[LEGACY_ENTRY, entry2])
        assert (await store.load(MARKET))[1] == []
        assert not await cache.exists(legacy_outbox_key(MARKET.symbol), outbox_key(MARKET.symbol))
    finally:
        await cache.flushdb()
        await cache.aclose()


def test_a_commit_is_what_a_restart_loads_and_the_outbox_keeps_what_is_unacknowledged(fresh_env):
    asyncio.run(_round_trip(fresh_env["REDIS_URL"]))


async def _hot(redis_url: str) -> None:
    from msgspec.structs import replace

    from services.order_processor.hotbook import HotBook
    from shared.messages import encode

    cache = aioredis.from_url(redis_url)
    try:
        await cache.delete(hot_key(MARKET.symbol), hot_key("ETHUSDT"))
        btc = [order(n, Side.BUY, 5_000_000, 3) for n in range(2_007)]  # a full batch of one symbol
        eth = [replace(order(10_000 + n, Side.SELL, 300_000, 2), symbol="ETHUSDT") for n in range(5)]
        await HotBook(cache).add(btc + eth)
        await HotBook(cache).add(btc[:3])  # a redelivery writes the same entries again
        stored = await cache.hgetall(hot_key(MARKET.symbol))
        assert stored == {str(o.order_id).encode(): encode(o) for o in btc}
        assert await cache.hgetall(hot_key("ETHUSDT")) == {str(o.order_id).encode(): encode(o) for o in eth}
    finally:
        await cache.aclose()


def test_the_processor_writes_every_accepted_order_to_the_hot_book(fresh_env: dict[str, str]) -> None:
    asyncio.run(_hot(fresh_env["REDIS_URL"]))
