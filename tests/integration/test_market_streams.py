"""market-data's Redis writes on a real Redis: one atomic call per symbol, the state REST reads after it.

Recent trades are kept newest first (``/api/v3/trades`` and the ticker read the head), also when one
batch brings many trades and more than a command's worth of them; a depth diff lands in the snapshot
hashes; the stream events go out in the order they happened.
"""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis

from services.market_data.depth import Diff
from services.market_data.streams import RECENT_TRADES, MarketState, persist_candles, publish_depth, publish_trades
from shared import redis as sredis
from shared.messages import Trade
from shared.postgres import DEFAULT_MARKETS
from shared.rediskeys import market_key

MARKET = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
MINUTE = 60_000


def _trades(first_id: int, count: int, ts: int) -> list[Trade]:
    return [Trade(first_id + i, 5_000_000 + i, 10, 1, 2, 3, 4, i % 2 == 0, 0, 0, ts + i) for i in range(count)]


async def _written(redis_url: str) -> None:
    cache, listener = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    channels = sredis.Channels(":streams-test")
    try:
        parts = ("trades", "klines", "kline_cur", "trade_seq", "bids")
        await cache.delete(*[market_key(MARKET.symbol, p) for p in parts])
        sub = listener.pubsub()
        trade_channel = channels.stream("btcusdt@trade")
        await sub.subscribe(trade_channel)
        await sub.get_message(timeout=1)
        state = MarketState(MARKET, channels)

        async def write(w: sredis.Atomic) -> None:
            persist_candles(w, state)  # as the service ends each symbol's write of a batch
            pipe = cache.pipeline(transaction=False)
            w.queue(pipe)
            await pipe.execute()

        w = state.atomic()
        publish_trades(w, state, 1, _trades(1, 3, 10 * MINUTE), 10 * MINUTE)
        await write(w)
        ids = [orjson.loads(r)["id"] for r in await cache.lrange(market_key(MARKET.symbol, "trades"), 0, -1)]
        assert ids == [3, 2, 1]  # newest first: the ticker's price is the last trade's
        published = []
        while len(published) < 3:
            msg = await sub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert msg is not None
            published.append(orjson.loads(msg["data"])["t"])
        assert published == [1, 2, 3]

        many = 2 * RECENT_TRADES + 500  # more than a command's worth: pushed in parts, oldest part first
        w = state.atomic()
        publish_trades(w, state, 2, _trades(4, many, 11 * MINUTE), 11 * MINUTE)
        await write(w)
        ids = [orjson.loads(r)["id"] for r in await cache.lrange(market_key(MARKET.symbol, "trades"), 0, -1)]
        newest = 3 + many
        assert ids == list(range(newest, newest - RECENT_TRADES, -1))
        assert await cache.get(market_key(MARKET.symbol, "trade_seq")) == b"2"
        assert await cache.zcard(market_key(MARKET.symbol, "klines")) == 2  # the closed minute and the open one

        w = state.atomic()
        publish_depth(w, state, Diff(1, 4, {100: 5, 101: 0}, {}), 11 * MINUTE)
        await write(w)
        assert await cache.hgetall(market_key(MARKET.symbol, "bids")) == {b"100": b"5"}
        assert await cache.get(market_key(MARKET.symbol, "depth_seq")) == b"4"
        await sub.aclose()
    finally:
        await cache.aclose()
        await listener.aclose()


def test_a_batch_of_trades_is_kept_newest_first_and_published_in_order(fresh_env: dict[str, str]) -> None:
    asyncio.run(_written(fresh_env["REDIS_URL"]))
