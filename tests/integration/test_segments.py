"""The segment ring on the real broker: producers and the five consumer groups of the fleet's topics over at
least seven segments (every slot recycled twice). Order requests go through two real senders, each with its
own fence (two producers, as two gateway replicas), beside a producer that registered and was never heard of
again (a replica killed at start): readers wait out its lease once, then leave it behind. Each group relays
what it reads the way its service does (the processor and the matcher seal their outputs when their input's
segment is complete). Every acknowledged request reaches the last readers once, in
its key's order; the keeper re-created the slots, and the broker never holds more than the ring's topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared import errors, identity, kafka, segment_fence, segment_keeper, segment_store, segments
from shared import redis as sredis
from shared.config import Settings
from shared.domain import OrderType, Side, TimeInForce
from shared.errors import ApiError
from shared.messages import NewOrderRequest, Topic, unpack_requests
from shared.request_sender import RequestSender

from .markets_db import markets_db

KEYS = [f"K{i}" for i in range(6)]
SEGMENTS = 8  # slots re-created from segment 3 on: each of the three slots twice by segment 8
SENDING_MAX_S = 90.0
DRAIN_S = 40.0


def request(key: str, n: int) -> NewOrderRequest:
    return NewOrderRequest(
        order_id=n, user_id=1, symbol=key, side=Side.BUY, type=OrderType.LIMIT, tif=TimeInForce.GTC,
        price="1", quantity="1", client_order_id=f"{key}-{n}", ts=n,
    )  # fmt: skip


Seen = dict[str, list[bytes]]


async def relay(
    settings: Settings,
    group: str,
    topics: list[Topic],
    outputs: list[str],
    out: kafka.Outbox,
    stop: asyncio.Event,
    seen: Seen,
) -> None:
    """One group: every record's value forwarded to ``outputs`` in its input's segment, then committed; its
    outputs sealed when an input segment is complete on a partition (what the processor and matcher do)."""

    async def done(ends: Sequence[kafka.SegmentEnd]) -> None:
        await out.flush()
        await out.seal_all([(name, partition, epoch) for _, partition, epoch in ends for name in outputs])

    if topics == [Topic.ORDER_REQUESTS]:
        decode: Callable[[bytes], bytes] | kafka.Envelopes[bytes] = kafka.Envelopes(
            lambda raw: [(f"{r.symbol}:{r.order_id}".encode(), None) for r, _ in unpack_requests(raw)]
        )
    else:
        decode = bytes
    async with kafka.consumer(settings, topics, group, decode, out, on_segment_done=done) as inbox:
        async for batch in inbox.batches(stop, timeout_ms=50):
            for r in batch.records:
                seen.setdefault(r.topic, []).append(r.value)
                for name in outputs:
                    await out.send(name, r.value, key=r.value.split(b":")[0].decode(), epoch=r.epoch)
            await out.flush()
            await inbox.commit(batch)


async def produce(
    sender: RequestSender, key: str, stop: asyncio.Event, acked: list[bytes], unknown: list[bytes]
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await sender.send(request(key, n))
            acked.append(f"{key}:{n}".encode())
        except ApiError as refused:  # the fence: not known (-1001) or status unknown (-1007)
            assert refused.code in (errors.DISCONNECTED, errors.TIMEOUT), refused.body()
            unknown.append(f"{key}:{n}".encode())
        await asyncio.sleep(0.02)


async def until(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def _flow(settings: Settings) -> None:
    async with markets_db(settings.database_url) as db:
        await db.execute("INSERT INTO fleet (fleet_id, epoch, base_epoch, created_at) VALUES ('seg', 0, 0, 0)")
        await kafka.create_topics(settings)
        stop_sending, stop = asyncio.Event(), asyncio.Event()
        acked: list[bytes] = []
        unknown: list[bytes] = []
        seen: dict[str, Seen] = {}
        async with (
            kafka.producer(settings) as out,
            sredis.client(settings) as cache,
            segment_fence.fence(settings, cache) as fence,
            segment_fence.fence(settings, cache) as other,
        ):
            assert fence is not None and other is not None
            ghost_expires = int(time.time() * 1000) + segments.LEASE_MS
            await segment_store.renew_producer(cache, settings, "ghost", -1, ghost_expires)
            keeper = asyncio.create_task(segment_keeper.keep(settings, cache, db, stop))
            groups = [
                ("order-processor", [Topic.ORDER_REQUESTS], [Topic.VALIDATED_ORDERS.value]),
                ("matcher", [Topic.VALIDATED_ORDERS], [Topic.MATCHED_EVENTS.value, Topic.TRADE_EXECUTION.value]),
                ("settlement", [Topic.MATCHED_EVENTS], []),
                ("market-data", [Topic.MATCHED_EVENTS, Topic.TRADE_EXECUTION], []),
                ("trade-archiver", [Topic.TRADE_EXECUTION], []),
            ]
            readers = [
                asyncio.create_task(relay(settings, g, t, o, out, stop, seen.setdefault(g, {}))) for g, t, o in groups
            ]
            senders = [RequestSender(out, fence), RequestSender(out, other)]
            producers = [
                asyncio.create_task(produce(senders[i % 2], k, stop_sending, acked, unknown))
                for i, k in enumerate(KEYS)
            ]

            async def segments_done() -> bool:
                for task in readers:
                    if task.done():
                        task.result()  # a reader that failed fails the test now
                return await identity.highest_epoch(db) >= SEGMENTS

            await until(segments_done, SENDING_MAX_S, "the keeper did not reach the eighth segment")
            stop_sending.set()
            await asyncio.gather(*producers)

            def complete(group: str, topic: str) -> bool:
                got = set(seen[group].get(topic, []))
                return all(v in got for v in acked)

            async def drained() -> bool:
                return all(
                    complete(g, t)
                    for g, t in [
                        ("settlement", Topic.MATCHED_EVENTS),
                        ("market-data", Topic.MATCHED_EVENTS),
                        ("market-data", Topic.TRADE_EXECUTION),
                        ("trade-archiver", Topic.TRADE_EXECUTION),
                    ]
                )

            await until(drained, DRAIN_S, "an acknowledged request never reached the last readers")
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
            await admin.start()
            try:
                mine = [t for t in await admin.list_topics() if t.endswith(settings.topic_suffix)]
            finally:
                await admin.close()
            stop.set()
            await asyncio.gather(*readers, keeper)

        assert len(acked) > 500, f"only {len(acked)} requests acknowledged"
        assert not unknown, f"{len(unknown)} answered unknown against {len(acked)} acked: no lease lapsed"
        # the ring's topics and the dead-letter topics, nothing more
        assert len(mine) == len(segments.SEGMENTED) * segments.SLOTS + len(Topic), sorted(mine)
        for group, by_topic in seen.items():
            for topic, values in by_topic.items():
                assert len(values) == len(set(values)), f"{group} read a record of {topic} twice"
                last: dict[bytes, int] = {}
                for v in values:  # per key, in the order sent
                    key, n = v.split(b":")
                    assert int(n) > last.get(key, 0), f"{group} read {v!r} of {topic} out of order"
                    last[key] = int(n)
        rows = await asyncpg.connect(settings.database_url)
        try:
            assert await rows.fetchval("SELECT epoch FROM fleet") >= SEGMENTS
        finally:
            await rows.close()


@pytest.mark.timeout(300)
def test_segments_recycle_without_loss_or_double(fresh_env: dict[str, str]) -> None:
    env = {**{k.lower(): v for k, v in fresh_env.items()}, "kafka_segment_s": 1}
    settings = Settings(**env)  # type: ignore[arg-type]
    settings.kafka_fetch_max_wait_ms = 5
    asyncio.run(_flow(settings))
