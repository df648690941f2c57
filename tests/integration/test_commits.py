"""Offsets on the real broker: a consumer commits what it is done with at most every
``kafka_commit_interval_ms``, and also as soon as it goes idle and when it stops, so nothing done is
redelivered to the next consumer of the group, and nothing not done is skipped."""

from __future__ import annotations

import asyncio
import secrets

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import kafka
from shared.config import Settings
from shared.messages import Topic

TOPIC = Topic.TRADE_EXECUTION


async def _committed(settings: Settings, group: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:  # by partition: Tansu drops the connection on the all-topics form
        tp = TopicPartition(settings.topic(TOPIC), 0)
        offsets = await admin.list_consumer_group_offsets(f"{group}{settings.topic_suffix}", partitions=[tp])
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return meta.offset if meta is not None and meta.offset >= 0 else None


async def _consume(settings: Settings, group: str, count: int, idle_first: bool) -> list[bytes]:
    """Take ``count`` records, one batch at a time, each committed; with ``idle_first``, poll on until an
    idle poll before leaving."""
    stop, got = asyncio.Event(), []
    async with kafka.producer(settings) as dlq, kafka.consumer(settings, [TOPIC], group, bytes, dlq) as inbox:
        async with asyncio.timeout(20):
            async for batch in inbox.batches(stop, timeout_ms=50, yield_empty=True):
                if batch.records and len(got) < count:  # one record a batch (kafka_batch_max=1)
                    got += [r.value for r in batch.records]
                    await inbox.commit(batch)
                    assert await _committed(settings, group) != len(got), "committed per batch"
                if len(got) >= count:
                    if not idle_first:
                        break
                    if not batch.records:  # the idle poll committed
                        assert await _committed(settings, group) == count
                        break
    return got


async def _flow(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    async with kafka.producer(settings) as out:
        for i in range(6):
            await out.send_now(TOPIC, f"m{i}".encode(), key="BTCUSDT")
    group = f"commits-{secrets.token_hex(3)}"
    # a long interval: nothing is committed per batch, yet the idle poll commits the first three
    assert await _consume(settings, group, 3, idle_first=True) == [b"m0", b"m1", b"m2"]
    assert await _committed(settings, group) == 3
    # the next consumer of the group starts after them; stopping commits what it did (one record here)
    more = await _consume(settings, group, 1, idle_first=False)
    assert more == [b"m3"]
    assert await _committed(settings, group) == 4


def test_offsets_are_committed_when_idle_and_on_stop_not_per_batch(servers: dict[str, str]) -> None:
    settings = Settings(
        kafka_bootstrap=servers["KAFKA_BOOTSTRAP"],
        topic_suffix=f".cm{secrets.token_hex(3)}",
        kafka_commit_interval_ms=60_000,
        kafka_batch_max=1,
    )
    asyncio.run(_flow(settings))
