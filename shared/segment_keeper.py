"""The keeper of the segment ring: one per fleet starts the next log segment every ``kafka_segment_s``.

Whoever holds the Redis lease (``SET NX PX``, renewed while it runs) is the keeper; the order processor runs
one as a task, so every fleet has one and a second replica takes over when the first goes. To start segment
``e + 1`` it:

1. checks every group that reads each segmented topic (``segments.READERS``) has moved past segment
   ``e + 1 - SLOTS`` on every partition (their recorded switches, ``segment_store``); if not, it postpones,
   counts it and logs it (at most once per ``POSTPONED_LOG_S``), and tries again;
2. deletes and re-creates the slot of ``e + 1`` of every segmented topic, when that slot held a segment of
   this log (the only way Tansu frees memory; a subscribed topic re-created keeps its readers, unbalanced);
3. raises Postgres' epoch to ``e + 1`` (the highest epoch ever used, which ``reseed-positions`` goes past);
4. publishes the schedule: ``e + 1`` starts ``LEAD_MS`` from now, so every producer has read it before.

A crash between any two steps is repaired by the next keeper: the slot is re-created again (it holds nothing
anyone needs) and an epoch raised in Postgres but never published is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from prometheus_client import Counter, Gauge

from . import identity, segment_store
from .config import Settings
from .redis import Client
from .segments import LEAD_MS, READERS, SEGMENTED, Schedule, recyclable, slot_name, slot_of, used_before

log = logging.getLogger(__name__)

LEASE_MS = 5_000
TICK_S = 0.25
POSTPONED_LOG_S = 10.0
POSTPONED = Counter("spot_segment_postponed_total", "Segment starts postponed: a group has not left the slot's segment")
SEGMENT = Gauge("spot_segment_epoch", "The log segment producers write now (the keeper's view)")

# renew the lease only while it is still ours
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"


def now_ms() -> int:
    return int(time.time() * 1000)


class Keeper:
    def __init__(self, settings: Settings, cache: Client, db: asyncpg.Pool, admin: AIOKafkaAdminClient) -> None:
        self.settings = settings
        self.cache = cache
        self.db = db
        self.admin = admin
        self.token = secrets.token_hex(8)
        self._postponed_logged = 0.0
        self._waiting_logged = 0.0

    async def leading(self) -> bool:
        """Whether this process is the keeper (taking the lease if it is free)."""
        key = segment_store.lease_key(self.settings)
        if await self.cache.set(key, self.token, nx=True, px=LEASE_MS):
            return True
        return bool(await self.cache.eval(_RENEW, 1, key, self.token, LEASE_MS))

    async def step(self) -> Schedule:
        """One look at the schedule: publish what is missing, start the next segment when it is due."""
        base = self.settings.log_epoch
        schedule = await segment_store.read_schedule(self.cache, self.settings)
        highest = max(await identity.highest_epoch(self.db), base)
        last = schedule.last
        if last is None or last < highest:  # a new fleet or log, or a crash after step 3
            schedule = schedule.with_start(highest, now_ms() + (0 if last is None else LEAD_MS))
            await segment_store.write_schedule(self.cache, self.settings, schedule)
            return schedule
        start = schedule.start_of(last)
        assert start is not None
        if now_ms() < start + self.settings.kafka_segment_s * 1000:
            return schedule
        nxt = last + 1
        if not await self._recyclable(nxt, base):
            return schedule
        if used_before(nxt, base):
            await self._recreate(slot_of(nxt))
        await identity.raise_epoch(self.db, nxt)
        schedule = schedule.with_start(nxt, now_ms() + LEAD_MS)
        await segment_store.write_schedule(self.cache, self.settings, schedule)
        SEGMENT.set(nxt)
        log.info("segment %d starts in %d ms (slot %d)", nxt, LEAD_MS, slot_of(nxt))
        return schedule

    async def _recyclable(self, nxt: int, base: int) -> bool:
        for topic in SEGMENTED:
            found = await segment_store.positions(self.cache, self.settings, READERS[topic], topic)
            if not recyclable(nxt, base, found, self.settings.kafka_partitions):
                POSTPONED.inc()
                if time.monotonic() - self._postponed_logged >= POSTPONED_LOG_S:
                    self._postponed_logged = time.monotonic()
                    behind = {g: dict(sorted(by_p.items())) for g, by_p in found.items()}
                    log.warning("segment %d postponed: a reader of %s is still before it (%s)", nxt, topic, behind)
                return False
        return True

    async def _recreate(self, slot: int) -> None:
        names = [self.settings.topic(slot_name(t, slot)) for t in SEGMENTED]
        with contextlib.suppress(UnknownTopicOrPartitionError):
            await self.admin.delete_topics(names)
        n = self.settings.kafka_partitions
        with contextlib.suppress(TopicAlreadyExistsError):
            await self.admin.create_topics([NewTopic(name, n, 1) for name in names])

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the ring turning until ``stop``; a Redis, Postgres or broker outage is waited out."""
        while not stop.is_set():
            try:
                if await self.leading():
                    await self.step()
            except Exception as exc:  # an outage of Redis, Postgres or the broker is waited out: it never stops
                if time.monotonic() - self._waiting_logged >= POSTPONED_LOG_S:
                    self._waiting_logged = time.monotonic()
                    log.warning("segment keeper waiting: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)


async def keep(settings: Settings, cache: Client, db: asyncpg.Pool, stop: asyncio.Event) -> None:
    """The keeper's task (a no-op with segments off)."""
    if not settings.kafka_segment_s:
        return
    from .kafka import _start_with_retry, security

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security(settings))
    await _start_with_retry(admin, "admin")
    try:
        await Keeper(settings, cache, db, admin).run(stop)
    finally:
        await admin.close()
