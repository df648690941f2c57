"""Backpressure at the WebSocket fan-out: a client that stops reading is cut off, the others keep up.

Real Redis pub/sub, the gateway's ``Hub``: a subscriber that never drains its queue is flagged after
``QUEUE_MAX`` messages (the WebSocket is then closed by its session) while a reading subscriber on the
same channel receives every message; the slow one's memory stays bounded by the queue.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.gateway.hub import DROPPED, QUEUE_MAX, Hub, Subscriber
from shared import redis as sredis


async def _fan_out(redis_url: str) -> None:
    channels = sredis.Channels(".hubtest")
    listener, publisher = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    outcomes: list[bytes] = []
    hub = Hub(listener, outcomes.append, channels)
    await hub.start()
    slow, fast = Subscriber(), Subscriber()
    channel = channels.stream("btcusdt@trade")
    received = 0
    try:
        await hub.subscribe(channel, slow)
        await hub.subscribe(channel, fast)
        dropped_before = DROPPED._value.get()
        total = QUEUE_MAX + 500

        async def drain() -> None:
            nonlocal received
            while received < total:
                assert await fast.next() is not None
                received += 1

        reader = asyncio.create_task(drain())
        for i in range(0, total - 1, 2):  # two events per message (a batch's, one per line), then one alone
            await publisher.publish(channel, b'{"n":%d}\n{"n":%d}' % (i, i + 1))
        if total % 2:
            await publisher.publish(channel, b'{"n":%d}' % (total - 1))
        await asyncio.wait_for(reader, 20)
        assert received == total, "the reading client missed messages"
        assert slow.overflowed, "the stalled client was not flagged"
        assert len(slow.items) == QUEUE_MAX, "the stalled client's backlog is bounded"
        assert await slow.next() is None, "its writer is told to close"
        assert DROPPED._value.get() == dropped_before + 1
        await publisher.publish(channels.outcomes, b'{"requestId": 7}')
        await publisher.publish(channels.outcomes, b'{"requestId": 8}\n{"requestId": 9}')  # a settlement batch
        for _ in range(100):
            if len(outcomes) == 3:
                break
            await asyncio.sleep(0.02)
        assert outcomes == [b'{"requestId": 7}', b'{"requestId": 8}', b'{"requestId": 9}']
    finally:
        await hub.unsubscribe(channel, slow)
        await hub.unsubscribe(channel, fast)
        await hub.stop()
        await publisher.aclose()
        await listener.aclose()


def test_a_stalled_client_is_cut_off_and_others_keep_up(servers: dict[str, str]) -> None:
    asyncio.run(_fan_out(servers["REDIS_URL"]))
