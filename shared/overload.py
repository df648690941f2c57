"""Past capacity, refuse at the door: Binance's -1008 with a 503 and ``Retry-After``, never a pile-up.

Every pool a request draws on (Redis connections, Postgres connections, the gateway's HTTP connections to
ingestion) is bounded, and a request waits for it at most ``Settings.pool_wait_ms``. What cannot get a
connection within that wait is refused with ``Overloaded``, an ``ApiError``: the client learns to come back
(ccxt raises its ``OnMaintenance``/``ExchangeNotAvailable`` for -1008), and the service keeps the latency
of the work it has already taken instead of queueing more than it can serve.

An expected condition is not a bug: it is counted (``spot_overload_refusals_total{resource}``, and
``spot_expected_faults_total{kind}`` for a lost dependency or a timeout) and logged as one warning line,
at most once per ``WARN_EVERY_S`` per kind with the number seen since the last line, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from prometheus_client import Counter

from .errors import SERVER_BUSY, ApiError

log = logging.getLogger(__name__)
BUSY_MSG = "Server is currently overloaded with other requests. Please try again in a few minutes."
RETRY_AFTER_S = 1
WARN_EVERY_S = 5.0  # an overload comes in thousands a second: one line per kind per 5 s says it all

REFUSALS = Counter(
    "spot_overload_refusals_total", "Requests refused with -1008: a bounded pool or queue was full", ["resource"]
)
EXPECTED = Counter(
    "spot_expected_faults_total", "Requests that met an expected fault (a dependency lost, a timeout)", ["kind"]
)


class Warnings:
    """One warning line per kind at most every ``every_s`` seconds, saying how many were seen since the last."""

    def __init__(self, every_s: float = WARN_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._last: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> bool:
        """Log ``message`` if ``kind`` has been quiet for ``every_s``; True if it was logged."""
        now = self.clock()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            self._unsaid[kind] = self._unsaid.get(kind, 0) + 1
            return False
        self._last[kind] = now
        unsaid = self._unsaid.pop(kind, 0)
        log.warning("%s%s", message, f" ({unsaid} more since the last such line)" if unsaid else "")
        return True


WARNINGS = Warnings()


class Overloaded(ApiError):
    """A request refused because ``resource`` had no capacity left within the request's wait."""

    def __init__(self, resource: str, waited_s: float) -> None:
        super().__init__(SERVER_BUSY, BUSY_MSG, 503, {"Retry-After": str(RETRY_AFTER_S)})
        self.resource = resource
        self.waited_s = waited_s


Refusal = TypeVar("Refusal", bound=Overloaded)


def refuse(resource: str, waited_s: float, kind: type[Refusal] = Overloaded) -> Refusal:  # type: ignore[assignment]
    """The refusal to raise (an ``Overloaded``, or the subclass ``kind``), counted and, at most every
    ``WARN_EVERY_S``, logged."""
    REFUSALS.labels(resource).inc()
    WARNINGS.warn(f"overload:{resource}", f"overloaded: no {resource} free within {waited_s:.3f}s; refused (-1008)")
    return kind(resource, waited_s)


def expected(kind: str, message: str) -> None:
    """Count and (at most every ``WARN_EVERY_S``) log a fault the service expects, such as a lost dependency."""
    EXPECTED.labels(kind).inc()
    WARNINGS.warn(f"expected:{kind}", message)


class Admission:
    """At most ``limit`` holders at once; a newcomer waits up to ``wait_s`` for a place, then is refused.

    ``async with admission:`` around the use of a bounded resource (``resource`` names it in the metric),
    so the queue in front of it is bounded by time: under overload the wait ends in ``Overloaded`` instead
    of growing with the backlog.
    """

    def __init__(self, resource: str, limit: int, wait_s: float) -> None:
        if limit < 1:
            raise ValueError(f"Admission {resource!r}: limit must be at least 1, got {limit}")
        self.resource, self.limit, self.wait_s = resource, limit, wait_s
        self._free = asyncio.Semaphore(limit)
        self.in_use = 0

    async def __aenter__(self) -> None:
        if self._free.locked():  # full: wait, bounded
            try:
                await asyncio.wait_for(self._free.acquire(), self.wait_s)
            except TimeoutError:
                raise refuse(self.resource, self.wait_s) from None
        else:  # the common case: a place is free, no timer
            await self._free.acquire()
        self.in_use += 1

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.in_use -= 1
        self._free.release()
