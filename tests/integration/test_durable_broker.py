"""The durable local broker: Tansu's ``s3://`` engine on ``spot.objectstore`` keeps its log across restarts.

What a restart must keep: every record at its offset, each group's committed offsets, and the next offset of
each partition, so that a record produced after the restart lands after the old ones instead of over them
(what a store without conditional writes let happen). Stopped both ways: SIGTERM, and SIGKILL (no goodbye).
The segment ring recycles a slot topic by deleting and creating it again; that works on it too.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from spot import infra
from tests.faults import free_port

TOPIC, GROUP, PARTITIONS = "durable", "readers", 2
N = 60  # records before the first restart, one produce batch each (the watermark moves on every one)


class Broker:
    """One object store kept for the whole test, and a Tansu on it that can be stopped and started again."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.store = infra.Infra()
        self.store_url = infra.start_object_store(self.store, state / infra.BROKER_DIR, free_port())
        self.port = free_port()
        self.tansu: infra.Infra | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.tansu = infra.Infra()
        infra.start_tansu(self.tansu, self.state, self.port, self.store_url)

    def stop(self, sig: int) -> None:
        assert self.tansu is not None
        proc = self.tansu.children[0].proc
        proc.send_signal(sig)
        proc.wait(30)
        self.tansu = None

    def close(self) -> None:
        if self.tansu is not None:
            self.tansu.stop()
        self.store.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.close()


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def _produce(bootstrap: str, topic: str, values: list[bytes], partition: int) -> list[int]:
    """Each value in a batch of its own; the offsets the broker gave them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, v, partition=partition)).offset for v in values]
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, partition: int, end: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record of a partition up to ``end``, from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[tuple[int, bytes]] = []
        async with asyncio.timeout(30):
            while not got or got[-1][0] < end - 1:
                polled = await consumer.getmany(tp, timeout_ms=200)
                got += [(r.offset, r.value) for r in polled.get(tp, [])]
        return got
    finally:
        await consumer.stop()


async def _commit(bootstrap: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


async def _end_offset(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


def _values(tag: str, n: int) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(n)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_records_offsets_and_groups_survive_a_restart(broker: Broker, sig: int) -> None:
    admin = await _admin(broker.bootstrap)
    try:
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    finally:
        await admin.close()
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    first = _values("before", N)
    assert await _produce(broker.bootstrap, TOPIC, first, 0) == list(range(N))
    assert await _produce(broker.bootstrap, TOPIC, first[:5], 1) == list(range(5))
    await _commit(broker.bootstrap, {tp0: 40, tp1: 3})

    for round_ in (1, 2):  # a second restart finds what the first one's broker wrote
        broker.stop(sig)
        broker.start()
        before = N + 10 * (round_ - 1)
        assert await _end_offset(broker.bootstrap, tp0) == before
        assert await _committed(broker.bootstrap, tp0) == 40 + round_ - 1
        assert await _committed(broker.bootstrap, tp1) == 3
        # new records come after the old ones, not over them
        after = _values(f"after{round_}", 10)
        assert await _produce(broker.bootstrap, TOPIC, after, 0) == list(range(before, before + 10))
        got = await _read_all(broker.bootstrap, TOPIC, 0, before + 10)
        assert [o for o, _ in got] == list(range(before + 10))
        expected = first + [v for r in range(1, round_ + 1) for v in _values(f"after{r}", 10)]
        assert [v for _, v in got] == expected
        await _commit(broker.bootstrap, {tp0: 40 + round_})


async def test_the_end_of_each_partition_is_after_its_last_acknowledged_record(broker: Broker) -> None:
    """ListOffsets(latest), what the segment ring asks once a segment is sealed: Tansu answers the base offset of
    the batch listed as modified last, plus one (the first of equals in key order). Records acknowledged back to
    back, each its own batch, four partitions at once: with times in milliseconds two batches shared one, and
    the end came out a record short (the 59 == 60 of the restart test above, with no restart needed)."""
    partitions, n = 4, 40
    admin = await _admin(broker.bootstrap)
    try:
        await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
    finally:
        await admin.close()
    values = _values("r", n)
    produced = await asyncio.gather(*(_produce(broker.bootstrap, TOPIC, values, p) for p in range(partitions)))
    assert produced == [list(range(n))] * partitions
    ends = [await _end_offset(broker.bootstrap, TopicPartition(TOPIC, p)) for p in range(partitions)]
    assert ends == [n] * partitions


async def test_a_deleted_topic_comes_back_empty_and_survives_a_restart(broker: Broker) -> None:
    """The segment ring's recycling: delete a slot topic, create it again, write it from offset 0; the files of
    the topics deleted go with them."""
    tp = TopicPartition(TOPIC, 0)
    admin = await _admin(broker.bootstrap)
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        for cycle in range(3):
            assert await _produce(broker.bootstrap, TOPIC, _values(f"old{cycle}", 20), 0) == list(range(20))
            await _commit(broker.bootstrap, {tp: 20})
            await admin.delete_topics([TOPIC])
            await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()
    assert await _end_offset(broker.bootstrap, tp) == 0
    assert await _committed(broker.bootstrap, tp) is None  # the group's offsets went with the topic
    assert await _produce(broker.bootstrap, TOPIC, _values("new", 5), 0) == list(range(5))
    broker.stop(signal.SIGKILL)
    broker.start()
    assert await _produce(broker.bootstrap, TOPIC, _values("newer", 3), 0) == [5, 6, 7]
    got = await _read_all(broker.bootstrap, TOPIC, 0, 8)
    assert [v for _, v in got] == _values("new", 5) + _values("newer", 3)
    files = _files(broker, TOPIC)
    assert [f for f in files if f.endswith(".batch")] == [f"{o:020}.batch" for o in range(8)], files
    assert [f for f in files if not f.endswith(".batch")] == ["watermark.json"], files
    assert not [p for p in (broker.state / infra.BROKER_DIR).rglob(".*")], "no temporary file is left"


def _files(broker: Broker, topic: str) -> list[str]:
    """The names of the files the store keeps for ``topic``: its objects and the groups' offsets for it."""
    bucket = broker.state / infra.BROKER_DIR / infra.BUCKET
    own = [p for p in bucket.glob(f"clusters/*/topics/{topic}/**/*") if p.is_file()]
    offsets = [p for p in bucket.glob(f"clusters/*/groups/consumers/*/offsets/{topic}/**/*") if p.is_file()]
    return sorted(p.name for p in own + offsets)


def _store_json(broker: Broker, key: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Read an object of the store as JSON, change it, write it back (as Tansu does, under its ETag)."""
    url = f"{broker.store_url}/{infra.BUCKET}/{key}"
    with urllib.request.urlopen(url) as r:
        etag, doc = r.headers["ETag"], json.loads(r.read())
    change(doc)
    put = urllib.request.Request(url, data=json.dumps(doc).encode(), method="PUT", headers={"If-Match": etag})
    with urllib.request.urlopen(put) as r:
        assert r.status == 200


async def test_a_topic_deletion_killed_half_way_is_finished_before_the_next_start(broker: Broker) -> None:
    """Tansu deletes a topic's name from its metadata first, then the topic's objects and the groups' offsets for
    it. A kill in between left them: the topic created again started its watermark at 0 over the old batches,
    served them as its own and refused new records at their offsets. The next start removes them first."""
    tp = TopicPartition(TOPIC, 0)
    admin = await _admin(broker.bootstrap)
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1), NewTopic("kept", 1, 1)])
    finally:
        await admin.close()
    assert await _produce(broker.bootstrap, TOPIC, _values("old", 20), 0) == list(range(20))
    assert await _produce(broker.bootstrap, "kept", _values("kept", 3), 0) == [0, 1, 2]
    await _commit(broker.bootstrap, {tp: 20, TopicPartition("kept", 0): 3})
    broker.stop(signal.SIGKILL)
    # where the kill stopped the deletion: the name is out of the metadata, its objects are all still there
    meta = next((broker.state / infra.BROKER_DIR / infra.BUCKET).glob("clusters/*/meta.json"))
    key = meta.relative_to(broker.state / infra.BROKER_DIR / infra.BUCKET).as_posix()
    _store_json(broker, key, lambda doc: doc["topics"].pop(TOPIC))
    assert len(_files(broker, TOPIC)) == 20 + 2  # batches, watermark, the group's offset
    broker.start()
    assert _files(broker, TOPIC) == []
    assert "removed the objects of deleted topics" in (broker.state / "tansu.log").read_text()
    admin = await _admin(broker.bootstrap)
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()
    assert await _end_offset(broker.bootstrap, tp) == 0
    assert await _committed(broker.bootstrap, tp) is None
    assert await _produce(broker.bootstrap, TOPIC, _values("new", 5), 0) == list(range(5))
    assert [v for _, v in await _read_all(broker.bootstrap, TOPIC, 0, 5)] == _values("new", 5)
    assert [v for _, v in await _read_all(broker.bootstrap, "kept", 0, 3)] == _values("kept", 3)  # untouched
    assert await _committed(broker.bootstrap, TopicPartition("kept", 0)) == 3
