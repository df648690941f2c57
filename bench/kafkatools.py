"""Kafka helpers for the benchmarks: bulk produce, committed offsets and lag, a raw consume-produce pipe.

Tansu's fetch cost grows with the number of batches a partition holds, so bulk produces use a long linger
and large batches (a few thousand records per batch), and every benchmark starts from fresh topics.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BULK_LINGER_MS = 200
BULK_BATCH_BYTES = 1 << 20


async def produce_all(bootstrap: str, topic: str, records: Sequence[tuple[str, bytes]]) -> float:
    """Send every (key, value) and wait for the acks; returns records/s of the whole produce."""
    rate, _ = await produce_placed(bootstrap, topic, records)
    return rate


async def produce_placed(bootstrap: str, topic: str, records: Sequence[tuple[str, bytes]],
                         ) -> tuple[float, list[tuple[int, int]]]:
    """``produce_all``, also returning where each record landed: (partition, offset), in ``records`` order."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                         linger_ms=BULK_LINGER_MS, max_batch_size=BULK_BATCH_BYTES, max_request_size=16 << 20)
    await p.start()
    try:
        t0 = time.perf_counter()
        futs = []
        for key, value in records:
            futs.append(await p.send(topic, value, key=key.encode()))
        metas = await asyncio.gather(*futs)
        return len(records) / (time.perf_counter() - t0), [(m.partition, m.offset) for m in metas]
    finally:
        await p.stop()


class Carried:
    """How many messages the records of a topic carry up to a committed offset: once records are envelopes,
    committed offsets count records, and a rate must count the messages (orders) inside them."""

    def __init__(self, placed: Sequence[tuple[int, int]], counts: Sequence[int]) -> None:
        per: dict[int, list[tuple[int, int]]] = {}
        for (partition, offset), n in zip(placed, counts, strict=True):
            per.setdefault(partition, []).append((offset, n))
        self._offsets: dict[int, list[int]] = {}
        self._cumulative: dict[int, list[int]] = {}  # messages in the records before each offset, and all
        for partition, rows in per.items():
            rows.sort()
            self._offsets[partition] = [o for o, _ in rows]
            self._cumulative[partition] = [0, *accumulate(n for _, n in rows)]

    def messages(self, committed: Mapping[TopicPartition, int]) -> int:
        """Messages in the records below each partition's committed offset (the next one to consume)."""
        done = 0
        for tp, end in committed.items():
            offsets = self._offsets.get(tp.partition)
            if offsets:
                done += self._cumulative[tp.partition][bisect_left(offsets, end)]
        return done


async def partitions_of(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        out = []
        for t in topics:
            for p in sorted(c.partitions_for_topic(t) or ()):
                out.append(TopicPartition(t, p))
        if not out:  # metadata not loaded yet for these topics
            await c._client.force_metadata_update()
            for t in topics:
                out += [TopicPartition(t, p) for p in sorted(c.partitions_for_topic(t) or ())]
        return out
    finally:
        await c.stop()


class Offsets:
    """End offsets of topics and committed offsets of consumer groups, through one admin and one consumer."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> Offsets:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def tps(self, topic: str) -> list[TopicPartition]:
        parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(parts)]

    async def end(self, topic: str) -> dict[TopicPartition, int]:
        """High watermarks. Tansu's ListOffsets(latest) answers the last batch's base offset + 1, not the
        high watermark (1 after one batch of 1000 records), so a fetch at that offset - 1 reads the real one."""
        tps = await self.tps(topic)
        if not tps:
            return {}
        listed = dict(await self.consumer.end_offsets(tps))
        out = {tp: 0 for tp in tps}
        todo = [tp for tp in tps if listed[tp] > 0]
        if not todo:
            return out
        self.consumer.assign(todo)
        for tp in todo:
            self.consumer.seek(tp, listed[tp] - 1)
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline:
            await self.consumer.getmany(*todo, timeout_ms=100, max_records=1)
            marks = {tp: self.consumer.highwater(tp) for tp in todo}
            if all(m is not None for m in marks.values()):
                out.update({tp: int(m) for tp, m in marks.items() if m is not None})
                break
        else:
            out.update({tp: listed[tp] for tp in todo})  # best effort
        self.consumer.unsubscribe()
        return out

    async def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        """OffsetFetch for the topic's partitions (Tansu drops the connection on the all-topics form)."""
        tps = await self.tps(topic)
        got = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        return {tp: meta.offset for tp, meta in got.items() if meta is not None and meta.offset >= 0}

    async def lag(self, group: str, topics: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for topic in topics:
            committed = await self.committed(group, topic)
            end = await self.end(topic)
            out[topic] = sum(max(0, e - committed.get(tp, 0)) for tp, e in end.items())
        return out


def sustained(samples: list[tuple[float, int]], total: int, t_from: float | None = None) -> tuple[float, int, float]:
    """Rate from the first committed batch (or ``t_from``) to the end: (records/s, records counted, seconds).

    The first commit already holds one batch, which is left out of the count so start-up (process launch,
    group join, book load) is not part of the figure.
    """
    first = next(((t, n) for t, n in samples if n > 0 and (t_from is None or t >= t_from)), None)
    last = next(((t, n) for t, n in samples if n >= total), samples[-1])
    if first is None or last[0] <= first[0]:
        return 0.0, 0, 0.0
    counted = last[1] - first[1]
    secs = last[0] - first[0]
    return counted / secs, counted, secs


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def raw_pipe(bootstrap: str, src: str, dst: str, group: str, total: int, decode: Callable[[bytes], Any],
                   encode: Callable[[Any], bytes], batch_max: int = 2000, limit_s: float = 300,
                   carried: Carried | None = None) -> tuple[float, int, float]:
    """The reference for a consuming service: consume, decode, re-encode, produce, wait for acks, commit.

    Same client settings as ``shared.kafka`` (acks=all, linger 1 ms, manual commit, batches of
    ``batch_max``); no database, no Redis, no logic. Returns ``sustained(...)`` over its own commits, in
    records, or with ``carried`` in the messages those records carry (``total`` is then messages too).
    """
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=1,
                         max_batch_size=1 << 20, max_request_size=8 << 20)
    c = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=5, max_partition_fetch_bytes=4 << 20)
    await p.start()
    await c.start()
    samples: list[tuple[float, int]] = []
    done = 0
    position: dict[TopicPartition, int] = {}
    try:
        deadline = time.perf_counter() + limit_s
        while done < total and time.perf_counter() < deadline:
            polled = await c.getmany(timeout_ms=100, max_records=batch_max)
            if not polled:
                continue
            futs = []
            ends = {}
            for tp, raws in polled.items():
                for raw in raws:
                    futs.append(await p.send(dst, encode(decode(raw.value)), key=raw.key))
                ends[tp] = raws[-1].offset + 1
                done += len(raws)
            await asyncio.gather(*futs)
            await c.commit(ends)
            if carried is not None:
                position.update(ends)
                done = carried.messages(position)
            samples.append((time.perf_counter(), done))
    finally:
        await c.stop()
        await p.stop()
    return sustained(samples, total)
