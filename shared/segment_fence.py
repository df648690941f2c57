"""A producer of ``order-requests`` in the segment ring (``shared.segments``): the segment its records go to,
and the seal that lets the reader leave the one before.

``order-requests`` has many writers (every gateway or ingestion replica, a dead-letter replay), so no single
writer can end a segment with a record. Instead each producer registers in the fleet's Redis
(``segment_store.register_producer``) with a lease and the last segment it has *sealed*: the highest ``e``
such that it will never again send to ``e`` or before and everything it sent there is acknowledged. The
reader completes ``e`` on a partition once ``e + 1`` has started, every producer with a live lease has sealed
``e``, and it has read up to the partition's end as listed after that (``segment_ring``).

A producer moves to the next segment the moment its start passes (a timer, not a poll) and seals the old one
as soon as its last send there is acknowledged, so a switch costs the reader milliseconds, not a grace period.
A producer whose lease lapsed (Redis unreachable, a stalled process) may be forgotten by the reader: whatever
it had in flight is answered -1007 (Binance's "status unknown"), never ACKed, and it registers again, under a
new name, at the current segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from . import errors, segment_store, segments
from .config import Settings
from .errors import ApiError
from .segments import LEASE_MS, REFRESH_MS, Schedule

if TYPE_CHECKING:
    from .kafka import Outbox

log = logging.getLogger(__name__)

UNKNOWN_SEGMENT = "Internal error; unable to process your request. Please try again."
LATE_ACK = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
MARGIN_MS = LEASE_MS // 4  # a send is refused once the lease has less than this left: its ack could outlive it


def _now_ms() -> int:
    return int(time.time() * 1000)


class Fence:
    """One producer's place in the ring: its segment, its lease and its seal, kept by a background task."""

    def __init__(self, cache: Any, settings: Settings) -> None:
        self._cache = cache
        self._settings = settings
        self._schedule = Schedule()
        self._name = ""
        self.epoch = settings.log_epoch  # the segment new sends go to
        self._sealed = -1  # what the registry says this producer has sealed
        self._expires_ms = 0  # when the lease the registry holds runs out
        self._generation = 0  # a new one after each lapse: sends of an older one are never ACKed
        self._in_flight: Counter[int] = Counter()  # sends not yet acknowledged, by segment
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._register()
        self._task = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        """Let the keeper finish what it is doing (a command cancelled half-way would leave its connection
        out of the pool, and the last command below waiting for one), then leave the registry."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
        with contextlib.suppress(RedisError, OSError):  # readers need not wait out the lease
            await segment_store.forget_producer(self._cache, self._settings, self._name)

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[int]:
        """Around one send and its acks: yields the segment to send to. 503 -1001 when the lease is not known
        to hold long enough; 503 -1007 when the acks came after a lapse (the reader may never read them)."""
        if _now_ms() > self._expires_ms - MARGIN_MS:
            raise ApiError(errors.DISCONNECTED, UNKNOWN_SEGMENT, 503)
        epoch, generation = self.epoch, self._generation
        self._in_flight[epoch] += 1
        try:
            yield epoch
        finally:
            self._in_flight[epoch] -= 1
            if not self._in_flight[epoch]:
                del self._in_flight[epoch]
                self._wake.set()  # it may seal now
        if generation != self._generation or _now_ms() > self._expires_ms:
            raise ApiError(errors.TIMEOUT, LATE_ACK, 503)

    def sealable(self) -> int:
        """The highest segment this producer has nothing left in: everything before the oldest with a send
        in flight, or before the one it sends to now."""
        return min([*self._in_flight, self.epoch]) - 1

    async def _register(self) -> None:
        """Register under a new name, first as having sealed nothing (readers wait for it), then at the segment
        that has started: read after the registration, so a reader that missed it has not left that one."""
        self._generation += 1
        old, self._name = self._name, secrets.token_hex(6)
        now = _now_ms()
        await segment_store.renew_producer(self._cache, self._settings, self._name, -1, now + LEASE_MS)
        self._expires_ms = now + LEASE_MS
        if old:
            await segment_store.forget_producer(self._cache, self._settings, old)
        self._schedule = await segment_store.read_schedule(self._cache, self._settings)
        self.epoch = max(self._schedule.epoch_at(_now_ms()) or 0, self._settings.log_epoch, self.epoch)
        await self._renew()

    async def _renew(self) -> None:
        """Publish the seal and extend the lease; a reply after the old lease ran out is a lapse."""
        sealed, sent = self.sealable(), _now_ms()
        await segment_store.renew_producer(self._cache, self._settings, self._name, sealed, sent + LEASE_MS)
        if _now_ms() > self._expires_ms:
            log.warning("segment lease of producer %s lapsed; registering again", self._name)
            await self._register()
            return
        self._sealed, self._expires_ms = sealed, sent + LEASE_MS

    async def _keep(self) -> None:
        renewed = 0
        while not self._stopping:
            self._wake.clear()
            try:
                now = _now_ms()
                if now - renewed >= REFRESH_MS:
                    self._schedule = await segment_store.read_schedule(self._cache, self._settings)
                current = self._schedule.epoch_at(now)
                if current is not None and current > self.epoch:
                    self.epoch = current  # the next sends go there; the old one seals once they are acked
                if self.sealable() != self._sealed or now - renewed >= REFRESH_MS:
                    await self._renew()
                    renewed = now
            except Exception as exc:  # Redis away or refusing (any client error): the lease runs out, sends are
                # refused until it is back; the keeper itself never stops
                log.debug("segment lease not renewed: %s: %s", type(exc).__name__, exc)
            if not self._stopping:
                await self._sleep()

    async def _sleep(self) -> None:
        """Until the next renewal, the next segment's start, or a send finishing, whichever comes first."""
        wait_ms = REFRESH_MS
        start = self._schedule.start_of(self.epoch + 1)
        if start is not None:
            wait_ms = max(0, min(wait_ms, start - _now_ms()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)


@asynccontextmanager
async def fence(settings: Settings, cache: Any) -> AsyncIterator[Fence | None]:
    """The fence of a producer of ``order-requests``, kept in the background; None with segments off."""
    if not settings.kafka_segment_s:
        yield None
        return
    producer = Fence(cache, settings)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


class LateReplay(LookupError):
    """A record sent into the ring from outside and acknowledged after its segment's readers may have left it."""


async def send_into_ring(
    settings: Settings,
    out: Outbox,
    cache: Any,
    topic: str,
    value: bytes,
    key: str,
    headers: list[tuple[str, bytes]] | None = None,
) -> tuple[str, int, int]:
    """One record from outside the topic's writers (an operator's replay, a test), where its readers will read
    it; returns (topic or slot name, partition, offset).

    ``order-requests`` is sent as its producers send (registered, so its reader waits for the seal). A topic
    whose writer seals it gets the segment that has started: no writer seals a segment before the next one
    starts (the chain of seals begins with ``order-requests``, completed only then), so an ack before that
    start is read by every group, and a later one raises ``LateReplay`` (send it again: consumers skip a copy
    they applied)."""
    if not settings.kafka_segment_s or topic not in segments.SEGMENTED:
        partition, offset = await out.send_now(topic, value, key=key, headers=headers)
        return topic, partition, offset
    if topic == segments.FENCED:
        async with fence(settings, cache) as producer:
            assert producer is not None  # segments are on
            async with producer.sending() as epoch:
                partition, offset = await out.send_now(topic, value, key=key, headers=headers, epoch=epoch)
        return segments.slot_name(topic, segments.slot_of(epoch)), partition, offset
    schedule = await segment_store.read_schedule(cache, settings)
    epoch = max(schedule.epoch_at(_now_ms()) or 0, settings.log_epoch)
    partition, offset = await out.send_now(topic, value, key=key, headers=headers, epoch=epoch)
    acked_ms = _now_ms()
    next_start = (await segment_store.read_schedule(cache, settings)).start_of(epoch + 1)
    name = segments.slot_name(topic, segments.slot_of(epoch))
    if next_start is not None and acked_ms >= next_start:
        raise LateReplay(
            f"{name}[{partition}]@{offset} was acknowledged after segment {epoch} ended: it may never be read; "
            "send it again (a consumer skips a copy it already applied)"
        )
    return name, partition, offset
