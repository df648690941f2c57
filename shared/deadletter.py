"""Records that decode but cannot be applied: told from an outage, isolated, and dead-lettered.

A record may decode and still be impossible to apply: a number past what Postgres, Redis or Parquet
stores, a broken invariant, a constraint. Retrying it forever stops its whole partition (every user's
orders on it), so a consumer isolates it and sends it to ``<topic>.dlq``; the partition keeps flowing.
An outage (``resilience.outage``: connection errors, timeouts, a broker, database or cache away) is not
the record's fault and stays on the outage path: wait and serve again from committed state.

A dead letter is the message alone, as a single-message record (a message taken out of an envelope goes
without its neighbours, which were applied), keyed by its symbol, with the record's own headers followed
by ``reason``, ``source`` (``topic/partition/offset``, the topic without a run's suffix),
``source-index`` (its place in an envelope) and ``consumer`` (the service that refused it: two services
reading one topic may each dead-letter the same message). ``spot admin dlq`` lists, shows and replays them.

``isolate`` is the generic way to find the records a batch step cannot apply, for a step that is all or
nothing (one transaction): the whole batch first, then halves, down to single records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from . import kafka, resilience, segment_fence
from . import redis as sredis
from .config import Settings
from .kafka import DLQ_TOTAL, Outbox, Record
from .messages import Topic

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

REASON, SOURCE, INDEX, CONSUMER = "reason", "source", "source-index", "consumer"
OWN_HEADERS = frozenset((REASON, SOURCE, INDEX, CONSUMER))  # what a dead letter adds to the record's own headers
REASON_MAX = 500  # characters of the exception kept: a header, not a log


def unappliable(exc: BaseException) -> bool:
    """Whether an exception is the record's fault (dead-letter it) rather than a dependency's (wait)."""
    return isinstance(exc, Exception) and resilience.outage(exc) is None


def reason_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:REASON_MAX]


def headers_of(
    own: Sequence[tuple[str, bytes]],
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    index: int,
    consumer: str = "",
    epoch: int = 0,
) -> list[tuple[str, bytes]]:
    """The dead letter's headers: the record's own (less any of an earlier dead-lettering), then ours. The
    source names the log segment too (``topic/partition/offset@epoch``) past epoch 0: offsets repeat across
    segments (``shared.segments``)."""
    kept = [(k, v) for k, v in own if k not in OWN_HEADERS]
    return [
        *kept,
        (REASON, reason.encode()),
        (SOURCE, (f"{topic}/{partition}/{offset}" + (f"@{epoch}" if epoch else "")).encode()),
        (INDEX, str(index).encode()),
        (CONSUMER, consumer.encode()),
    ]


class DeadLetters:
    """Sends a consumer's unappliable messages to ``<topic>.dlq``, each acknowledged before ``send`` returns,
    so a caller that commits its progress afterwards never commits past a dead letter the broker lacks."""

    def __init__(self, outbox: Outbox, consumer: str) -> None:
        self._outbox = outbox
        self._consumer = consumer

    async def send(self, record: Record[Any], value: bytes, key: str, exc: BaseException | str) -> None:
        """Dead-letter one message of ``record`` (``value``: the message alone, encoded)."""
        reason = exc if isinstance(exc, str) else reason_of(exc)
        log.warning(
            "unappliable message %s[%d]@%d#%d sent to %s.dlq: %s",
            record.topic,
            record.partition,
            record.offset,
            record.index,
            record.topic,
            reason,
        )
        headers = headers_of(
            record.headers, reason, record.topic, record.partition, record.offset, record.index, self._consumer,
            record.epoch,
        )  # fmt: skip
        await self._outbox.send_now(f"{record.topic}.dlq", value, key=key, headers=headers)
        DLQ_TOTAL.labels(record.topic).inc()


async def isolate(
    items: Sequence[T], apply: Callable[[Sequence[T]], Awaitable[R]]
) -> tuple[list[tuple[Sequence[T], R]], list[tuple[T, Exception]]]:
    """Apply ``items`` in order in as few calls as failures allow: all at once, else each half, down to
    single items. ``apply`` must be all or nothing (a transaction), so a failed call changed nothing.

    Returns each successful call's items with its result, in order, and each item that failed alone with
    an unappliable error. An outage is raised as it comes (nothing is isolated from it).
    """
    applied: list[tuple[Sequence[T], R]] = []
    failed: list[tuple[T, Exception]] = []

    async def run(chunk: Sequence[T]) -> None:
        try:
            applied.append((chunk, await apply(chunk)))
            return
        except Exception as exc:
            if not unappliable(exc):
                raise
            if len(chunk) == 1:
                failed.append((chunk[0], exc))
                return
        middle = len(chunk) // 2
        await run(chunk[:middle])
        await run(chunk[middle:])

    if items:
        await run(items)
    return applied, failed


# --- reading and replaying dead letters (``spot admin dlq``) ----------------------------------------------

READ_IDLE_S = 1.0  # a dead-letter topic read to its end: no record for this long after the last one
READ_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic, its reason and where it came from."""

    topic: str  # the dead-letter topic, as ``Topic.dlq`` names it
    offset: int
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int  # ms, when it was dead-lettered

    def header(self, name: str) -> str:
        return next((v.decode(errors="replace") for k, v in self.headers if k == name), "")

    @property
    def source(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) it was taken from, or None for a record without a readable source."""
        topic, _, rest = self.header(SOURCE).partition("/")
        partition, _, offset = rest.partition("/")
        offset = offset.partition("@")[0]  # the segment, if named, is not part of the offset
        return (topic, int(partition), int(offset)) if partition.isdigit() and offset.isdigit() else None

    @property
    def own_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had at its source (a replay sends them again)."""
        return [(k, v) for k, v in self.headers if k not in OWN_HEADERS]


DLQ_TOPICS = tuple(t.dlq for t in Topic)


def dlq_topic(name: str) -> Topic:
    """The topic a dead-letter topic belongs to; ``ValueError`` names the ones there are."""
    for topic in Topic:
        if name == topic.dlq:
            return topic
    raise ValueError(f"{name!r} is not a dead-letter topic: one of {', '.join(DLQ_TOPICS)}")


async def read(settings: Settings, name: str, offset: int | None = None) -> list[DeadLetter]:
    """Every record of the dead-letter topic ``name`` (``validated-orders.dlq``), or the one at ``offset``."""
    dlq_topic(name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        **kafka.security(settings),
    )
    await consumer.start()
    try:
        full = settings.topic(name)
        partitions = consumer.partitions_for_topic(full) or set()
        if not partitions:
            await consumer.client.force_metadata_update()  # a fresh client may know no topic yet
            partitions = consumer.partitions_for_topic(full) or set()
        tps = [TopicPartition(full, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        for tp in tps:
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        found: list[DeadLetter] = []
        loop = asyncio.get_running_loop()
        deadline, idle_since = loop.time() + READ_MAX_S, loop.time()
        while loop.time() < deadline and loop.time() - idle_since < READ_IDLE_S:
            polled = await consumer.getmany(timeout_ms=200)
            for raws in polled.values():
                for raw in raws:
                    if offset is not None and raw.offset != offset:
                        continue
                    found.append(
                        DeadLetter(
                            name,
                            raw.offset,
                            (raw.key or b"").decode(errors="replace"),
                            raw.value or b"",
                            tuple(raw.headers or ()),
                            raw.timestamp,
                        )
                    )
            if polled:
                idle_since = loop.time()
            if offset is not None and found:
                break
            at_end = True
            for tp in tps:
                highwater = consumer.highwater(tp)
                at_end = at_end and highwater is not None and await consumer.position(tp) >= highwater
            if at_end:
                break
        return found
    finally:
        await consumer.stop()


async def replay(settings: Settings, letter: DeadLetter) -> tuple[str, int, int]:
    """Produce a dead letter back to its source topic with its own headers; returns (topic, partition,
    offset) where it landed. Consumers are idempotent, so replaying what was applied since changes nothing.

    With the segment ring on, it goes where its readers will read it (``segment_fence.send_into_ring``)."""
    source = letter.source
    topic = source[0] if source is not None else dlq_topic(letter.topic).value
    if topic not in {t.value for t in Topic}:
        raise ValueError(f"dead letter {letter.topic}@{letter.offset} names an unknown source topic {topic!r}")
    async with kafka.producer(settings) as out, sredis.client(settings) as cache:
        headers = letter.own_headers
        return await segment_fence.send_into_ring(settings, out, cache, topic, letter.value, letter.key, headers)
