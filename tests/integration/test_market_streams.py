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
from services.market_data.streams import (
    FAST,
    RECENT_TRADES,
    SLOW,
    MarketState,
    persist_candles,
    publish_depth,
    publish_partial,
    publish_slow_depth,
    publish_trades,
)
from shared import redis as sredis
from shared.domain import Side
from shared.messages import LevelDelta, Trade
from shared.postgres import DEFAULT_MARKETS
from shared.rediskeys import MARKET_PARTS, market_key

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


async def _depth_speeds(redis_url: str) -> None:
    """Both diff speeds and the partial books, and a restart between two 1,000 ms pushes."""
    cache, listener = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    channels = sredis.Channels(":depth-test")
    symbol = "ETHUSDT"
    m = next(x for x in DEFAULT_MARKETS if x.symbol == symbol)
    try:
        await cache.delete(*[market_key(symbol, p) for p in MARKET_PARTS])
        sub = listener.pubsub()
        names = ["ethusdt@depth@100ms", "ethusdt@depth", "ethusdt@depth5", "ethusdt@depth20@100ms"]
        await sub.subscribe(*[channels.stream(n) for n in names])
        for _ in names:
            await sub.get_message(timeout=1)

        async def write(w: sredis.Atomic) -> None:
            pipe = cache.pipeline(transaction=False)
            w.queue(pipe)
            await pipe.execute()

        async def heard(count: int) -> list[tuple[str, dict[str, object]]]:
            out = []
            while len(out) < count:
                msg = await sub.get_message(ignore_subscribe_messages=True, timeout=2)
                assert msg is not None, out
                name = msg["channel"].decode().removeprefix("stream:").removesuffix(channels.ns)
                out.append((name, orjson.loads(msg["data"])))
            return out

        state = MarketState(m, channels)
        for seq, deltas in enumerate(
            ([LevelDelta(Side.BUY, p, 3) for p in range(100, 130)], [LevelDelta(Side.SELL, 200, 4)]), start=1
        ):
            state.depth.apply(seq, deltas)
            w = state.atomic()
            diff = state.depth.take_diff()
            assert diff is not None
            publish_depth(w, state, diff, 1_000 + seq)
            publish_partial(w, state, FAST)
            await write(w)
        pushed = await heard(4)
        assert [(e["U"], e["u"]) for c, e in pushed if c == "ethusdt@depth@100ms"] == [(1, 1), (2, 2)]
        tops = [e for c, e in pushed if c == "ethusdt@depth20@100ms"]
        assert [(len(e["bids"]), len(e["asks"]), e["lastUpdateId"]) for e in tops] == [(20, 0, 1), (20, 1, 2)]
        # market-data restarts before its 1,000 ms push: the diff it was gathering is in Redis
        state = MarketState(m, channels)
        await state.load(cache)
        assert state.depth.slow_pushed == 0 and len(state.depth.slow_bids) == 30 and state.depth.slow_asks == {200: 4}
        state.depth.apply(3, [LevelDelta(Side.BUY, 100, 0)])
        w = state.atomic()
        diff = state.depth.take_diff()
        assert diff is not None
        publish_depth(w, state, diff, 1_003)
        slow = state.depth.take_slow_diff()
        assert slow is not None
        publish_slow_depth(w, state, slow, 1_003)
        publish_partial(w, state, SLOW)
        await write(w)
        said = dict((c, e) for c, e in await heard(3))
        one_second = said["ethusdt@depth"]
        assert (one_second["e"], one_second["s"], one_second["U"], one_second["u"]) == ("depthUpdate", symbol, 1, 3)
        assert [m.fmt_price(100), m.fmt_qty(0)] in one_second["b"]
        assert one_second["a"] == [[m.fmt_price(200), m.fmt_qty(4)]]
        assert len(one_second["b"]) == 30 and one_second["b"][0][0] == m.fmt_price(129)  # best first
        top = said["ethusdt@depth5"]
        assert set(top) == {"lastUpdateId", "bids", "asks"} and top["lastUpdateId"] == 3
        assert [b[0] for b in top["bids"]] == [m.fmt_price(p) for p in range(129, 124, -1)]
        assert top["asks"] == [[m.fmt_price(200), m.fmt_qty(4)]]
        assert await cache.get(market_key(symbol, "slow_seq")) == b"3"
        assert await cache.exists(market_key(symbol, "slow_bids"), market_key(symbol, "slow_asks")) == 0
        await sub.aclose()
    finally:
        await cache.aclose()
        await listener.aclose()


def test_both_depth_speeds_and_the_partial_books_and_a_restart_between(fresh_env: dict[str, str]) -> None:
    asyncio.run(_depth_speeds(fresh_env["REDIS_URL"]))


async def _aggregated(redis_url: str) -> None:
    cache, listener = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    channels = sredis.Channels(":agg-test")
    try:
        await cache.delete(*[market_key(MARKET.symbol, p) for p in MARKET_PARTS])
        sub = listener.pubsub()
        await sub.subscribe(channels.stream("btcusdt@aggTrade"))
        await sub.get_message(timeout=1)
        state = MarketState(MARKET, channels)
        ts = 20 * MINUTE
        # a taker (order 9) buys from three makers: two at 5,000,000, one at 5,000,001; then another taker sells
        fills = [
            Trade(1, 5_000_000, 10, 9, 101, 3, 4, False, 0, 0, ts),
            Trade(2, 5_000_000, 20, 9, 102, 3, 4, False, 0, 0, ts),
            Trade(3, 5_000_001, 5, 9, 103, 3, 4, False, 0, 0, ts),
            Trade(4, 5_000_001, 7, 104, 8, 3, 4, True, 0, 0, ts),
        ]
        w = state.atomic()
        publish_trades(w, state, 1, fills, ts)
        persist_candles(w, state)
        pipe = cache.pipeline(transaction=False)
        w.queue(pipe)
        await pipe.execute()
        events = []
        while len(events) < 3:
            msg = await sub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert msg is not None, events
            events.append(orjson.loads(msg["data"]))
        assert [(e["a"], e["f"], e["l"], e["q"], e["m"]) for e in events] == [
            (1, 1, 2, MARKET.fmt_qty(30), False),
            (3, 3, 3, MARKET.fmt_qty(5), False),
            (4, 4, 4, MARKET.fmt_qty(7), True),
        ]
        assert await sub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None
        await sub.aclose()
    finally:
        await cache.aclose()
        await listener.aclose()


def test_the_agg_trade_stream_carries_aggregates(fresh_env: dict[str, str]) -> None:
    asyncio.run(_aggregated(fresh_env["REDIS_URL"]))
