"""A consumer's side of the segment ring (``shared.segments``): which slot of each partition it reads.

Per logical topic and partition ``p``, the group reads one segment ``e`` at a time: only slot(e)[p] is
fetched, the other slots' partition ``p`` are paused, so the subscription never changes (a changed one
costs the group a rebalance of several seconds on Tansu). On assignment ``e`` is the group's last recorded
switch (``segment_store``), or the log's first segment for a group that never switched.

A segment is complete on ``p`` when the service has committed everything up to its seal (sealed topics) or,
for ``order-requests``, once the next segment has started, every live producer has sealed it
(``segment_fence``), and the service has committed up to the partition's end offset listed after that.
Then, in this order: what is done is committed, the service's
``on_done(topic, p, e)`` hook runs (the processor and the matcher seal their outputs there), offset 0 of
slot(e+1)[p] is committed, the switch is recorded, and the consumer seeks slot(e+1)[p] to 0 (a re-created
topic never says OffsetOutOfRange: a consumer past its end would wait forever), pauses slot(e) and resumes
slot(e+1). A crash at any step re-reads the end of segment ``e`` and completes it again (on assignment a
sealed slot is read again from the last record committed, which may be the seal); a second seal downstream
is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter

from . import segment_store
from .config import Settings
from .redis import Client
from .segments import FENCED, SLOTS, SWITCH_POLL_MS, current_epoch, parse_slot, slot_name, slot_of, switch_near

log = logging.getLogger(__name__)

SWITCHES = Counter("spot_segment_switches_total", "Partitions moved to their next log segment", ["group", "topic"])

SegmentEnd = tuple[str, int, int]  # (logical topic, partition, epoch)
SegmentDone = Callable[[Sequence[SegmentEnd]], Awaitable[None]]  # the segments complete in one turn


@dataclass(slots=True)
class _Partition:
    epoch: int
    seal_at: int | None = None  # offset of the seal of ``epoch`` seen on the current slot
    seal_seen_ms: int = 0  # when that seal was read (monotonic ms)
    yielded: int = -1  # end of the last batch handed to the service
    done: int = -1  # end of the last batch the service committed
    end: int | None = None  # order-requests: the end offset listed once every producer sealed the segment


class Ring:
    def __init__(self, settings: Settings, group: str, cache: Client, on_done: SegmentDone | None = None) -> None:
        self._consumer: AIOKafkaConsumer
        self._settings = settings
        self._group = group
        self._cache = cache
        self._on_done = on_done
        self._suffix = settings.topic_suffix
        self._parts: dict[tuple[str, int], _Partition] = {}
        self._lock = asyncio.Lock()
        self.schedule = segment_store.ScheduleCache(cache, settings)

    def attach(self, consumer: AIOKafkaConsumer) -> None:
        """The consumer whose slots it pauses and resumes (made after the ring: its listener needs it)."""
        self._consumer = consumer

    # --- names ---------------------------------------------------------------------------------------------

    def logical(self, tp: TopicPartition) -> tuple[str, int]:
        """(logical topic, slot) of a physical partition."""
        name = tp.topic
        if self._suffix and name.endswith(self._suffix):
            name = name[: -len(self._suffix)]
        return parse_slot(name)

    def physical(self, topic: str, partition: int, epoch: int) -> TopicPartition:
        return TopicPartition(self._settings.topic(slot_name(topic, slot_of(epoch))), partition)

    def epoch_of(self, topic: str, partition: int) -> int:
        """The segment this consumer reads on a partition (the log's first when not assigned here)."""
        part = self._parts.get((topic, partition))
        return part.epoch if part else self._settings.log_epoch

    def current(self, tp: TopicPartition) -> int | None:
        """The epoch of the segment ``tp`` holds, if it is the slot read now; None for a paused slot."""
        topic, slot = self.logical(tp)
        part = self._parts.get((topic, tp.partition))
        if part is None or slot_of(part.epoch) != slot:
            return None
        return part.epoch

    def current_partition(self, topic: str, partition: int) -> TopicPartition:
        return self.physical(topic, partition, self.epoch_of(topic, partition))

    # --- assignment ------------------------------------------------------------------------------------------

    async def assigned(self, tps: Iterable[TopicPartition]) -> None:
        by_topic: dict[str, set[int]] = {}
        for tp in tps:
            topic, _ = self.logical(tp)
            by_topic.setdefault(topic, set()).add(tp.partition)
        base = self._settings.log_epoch
        for topic, partitions in by_topic.items():
            found = await segment_store.recorded(self._cache, self._settings, self._group, topic, partitions)
            for p in partitions:
                epoch = current_epoch(found.get(p), base)
                part = self._parts[(topic, p)] = _Partition(epoch)
                current = self.physical(topic, p, epoch)
                others = [self.physical(topic, p, e) for e in range(epoch + 1, epoch + SLOTS)]
                self._consumer.pause(*others)
                self._consumer.resume(current)
                if topic != FENCED:
                    await self._reread_last(current, part)
        if FENCED in by_topic:
            await self.schedule.refresh()

    async def _reread_last(self, tp: TopicPartition, part: _Partition) -> None:
        """Read the last committed record of a sealed slot again: a group that committed its seal and
        stopped before recording the switch would otherwise wait past the seal forever (nothing else is ever
        written to that slot). Consumers are idempotent, so one record delivered again changes nothing."""
        committed = await self._consumer.committed(tp)
        if committed:
            part.done = part.yielded = committed
            self._consumer.seek(tp, committed - 1)

    def revoked(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            topic, _ = self.logical(tp)
            self._parts.pop((topic, tp.partition), None)

    # --- what the Inbox tells it ----------------------------------------------------------------------------

    def sealed(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """A seal of ``epoch`` read at ``offset`` (a seal of another segment is a harmless duplicate)."""
        topic, _ = self.logical(tp)
        part = self._parts.get((topic, tp.partition))
        if part is not None and part.epoch == epoch and part.seal_at is None:
            part.seal_at = offset
            part.seal_seen_ms = int(time.monotonic() * 1000)

    def yielded(self, tp: TopicPartition, end: int) -> None:
        topic, _ = self.logical(tp)
        part = self._parts.get((topic, tp.partition))
        if part is not None:
            part.yielded = max(part.yielded, end)

    def done(self, tp: TopicPartition, end: int) -> None:
        topic, _ = self.logical(tp)
        part = self._parts.get((topic, tp.partition))
        if part is not None and self.current(tp) is not None:
            part.done = max(part.done, end)

    # --- moving on ----------------------------------------------------------------------------------------

    def poll_ms(self, idle_ms: int) -> int:
        """How long the next poll may wait for records: ``segments.SWITCH_POLL_MS`` while a partition's segment
        is about to complete (see there), else ``idle_ms``."""
        wall, mono = int(time.time() * 1000), int(time.monotonic() * 1000)
        for (topic, _), part in self._parts.items():
            if topic == FENCED:
                ending, now = self.schedule.schedule.start_of(part.epoch + 1), wall  # the next one's start
            else:
                ending, now = (None if part.seal_at is None else part.seal_seen_ms), mono  # its seal read
            if switch_near(ending, now):
                return min(idle_ms, SWITCH_POLL_MS)
        return idle_ms

    async def advance(self, flush_commits: Callable[[], Awaitable[None]]) -> None:
        """Switch every partition whose segment is complete (called between batches), all in one turn."""
        sealed_by_all: dict[int, bool] = {}  # one look at the producers' seals per segment and turn
        ready = [
            key for key, part in list(self._parts.items()) if await self._complete(key[0], key[1], part, sealed_by_all)
        ]
        if not ready:
            return
        async with self._lock:
            await flush_commits()
            await self._switch(ready)

    async def _complete(self, topic: str, p: int, part: _Partition, sealed_by_all: dict[int, bool]) -> bool:
        if part.yielded > part.done:
            return False  # a batch of it is still with the service
        if topic != FENCED:
            return part.seal_at is not None and part.done > part.seal_at
        tp = self.physical(topic, p, part.epoch)
        if part.end is None:
            start = self.schedule.schedule.start_of(part.epoch + 1)
            now = int(time.time() * 1000)
            if start is None or now < start or tp not in self._consumer.assignment():
                return False
            if part.epoch not in sealed_by_all:
                sealed_by_all[part.epoch] = await segment_store.sealed_by_all(
                    self._cache, self._settings, part.epoch, now
                )
            if not sealed_by_all[part.epoch]:
                return False
            part.end = (await self._consumer.end_offsets([tp]))[tp]  # listed after every seal: all of it
        return await self._consumer.position(tp) >= part.end

    async def _switch(self, ready: Sequence[tuple[str, int]]) -> None:
        """Move the ``ready`` partitions to their next segment together: one hook call, one offset commit, one
        record of the switches (a partition at a time cost the matcher ~9 ms of round trips each)."""
        mine = self._consumer.assignment()
        ends = [
            (topic, p, part.epoch)
            for topic, p in ready
            if (part := self._parts.get((topic, p))) is not None and self.physical(topic, p, part.epoch) in mine
        ]
        if not ends:
            return
        if self._on_done is not None:
            await self._on_done(ends)
        news = {self.physical(topic, p, epoch + 1): 0 for topic, p, epoch in ends}
        try:
            await self._consumer.commit(news)  # first: a recorded switch always finds its slot at 0
        except (CommitFailedError, KafkaError) as exc:
            log.warning("segments %s not left yet (%s); tried again", ends, exc)
            return
        moves = [(topic, p, epoch + 1) for topic, p, epoch in ends]
        await segment_store.record_switches(self._cache, self._settings, self._group, moves)
        for topic, p, epoch in ends:
            old, new = self.physical(topic, p, epoch), self.physical(topic, p, epoch + 1)
            self._consumer.seek(new, 0)
            self._consumer.pause(old)
            self._consumer.resume(new)
            self._parts[(topic, p)] = _Partition(epoch + 1)
            SWITCHES.labels(self._group, topic).inc()
            log.debug("%s: %s[%d] now reads segment %d", self._group, topic, p, epoch + 1)
