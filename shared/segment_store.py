"""Where segments are recorded: the published schedule and each group's switches, in the fleet's Redis.

The broker cannot hold them: Tansu drops an offset commit's metadata (it answers ``""``) and cannot list a
group's offsets, so a consumer's move to the next segment is written here, after its offset 0 on the new
slot is committed (a crash between the two leaves the group on the old segment, whose end it re-reads and
completes again). Keys are namespaced by the run's topic suffix, as the topics are.

``ScheduleCache`` is the fenced consumer's view of the schedule, read every ``REFRESH_MS``. The producers of
``order-requests`` register here with a lease and the segment they have sealed (``shared.segment_fence``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

import orjson

from .config import Settings
from .redis import Client
from .segments import FORGET_MS, REFRESH_MS, Schedule

log = logging.getLogger(__name__)


def schedule_key(settings: Settings) -> str:
    return f"spot:segments:schedule{settings.topic_suffix}"


def switches_key(settings: Settings) -> str:
    return f"spot:segments:at{settings.topic_suffix}"


def lease_key(settings: Settings) -> str:
    return f"spot:segments:keeper{settings.topic_suffix}"


def _field(group: str, topic: str, partition: int) -> str:
    return f"{group}/{topic}/{partition}"


async def read_schedule(cache: Client, settings: Settings) -> Schedule:
    raw = await cache.get(schedule_key(settings))
    return Schedule.from_json(orjson.loads(raw)) if raw else Schedule()


async def write_schedule(cache: Client, settings: Settings, schedule: Schedule) -> None:
    await cache.set(schedule_key(settings), orjson.dumps(schedule.as_json()))


async def recorded(
    cache: Client, settings: Settings, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """The segment each partition's last switch recorded for ``group`` (absent: never switched)."""
    wanted = list(partitions)
    if not wanted:
        return {}
    values = await cache.hmget(switches_key(settings), [_field(group, topic, p) for p in wanted])
    return {p: int(v) for p, v in zip(wanted, values, strict=True) if v is not None}


async def record_switches(cache: Client, settings: Settings, group: str, moves: Iterable[tuple[str, int, int]]) -> None:
    """``group``'s moves of one turn, (topic, partition, new segment) each, in one round trip."""
    moved = list(moves)
    if moved:
        await cache.hset(switches_key(settings), mapping={_field(group, t, p): e for t, p, e in moved})


def seals_key(settings: Settings) -> str:
    return f"spot:segments:sealed{settings.topic_suffix}"


async def record_seals(cache: Client, settings: Settings, topic: str, ends: Iterable[tuple[int, int]]) -> None:
    """Noted before a writer seals segment ``epoch`` of ``topic`` on each (partition, epoch) of ``ends``: a
    writer that restarts before it recorded its own switch knows its readers may have left that segment."""
    ended = list(ends)
    if ended:
        await cache.hset(seals_key(settings), mapping={f"{topic}/{p}": e for p, e in ended})


async def sealed(cache: Client, settings: Settings, topic: str, partition: int) -> int | None:
    """The last segment of ``topic`` a writer started to seal on ``partition`` (None: never)."""
    value = await cache.hget(seals_key(settings), f"{topic}/{partition}")
    return None if value is None else int(value)


async def positions(cache: Client, settings: Settings, groups: Iterable[str], topic: str) -> dict[str, dict[int, int]]:
    """group -> partition -> recorded segment, for every group named (an empty map for one that never
    switched)."""
    raw = await cache.hgetall(switches_key(settings))
    out: dict[str, dict[int, int]] = {g: {} for g in groups}
    for key, value in raw.items():
        group, _, rest = (key.decode() if isinstance(key, bytes) else key).partition("/")
        name, _, partition = rest.rpartition("/")
        if group in out and name == topic:
            out[group][int(partition)] = int(value)
    return out


def producers_key(settings: Settings) -> str:
    return f"spot:segments:producers{settings.topic_suffix}"


async def renew_producer(cache: Client, settings: Settings, name: str, sealed: int, expires_ms: int) -> None:
    """A producer of ``order-requests``: the last segment it sealed, and until when its lease holds."""
    await cache.hset(producers_key(settings), name, f"{sealed}:{expires_ms}")


async def forget_producer(cache: Client, settings: Settings, name: str) -> None:
    if name:
        await cache.hdel(producers_key(settings), name)


async def sealed_by_all(cache: Client, settings: Settings, epoch: int, now_ms: int) -> bool:
    """Whether every producer with a live lease has sealed ``epoch`` (producers long gone are forgotten)."""
    raw = await cache.hgetall(producers_key(settings))
    gone = []
    ready = True
    for name, value in raw.items():
        sealed, _, expires = (value.decode() if isinstance(value, bytes) else value).partition(":")
        if int(expires) < now_ms:
            if int(expires) < now_ms - FORGET_MS:
                gone.append(name)
            continue
        if int(sealed) < epoch:
            ready = False
    if gone:
        await cache.hdel(producers_key(settings), *gone)
    return ready


class ScheduleCache:
    """The schedule as last read from Redis, refreshed in the background every ``REFRESH_MS``."""

    def __init__(self, cache: Client, settings: Settings) -> None:
        self._cache = cache
        self._settings = settings
        self.schedule = Schedule()
        self.read_at_ms = 0  # wall clock of the last successful read
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> Schedule:
        self.schedule = await read_schedule(self._cache, self._settings)
        self.read_at_ms = int(time.time() * 1000)
        return self.schedule

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis away or refusing: the view goes stale until it is back
                log.debug("segment schedule not read: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(REFRESH_MS / 1000)
