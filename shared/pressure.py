"""Admission by what the fleet measures: how long an order would wait, not a constant.

The processor reports, at most every ``REPORT_EVERY_MS``, how old the oldest request of the batch it just
finished was (its produce time to done: the queue in front of the processor and the processing itself) in a
Redis hash, one field per replica, in the round trip it makes for the batch anyway. Every gateway reads the
hash every ``READ_EVERY_MS`` and measures its own event loop's lag as it waits (past capacity the gateway
itself is the queue: its loop runs every request's next step late). While the last ``READINGS`` of either
(half a second: a batch or a loop stalled for a moment, while the machine's other processes hold the cores,
queues nothing that lasts) say a new order would wait longer than
``Settings.admit_backlog_ms``, it refuses a share of new orders at the door, before any other work and without
an I/O, with Binance's -1008 and ``Retry-After``: the share grows with the wait beyond the budget and reaches
every new order at twice the budget. The orders already taken keep their
latency, the backlog drains, and the gateway admits again as the readings come down. Cancels are never
refused: they are how a client sheds load.

A report older than ``FRESH_MS`` counts for nothing: a consumer with nothing to do reports nothing, and a
stopped one is no reason to refuse (what it has not read waits in the log, acknowledged and durable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from .config import Settings
from .lifecycle import now_ms

log = logging.getLogger(__name__)

REPORT_EVERY_MS = 100
READ_EVERY_MS = 100
# A new order resumes about this many times on the gateway's event loop (body, key and limits, claim, ack),
# each after waiting out the loop's lag: so the gateway's own queue adds about this multiple of the lag.
RESUMES_PER_ORDER = 4
# A reading counts once it held for this many readings in a row (the lowest of them is the one used). With
# two (200 ms), the soak at 300/s on a busy 2-core machine closed the gate 20 times in 32 minutes on the loop's
# lag alone (51-79 ms, so 204-316 ms by the rule above, while the processor's backlog read 8-47 ms), and in
# the hour at 300/s once on the processor's backlog (261 ms for two readings, 7 orders refused): moments the
# fleet got through. A lasting overload still closes the gate within half a second, and one reading within
# the budget opens it again.
READINGS = 5
FRESH_MS = 1_000
FORGET_MS = 60_000  # a replica not heard of for this long leaves the hash


def key(settings: Settings) -> str:
    """The fleet's hash of reports (owner: the order processor writes it, the gateway reads and prunes it)."""
    return f"spot:pressure{settings.topic_suffix}"


def encode(age_ms: int, at_ms: int) -> str:
    return f"{age_ms} {at_ms}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def backlog_ms(reports: Mapping[Any, Any], at_ms: int, fresh_ms: int = FRESH_MS) -> int:
    """The longest wait among the reports made within ``fresh_ms`` of ``at_ms`` (0 without any); a report
    that does not parse counts for nothing."""
    longest = 0
    for value in reports.values():
        try:
            age, made = (int(x) for x in _text(value).split())
        except (ValueError, UnicodeDecodeError):
            continue
        if at_ms - made <= fresh_ms:
            longest = max(longest, age)
    return longest


def stale(reports: Mapping[Any, Any], at_ms: int, forget_ms: int = FORGET_MS) -> list[Any]:
    """Fields of replicas not heard of for ``forget_ms`` (or unreadable): to delete."""
    out = []
    for field_name, value in reports.items():
        try:
            made = int(_text(value).split()[1])
        except (ValueError, IndexError, UnicodeDecodeError):
            out.append(field_name)
            continue
        if at_ms - made > forget_ms:
            out.append(field_name)
    return out


def refused_share(backlog: int, budget_ms: int) -> float:
    """The share of new orders to refuse: none within the budget (or with admission off, a budget of 0), then
    growing in proportion to the excess, all of them at twice the budget."""
    if budget_ms <= 0 or backlog <= budget_ms:
        return 0.0
    return min(1.0, (backlog - budget_ms) / budget_ms)


class Reporter:
    """The processor's side: one field of the hash, written at most every ``REPORT_EVERY_MS``."""

    def __init__(self, settings: Settings, service: str) -> None:
        self.key = key(settings)
        self.field = f"{service}:{socket.gethostname()}:{os.getpid()}"
        self.enabled = settings.admit_backlog_ms > 0
        self._last_ms = 0

    def queue(self, pipe: Any, oldest_produced_ms: int | None, at_ms: int) -> None:
        """Add the report to ``pipe`` (a pipeline the caller executes) when one is due."""
        if not self.enabled or oldest_produced_ms is None or at_ms - self._last_ms < REPORT_EVERY_MS:
            return
        self._last_ms = at_ms
        pipe.hset(self.key, self.field, encode(max(0, at_ms - oldest_produced_ms), at_ms))


class Gate:
    """The gateway's side: the latest backlog, read in the background; ``admits()`` decides without I/O."""

    def __init__(
        self,
        cache: Any,
        settings: Settings,
        clock: Callable[[], int] = now_ms,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._cache = cache
        self._key = key(settings)
        self.budget_ms = settings.admit_backlog_ms
        self._clock, self._draw = clock, draw
        self.reported_ms = 0  # the processor's backlog, the lowest of the last READINGS: a pause refuses nothing
        self._backlogs: deque[int] = deque(maxlen=READINGS)
        self.loop_lag_ms = 0  # how late this process's event loop ran a timer, the lowest of the last READINGS
        self._lags: deque[int] = deque(maxlen=READINGS)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._refusing = False  # for the log: a line when the gate closes and when it opens again

    @property
    def backlog_ms(self) -> int:
        """What a new order would wait: in front of the processor, or in this gateway's own event loop."""
        return max(self.reported_ms, RESUMES_PER_ORDER * self.loop_lag_ms)

    def admits(self) -> bool:
        share = refused_share(self.backlog_ms, self.budget_ms)
        return share == 0.0 or self._draw() >= share

    async def read(self) -> None:
        """One look at the reports (and the stale ones pruned); a Redis that does not answer admits."""
        try:
            reports = await self._cache.hgetall(self._key)
            at = self._clock()
            self._backlogs.append(backlog_ms(reports, at))
            self.reported_ms = _held(self._backlogs)
            gone = stale(reports, at)
            if gone:
                await self._cache.hdel(self._key, *gone)
        except (RedisError, OSError) as exc:
            self._forget_backlog()
            log.debug("backlog reports not read: %s: %s", type(exc).__name__, exc)

    async def start(self) -> None:
        if self.budget_ms > 0:
            self._task = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            await self._task

    async def _keep(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.read()
            except Exception as exc:  # whatever a client raises, the gate admits and keeps looking
                self._forget_backlog()
                log.debug("backlog reports not read: %s: %s", type(exc).__name__, exc)
            began = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), READ_EVERY_MS / 1000)
            self.loop_lagged(int((time.monotonic() - began) * 1000) - READ_EVERY_MS)
            self.log_turn()

    def log_turn(self) -> None:
        """One line when the gate starts refusing and one when it stops, naming the reading that decided: an
        operator (and the soak) can tell a slow processor from a busy gateway."""
        refusing = self.backlog_ms > self.budget_ms
        if refusing == self._refusing:
            return
        self._refusing = refusing
        readings = f"processor backlog {self.reported_ms} ms, loop lag {self.loop_lag_ms} ms x {RESUMES_PER_ORDER}"
        if refusing:
            log.warning("admission refusing new orders (budget %d ms): %s", self.budget_ms, readings)
        else:
            log.info("admission open again: %s", readings)

    def loop_lagged(self, lag_ms: int) -> None:
        """How late the timer that ended the last wait fired: requests wait about as long at every resume."""
        self._lags.append(max(0, lag_ms))
        self.loop_lag_ms = _held(self._lags)

    def _forget_backlog(self) -> None:
        """No reading (Redis did not answer): admit, and count the next readings afresh."""
        self._backlogs.clear()
        self.reported_ms = 0


def _held(readings: deque[int]) -> int:
    """What the last ``READINGS`` readings all reached (0 until there are that many)."""
    return min(readings) if len(readings) == READINGS else 0
