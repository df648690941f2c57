"""ElastiCache in cluster mode, on a local three-master Redis Cluster: the client, pub/sub order, the book store.

A channel's messages reach a subscriber in the order they were published only if they all leave from one
node: each node forwards to the others over its own bus link, and two links race. ``Publications`` keys each
channel's call by the channel's slot; sent from any node, as a script without keys is, a user's events
arrived out of order.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from services.matcher.bookstore import BookStore
from shared import redis as sredis
from shared.config import Settings
from shared.rediskeys import state_key
from tests.conftest import make_env

MESSAGES = 300


@pytest.fixture
def cluster_settings(servers: dict[str, str], redis_cluster: str) -> Settings:
    env = make_env(servers, redis_cluster)
    return Settings(redis_url=env["REDIS_URL"], redis_cluster=env["REDIS_CLUSTER"] == "true")


async def test_the_client_is_a_cluster_client(cluster_settings: Settings) -> None:
    async with sredis.client(cluster_settings) as cache:
        assert isinstance(cache, aioredis.RedisCluster)
        assert len(cache.get_primaries()) == 3


async def test_each_channels_messages_arrive_in_order(cluster_settings: Settings) -> None:
    channels = sredis.Channels(".cluster")
    watched = [channels.user(7), channels.outcomes, channels.stream("btcusdt@trade")]
    async with sredis.client(cluster_settings) as cache, sredis.client(cluster_settings) as reader:
        pubsub = reader.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(*watched)
        for n in range(MESSAGES):  # one call per message, as a batch of one: each may go to another node
            told = sredis.Publications()
            for channel in watched:
                told.add(channel, b"%d" % n)
            if n % 2:
                await told.send(cache)
            else:
                pipe = cache.pipeline(transaction=False)
                told.queue(pipe)
                await pipe.execute()
        heard: dict[str, list[int]] = {channel: [] for channel in watched}
        deadline = asyncio.get_running_loop().time() + 30
        while sum(map(len, heard.values())) < MESSAGES * len(watched):
            assert asyncio.get_running_loop().time() < deadline, {c: len(h) for c, h in heard.items()}
            message = await pubsub.get_message(timeout=1)  # None for a subscription's confirmation
            if message is not None:
                heard[message["channel"].decode()].append(int(message["data"]))
        await pubsub.aclose()
    assert heard == {channel: list(range(MESSAGES)) for channel in watched}


async def test_the_book_store_reads_every_symbols_sequence(cluster_settings: Settings) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    async with sredis.client(cluster_settings) as cache:
        assert isinstance(cache, aioredis.RedisCluster)
        slots = {cache.keyslot(state_key(s)) for s in symbols}
        assert len(slots) > 1, "the symbols' books live in several slots"
        assert await BookStore(cache).sequences(symbols) == dict.fromkeys(symbols, 0)
