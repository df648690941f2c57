"""Kafka wrapped once: a batching producer, a batching consumer that dead-letters poison, topic creation.

The producer is librdkafka's (``shared.kafka_producer``: its protocol work in C), the consumer and the admin
client aiokafka's. Delivery is at-least-once: a service sends its outputs, waits for the broker's acks
(``Outbox.flush``), and only then commits its input (``Inbox.commit``). Tansu (the local broker) rejects
idempotent producers and transactions, so producers use ``acks=all`` without idempotence; consumers deduplicate
instead.

A record that does not decode is poison: it goes to ``<topic>.dlq`` with the reason in a header, is
counted, and its partition keeps flowing. A record that decodes but cannot be applied is the consumer's to
isolate, with ``shared.deadletter``, into the same topics.

A topic whose records may carry several messages (the matcher's envelopes, ``shared.messages``) is read
with an ``Envelopes`` decoder: each message becomes a ``Record`` of its own, at the offset of the record
that carried it (so one offset may hold several, in order), with its own ``traceparent`` header.

Metrics, observed per batch call, never per record: ``spot_kafka_call_seconds{operation}`` (fetch, flush,
commit, send) and ``spot_kafka_consumer_lag{group,topic,partition}``, the highwater of the consumer's own last
fetch minus its position (no extra request; Tansu answers ``end_offsets`` wrongly anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from prometheus_client import Counter, Gauge, Histogram

from . import identity, kafka_group, kafka_security, segments, shutdown, tracing
from .config import Settings
from .kafka_producer import Producer
from .messages import Topic
from .segment_ring import Ring, SegmentDone, SegmentEnd

log = logging.getLogger(__name__)
kafka_group.install()  # every consumer leaves its group on stop, in Tansu's generation 0 too

T = TypeVar("T")
DLQ_TOTAL = Counter("spot_dlq_messages_total", "Poison messages sent to a dead-letter topic", ["topic"])
CALL_SECONDS = Histogram(
    "spot_kafka_call_seconds",
    "Kafka call latency per batch: fetch (a poll that returned records), flush (produce acks), commit, send",
    ["operation"],
    buckets=tracing.CALL_BUCKETS,
)
FETCH_SECONDS, FLUSH_SECONDS, COMMIT_SECONDS, SEND_SECONDS = (
    CALL_SECONDS.labels(op) for op in ("fetch", "flush", "commit", "send")
)
LAG = Gauge(
    "spot_kafka_consumer_lag",
    "Records behind the partition's end: highwater of the last fetch minus the consumer's position",
    ["group", "topic", "partition"],
)
CONNECT_RETRY_S = 0.5
CONNECT_RETRY_MAX_S = 5.0
ASSIGNMENT_WAIT_S = 30.0
STOP_COMMIT_S = 5.0  # how long a stopping consumer tries to commit what it has done
STOP_S = 10.0  # how long a client may take to stop (leave its group, send what it holds)
PROBE_S = 1.5  # a readiness probe's metadata request; below resilience.PROBE_TIMEOUT_S, which gives it up


def security(settings: Settings) -> dict[str, Any]:
    """Connection options of every client: TLS and SASL (``shared.kafka_security``: MSK IAM, SCRAM), and how
    long a request may go unanswered. A broker that goes silent without closing (a black hole) fails the
    request after ``kafka_request_timeout_ms`` and the client reconnects; aiokafka has no TCP keepalive option,
    but its connections are never idle (heartbeats every second, metadata refreshes), so a dead peer is
    always found by a request's timeout."""
    return {**kafka_security.options(settings), "request_timeout_ms": settings.kafka_request_timeout_ms}


async def _start_with_retry(client: Producer | AIOKafkaConsumer | AIOKafkaAdminClient, what: str) -> None:
    """A broker that is not up yet is waited for, with backoff, instead of crashing the service."""
    delay = CONNECT_RETRY_S
    while True:
        try:
            async with shutdown.attempt():  # a stop abandons a connect that hangs (a blackholed broker)
                await client.start()
            return
        except (KafkaError, OSError) as exc:
            log.warning("kafka %s not reachable (%s); retrying in %.1fs", what, type(exc).__name__, delay)
            await shutdown.pause(delay)  # a stop requested meanwhile ends the wait (shared.shutdown)
            delay = min(delay * 2, CONNECT_RETRY_MAX_S)


async def _stop(client: Producer | AIOKafkaConsumer, what: str) -> None:
    """Stop a client within ``STOP_S``: one whose broker went silent would wait out every request's timeout
    (a consumer's leave-group, a producer's last batch) while the service waits to serve again."""
    try:
        await asyncio.wait_for(client.stop(), STOP_S)
    except (TimeoutError, KafkaError, OSError) as exc:
        log.warning("kafka %s not stopped cleanly (%s); dropped", what, type(exc).__name__)
    except asyncio.CancelledError:
        # aiokafka's fetcher cancels a fetch still pending (one backing off after a broker went silent) and
        # awaits it without catching its CancelledError, which would end the whole service; only a cancel
        # aimed at this task goes on up
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("kafka %s not stopped cleanly (a pending fetch was cancelled); dropped", what)


class Outbox:
    """Buffers sends; ``flush`` waits until the broker acknowledged every one of them."""

    def __init__(self, producer: Producer, settings: Settings) -> None:
        self._producer = producer
        self._settings = settings
        self._pending: list[asyncio.Future[Any]] = []

    async def send(
        self,
        topic: str,
        value: bytes,
        key: str,
        headers: list[tuple[str, bytes]] | None = None,
        epoch: int | None = None,
    ) -> None:
        """``epoch``: the segment of the input this output comes from (``shared.segments``); None for a topic
        outside the ring or a fleet with segments off."""
        fut = await self._producer.send(
            self.name(topic, epoch), value, key=key.encode(), headers=self._stamped(headers)
        )
        self._pending.append(fut)

    def name(self, topic: str, epoch: int | None = None) -> str:
        """The physical topic a record of ``topic`` in segment ``epoch`` goes to."""
        if epoch is None or not self._settings.kafka_segment_s or topic not in segments.SEGMENTED:
            return self._settings.topic(topic)
        return self._settings.topic(segments.slot_name(topic, segments.slot_of(epoch)))

    async def seal(self, topic: str, partition: int, epoch: int) -> None:
        """End segment ``epoch`` of ``topic`` on ``partition``: everything this writer sent to it before is
        acknowledged (the caller flushed), so its readers may move on once they passed this record."""
        await self.seal_all([(topic, partition, epoch)])

    async def seal_all(self, seals: Iterable[SegmentEnd]) -> None:
        """``seal`` for each (topic, partition, epoch), all handed to the producer before any ack is awaited:
        the partitions of a segment end together, and one round trip ends them all."""
        with tracing.Timed(SEND_SECONDS, "kafka send"):
            acks = []
            for topic, partition, epoch in seals:
                name, headers = self.name(topic, epoch), self._stamped(segments.seal_headers(epoch))
                acks.append(await self._producer.send(name, b"", headers=headers, partition=partition))
            await asyncio.gather(*acks)

    def _stamped(self, headers: list[tuple[str, bytes]] | None) -> list[tuple[str, bytes]] | None:
        """Every record carries the fleet's identity (``shared.identity``), once the service has checked it."""
        fleet = self._settings.fleet_id
        if not fleet:
            return headers
        return [*(headers or ()), (identity.HEADER, fleet.encode())]

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await self._acks(pending)

    def sent(self) -> asyncio.Future[None]:
        """The acks of everything sent so far, to await later: a caller that pipelines takes them here and
        goes on; a later ``flush`` or ``sent`` covers only what is sent after."""
        pending, self._pending = self._pending, []
        return asyncio.ensure_future(self._acks(pending))

    @staticmethod
    async def _acks(pending: list[asyncio.Future[Any]]) -> None:
        if not pending:
            return
        with tracing.Timed(FLUSH_SECONDS, "kafka flush"):
            await asyncio.gather(*pending)

    async def reachable(self) -> None:
        """Raises unless a broker answers a metadata request within ``PROBE_S`` (the readiness probe)."""
        await self._producer.metadata(PROBE_S)

    async def send_all_now(self, topic: str, values: Sequence[bytes], key: str, epoch: int | None = None) -> None:
        """Send records of one key (to segment ``epoch``, see ``send``) and wait for their acks; all are handed
        to the producer before any ack is awaited, so they keep their order in the partition."""
        with tracing.Timed(SEND_SECONDS, "kafka send"):
            stamp = self._stamped(None)
            name = self.name(topic, epoch)
            acks = [await self._producer.send(name, v, key=key.encode(), headers=stamp) for v in values]
            await asyncio.gather(*acks)

    async def send_now(
        self,
        topic: str,
        value: bytes,
        key: str,
        headers: list[tuple[str, bytes]] | None = None,
        epoch: int | None = None,
    ) -> tuple[int, int]:
        """Send one record (to segment ``epoch``, see ``send``) and wait for its ack; returns (partition, offset)."""
        with tracing.Timed(SEND_SECONDS, "kafka send"):
            name, stamped = self.name(topic, epoch), self._stamped(headers)
            meta = await (await self._producer.send(name, value, key=key.encode(), headers=stamped))
        partition, offset = meta.partition(), meta.offset()
        assert partition is not None and offset is not None  # an acknowledged record has both
        return partition, offset


def producer_client(settings: Settings, linger_ms: int = 1) -> Producer:
    """The producer every service uses (librdkafka's, ``shared.kafka_producer``), not started (``producer``
    starts it)."""
    return Producer(settings, linger_ms)


@asynccontextmanager
async def producer(settings: Settings, linger_ms: int = 1) -> AsyncIterator[Outbox]:
    p = producer_client(settings, linger_ms)
    await _start_with_retry(p, "producer")
    try:
        yield Outbox(p, settings)
    finally:
        await _stop(p, "producer")


@dataclass(slots=True)
class Record(Generic[T]):
    topic: str
    partition: int
    offset: int
    value: T
    headers: tuple[tuple[str, bytes], ...] = ()
    index: int = 0  # the message's place in its record (an envelope's messages share the record's offset)
    epoch: int = 0  # the log segment it was read from (``shared.segments``; the fleet's epoch when off)


@dataclass(slots=True)
class Batch(Generic[T]):
    """Decoded records of one poll, in offset order per partition; ``ends`` are the offsets to commit."""

    records: list[Record[T]] = field(default_factory=list)
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    epochs: dict[TopicPartition, int] = field(default_factory=dict)  # the segment each partition's records are of
    sealed: set[TopicPartition] = field(default_factory=set)  # partitions whose segment's seal this batch reached
    oldest_ms: int | None = None  # the produce time (ms) of its oldest record: how long the batch waited


Assigned = Callable[[set[TopicPartition]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Envelopes(Generic[T]):
    """A decoder for records that carry one or more messages: ``unpack(value)`` gives each message with
    its ``traceparent`` (None: the record's own headers apply, as for a record of one message)."""

    unpack: Callable[[bytes], Sequence[tuple[T, bytes | None]]]


class _Lag:
    """The lag gauge of one consumer's partitions, set from what each poll returned (no broker request)."""

    def __init__(self, group: str, base: Callable[[str], str]) -> None:
        """``base``: the logical topic of a physical name (without the run's suffix and the segment slot)."""
        self._group = group
        self._base = base
        self._gauges: dict[TopicPartition, Any] = {}

    def update(self, consumer: AIOKafkaConsumer, ends: Iterable[tuple[TopicPartition, int]]) -> None:
        """``ends``: (partition, next offset to consume) after a poll; called before any await."""
        assigned = consumer.assignment()
        for tp, position in ends:
            if tp not in assigned:  # never for a fresh poll, but highwater() asserts it: a rebalance's race
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            gauge = self._gauges.get(tp)
            if gauge is None:
                gauge = self._gauges[tp] = LAG.labels(self._group, self._base(tp.topic), str(tp.partition))
            gauge.set(max(highwater - position, 0))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """A revoked partition is another consumer's to report."""
        for tp in partitions:
            if self._gauges.pop(tp, None) is not None:
                LAG.remove(self._group, self._base(tp.topic), str(tp.partition))


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign: Assigned | None, on_revoke: Assigned | None, lag: _Lag, ring: Ring | None) -> None:
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._lag = lag
        self._ring = ring
        self.inbox: Inbox[Any] | None = None

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        if self.inbox is not None:  # while they are still ours
            await self.inbox.flush_commits()
        self._lag.forget(revoked)
        if self._ring is not None:
            self._ring.revoked(revoked)
        if self._on_revoke:
            await self._on_revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        if self._ring is not None:  # first: the service's hook may ask which segment a partition reads
            await self._ring.assigned(assigned)
        if self._on_assign:
            await self._on_assign(set(assigned))


class ForeignRecord(ValueError):
    """A record stamped by another fleet (``shared.identity``): poison here, whatever it holds."""


def _same_fleet(headers: tuple[tuple[str, bytes], ...], fleet: bytes) -> None:
    for name, value in headers:
        if name == identity.HEADER and value != fleet:
            raise ForeignRecord(f"a record of fleet {value.decode(errors='replace')}, this fleet is {fleet.decode()}")


class Inbox(Generic[T]):
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        decode: Callable[[bytes], T] | Envelopes[T],
        dlq: Outbox,
        settings: Settings,
        lag: _Lag | None = None,
        ring: Ring | None = None,
    ) -> None:
        self._consumer = consumer
        self._ring = ring
        self._decode: Callable[[bytes], T] | None = None if isinstance(decode, Envelopes) else decode
        self._unpack = decode.unpack if isinstance(decode, Envelopes) else None
        self._dlq = dlq
        self._settings = settings
        self._suffix = settings.topic_suffix
        self._lag = lag
        self._pending: dict[TopicPartition, int] = {}  # offsets done here, not yet committed
        self._commit_every_s = settings.kafka_commit_interval_ms / 1000
        self._committed_at = time.monotonic()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    def _base(self, topic: str) -> str:
        """The logical topic of a physical name: without the run's suffix and the segment slot."""
        name = topic[: -len(self._suffix)] if self._suffix and topic.endswith(self._suffix) else topic
        return segments.parse_slot(name)[0] if self._ring is not None else name

    def epoch_of(self, topic: str, partition: int) -> int:
        """The segment this consumer reads on a partition: outputs of its records go to the same segment."""
        return self._ring.epoch_of(topic, partition) if self._ring is not None else self._settings.log_epoch

    async def batches(
        self, stop: asyncio.Event, timeout_ms: int = 100, yield_empty: bool = False
    ) -> AsyncIterator[Batch[T]]:
        """Yield batches until ``stop`` is set; poison records are dead-lettered, never yielded.

        With ``yield_empty`` an idle poll yields an empty batch, for services with timed work.
        """
        ring = self._ring
        while not stop.is_set():
            if ring is not None:
                await ring.advance(self.flush_commits)
            started = time.perf_counter()
            wait_ms = timeout_ms if ring is None else ring.poll_ms(timeout_ms)
            polled = await self._consumer.getmany(timeout_ms=wait_ms, max_records=self._settings.kafka_batch_max)
            if not polled:
                if self._pending:  # idle: what is done is committed now, so the lag reads 0
                    await self.flush_commits()
                if yield_empty:
                    yield Batch()
                continue
            FETCH_SECONDS.observe(time.perf_counter() - started)
            if self._lag is not None:
                self._lag.update(self._consumer, ((tp, raws[-1].offset + 1) for tp, raws in polled.items()))
            batch: Batch[T] = Batch()
            records = batch.records
            poisoned = False
            decode, unpack = self._decode, self._unpack
            fleet = self._settings.fleet_id.encode()
            for tp, raws in polled.items():
                topic = self._base(tp.topic)
                partition = tp.partition
                if ring is None:
                    epoch = self._settings.log_epoch
                else:
                    current = ring.current(tp)
                    if current is None:
                        continue  # fetched before its slot was paused: read again when it is current
                    epoch = current
                for raw in raws:
                    headers = tuple(raw.headers) if raw.headers else ()
                    try:
                        if headers and fleet:
                            _same_fleet(headers, fleet)
                        if ring is not None and headers and (sealed := segments.seal_epoch(headers)) is not None:
                            ring.sealed(tp, raw.offset, sealed)  # never yielded: acted on once committed
                            batch.sealed.add(tp)
                            continue
                        if decode is not None:
                            records.append(Record(topic, partition, raw.offset, decode(raw.value), headers, 0, epoch))
                            continue
                        assert unpack is not None
                        values = unpack(raw.value)
                    except Exception as exc:  # any decode failure is poison, whatever the library raised
                        poisoned = True
                        await self._poison(topic, raw, exc, epoch)
                        continue
                    for index, (value, traceparent) in enumerate(values):  # an envelope's messages, at its offset
                        own = headers if traceparent is None else ((tracing.HEADER, traceparent),)
                        records.append(Record(topic, partition, raw.offset, value, own, index, epoch))
                batch.ends[tp] = raws[-1].offset + 1
                batch.epochs[tp] = epoch
                first = raws[0].timestamp
                if first is not None and first > 0 and (batch.oldest_ms is None or first < batch.oldest_ms):
                    batch.oldest_ms = first
                if ring is not None:
                    ring.yielded(tp, raws[-1].offset + 1)
            if poisoned:
                await self._dlq.flush()
            yield batch

    async def _poison(self, topic: str, raw: Any, exc: Exception, epoch: int) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("poison record %s[%d]@%d sent to %s.dlq: %s", topic, raw.partition, raw.offset, topic, reason)
        DLQ_TOTAL.labels(topic).inc()
        own = [(k, v) for k, v in raw.headers or () if k not in ("reason", "source")]
        source = deadletter_source(topic, raw.partition, raw.offset, epoch)
        headers = [*own, ("reason", reason.encode()), ("source", source.encode())]
        await self._dlq.send(
            f"{topic}.dlq", raw.value or b"", key=(raw.key or b"").decode(errors="replace"), headers=headers
        )

    def owns(self, record: Record[Any]) -> bool:
        """Whether the record's partition is still assigned here (a rebalance may have moved it)."""
        return TopicPartition(self._settings.topic(record.topic), record.partition) in self._consumer.assignment()

    def owned(self) -> set[tuple[str, int]]:
        """(topic, partition) of every partition assigned here now, topics as records name them: one set
        per batch for a hot loop, instead of ``owns`` per record (valid until the next await)."""
        return {(self._base(tp.topic), tp.partition) for tp in self._consumer.assignment()}

    async def commit(self, batch: Batch[T], held: Mapping[tuple[str, int], int] | None = None) -> None:
        """Mark the batch done; its offsets are committed with the next commit, at most
        ``kafka_commit_interval_ms`` later (also when the consumer goes idle, loses the partition or stops).

        A commit is a broker round trip per batch, on Tansu ~110 us of its CPU and as much of ours, which at
        moderate rates (batches of a few orders) is paid by every consumer for every few orders. Every
        consumer is idempotent, so a crash redelivers at most that interval's batches, and changes nothing.

        ``held``: per (topic, partition), an offset the commit must not pass, because the record there is not
        done yet (settlement's halted records): a restart reads it again.
        """
        ends = batch.ends
        if held:
            ends = {tp: min(end, held.get((self._base(tp.topic), tp.partition), end)) for tp, end in batch.ends.items()}
        self._pending.update(ends)
        if self._ring is not None:
            for tp, end in ends.items():
                self._ring.done(tp, end)
        if time.monotonic() - self._committed_at >= self._commit_every_s:
            await self.flush_commits()

    async def rewind(self, topic: str, partition: int, offset: int, epoch: int | None = None) -> bool:
        """Read a partition again from ``offset`` of its current segment (the one a held record is in:
        ``held`` keeps it from completing) if this consumer has read past it; False when the partition is
        not assigned here (its owner reads it from its committed offset, which ``commit``'s ``held`` kept at
        or before ``offset``)."""
        if self._ring is not None:
            if epoch is not None and epoch != self._ring.epoch_of(topic, partition):
                log.warning("%s[%d]@%d is in segment %d, which this consumer left", topic, partition, offset, epoch)
                return True
            tp = self._ring.current_partition(topic, partition)
        else:
            tp = TopicPartition(self._settings.topic(topic), partition)
        if tp not in self._consumer.assignment():
            return False
        if await self._consumer.position(tp) > offset:
            self._consumer.seek(tp, offset)
        return True

    async def flush_commits(self) -> None:
        """Commit what is done on the partitions still assigned here.

        A partition moved away by a rebalance is left to its new owner, which gets the records again and
        deduplicates them, so a commit refused for a rebalance loses nothing.
        """
        pending, self._pending = self._pending, {}
        self._committed_at = time.monotonic()
        mine = self._consumer.assignment()
        ends = {tp: offset for tp, offset in pending.items() if tp in mine}
        if not ends:
            return
        try:
            with tracing.Timed(COMMIT_SECONDS, "kafka commit"):
                await self._consumer.commit(ends)
        except CommitFailedError as exc:
            log.warning("offsets not committed, the group is rebalancing: %s", exc)


def partition_of(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner gives a key (murmur2), e.g. a symbol's."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def deadletter_source(topic: str, partition: int, offset: int, epoch: int) -> str:
    """A dead letter's ``source`` header: where its record was, with the segment (``topic/p/offset@e``) when
    the partition is one of a ring's."""
    return f"{topic}/{partition}/{offset}" + (f"@{epoch}" if epoch else "")


def physical_topics(settings: Settings, topic: str) -> list[str]:
    """Every physical topic a consumer of ``topic`` subscribes to: its slots when segments are on."""
    if not settings.kafka_segment_s or topic not in segments.SEGMENTED:
        return [settings.topic(topic)]
    return [settings.topic(name) for name in segments.slot_names(topic)]


def consumer_client(settings: Settings, group: str, fetch: tuple[int, int] | None = None) -> AIOKafkaConsumer:
    """The group consumer every service uses, not subscribed nor started (``consumer`` does both)."""
    max_wait_ms, min_bytes = fetch or (settings.kafka_fetch_max_wait_ms, settings.kafka_fetch_min_bytes)
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{group}{settings.topic_suffix}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=max_wait_ms,
        fetch_min_bytes=min_bytes,
        max_partition_fetch_bytes=4 << 20,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        # partition p of every subscribed topic to the same member: one replica holds all slots of a partition
        partition_assignment_strategy=(RangePartitionAssignor,),
        **security(settings),
    )


@asynccontextmanager
async def consumer(
    settings: Settings,
    topics: Iterable[str],
    group: str,
    decode: Callable[[bytes], T] | Envelopes[T],
    dlq: Outbox,
    on_assign: Assigned | None = None,
    on_revoke: Assigned | None = None,
    fetch: tuple[int, int] | None = None,
    on_segment_done: SegmentDone | None = None,
    ring: Ring | None = None,
) -> AsyncIterator[Inbox[T]]:
    """``fetch``: (max wait ms, min bytes) instead of the settings' ``kafka_fetch_*``, for a hop that must be
    short (the order processor's, see ``kafka_request_fetch_max_wait_ms``). ``on_segment_done([(topic, p, e), ...])``:
    called with the input partitions whose segment ``e`` is complete, before the consumer moves on (a writer
    seals its outputs' segments there, see ``shared.segments``); the partitions complete in one turn come in
    one call, so their seals share a round trip. ``ring``: one made by ``segment_ring`` for a
    service that asks it which segment a partition reads before the Inbox exists (in its ``on_assign``).

    The range assignor gives partition ``p`` of every subscribed topic to the same member, so one replica
    holds all slots of a partition (and a service reading two topics keyed alike holds a symbol in both)."""
    max_wait_ms, min_bytes = fetch or (settings.kafka_fetch_max_wait_ms, settings.kafka_fetch_min_bytes)
    topics = list(topics)
    async with contextlib.AsyncExitStack() as stack:
        if ring is None and settings.kafka_segment_s:
            ring = await stack.enter_async_context(segment_ring(settings, group, on_segment_done))
        inbox = await stack.enter_async_context(
            _consumer(settings, topics, group, decode, dlq, on_assign, on_revoke, max_wait_ms, min_bytes, ring)
        )
        yield inbox


@asynccontextmanager
async def segment_ring(settings: Settings, group: str, on_done: SegmentDone | None = None) -> AsyncIterator[Ring]:
    """The segment ring of a consumer of ``group`` (``shared.segment_ring``), on a Redis client of its own."""
    from . import redis as sredis

    async with sredis.client(settings) as cache:
        yield Ring(settings, group, cache, on_done)


@asynccontextmanager
async def _consumer(
    settings: Settings,
    topics: Iterable[str],
    group: str,
    decode: Callable[[bytes], T] | Envelopes[T],
    dlq: Outbox,
    on_assign: Assigned | None,
    on_revoke: Assigned | None,
    max_wait_ms: int,
    min_bytes: int,
    ring: Ring | None,
) -> AsyncIterator[Inbox[T]]:
    c = consumer_client(settings, group, (max_wait_ms, min_bytes))
    suffix = settings.topic_suffix

    def base(t: str) -> str:
        name = t[: -len(suffix)] if suffix and t.endswith(suffix) else t
        return segments.parse_slot(name)[0] if ring is not None else name

    lag = _Lag(group, base)
    if ring is not None:
        ring.attach(c)
    listener = _Listener(on_assign, on_revoke, lag, ring)
    c.subscribe([name for t in topics for name in physical_topics(settings, t)], listener=listener)
    await _start_with_retry(c, f"consumer {group}")
    if ring is not None and segments.FENCED in topics:
        ring.schedule.start()
    # ready means consuming: wait for the group to hand us partitions (a replica beyond the partition
    # count legitimately gets none, hence the bound); a stop requested meanwhile ends the wait, and the
    # inbox then yields nothing
    deadline = asyncio.get_running_loop().time() + ASSIGNMENT_WAIT_S
    while not c.assignment() and not shutdown.requested() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    inbox = listener.inbox = Inbox(c, decode, dlq, settings, lag, ring)
    try:
        yield inbox
    finally:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):  # a broker that is gone: redelivered
            await asyncio.wait_for(inbox.flush_commits(), STOP_COMMIT_S)
        if ring is not None:
            await ring.schedule.stop()
        await _stop(c, f"consumer {group}")


ALL_TOPICS = tuple(Topic)


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    """The admin client (``spot admin init``'s topics), not started."""
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security(settings))


async def create_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create the four topics and their dead-letter topics; existing ones are left alone."""
    admin = admin_client(settings)
    await _start_with_retry(admin, "admin")
    n = partitions or settings.kafka_partitions
    try:
        existing = set(await admin.list_topics())
        names = [name for t in ALL_TOPICS for name in physical_topics(settings, t.value)]
        names += [settings.topic(t.dlq) for t in ALL_TOPICS]
        replicas = settings.kafka_replication_factor
        wanted = [
            NewTopic(name, n if not name.endswith(".dlq") else 1, replicas) for name in names if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in wanted]
    finally:
        await admin.close()
