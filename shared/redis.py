"""Redis (ElastiCache) access: one client per process that waits for the server, and the key names.

Key names are gathered here so the hot book, the market-data state and the rate limiter never collide.
Batch calls (a MULTI, a pipeline) are timed with ``timed(operation)`` into ``spot_redis_call_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from prometheus_client import Histogram
from redis.exceptions import ConnectionError as RedisConnectionError

from . import tracing
from .config import Settings

log = logging.getLogger(__name__)
RETRY_S, RETRY_MAX_S = 0.5, 5.0
CALL_SECONDS = Histogram(
    "spot_redis_call_seconds",
    "Redis call latency per batch (one MULTI or pipeline) by operation",
    ["operation"],
    buckets=tracing.CALL_BUCKETS,
)


def timed(operation: str) -> tracing.Timed:
    """``with timed("book_commit"): await pipe.execute()``: one observation per batch call."""
    return tracing.Timed(CALL_SECONDS.labels(operation), f"redis {operation}")


class Channels:
    """Pub/sub channel names. Channels are global to a Redis server (not per database), so every fleet
    sharing one server gets its own namespace (``TOPIC_SUFFIX``)."""

    def __init__(self, namespace: str = "") -> None:
        self.ns = namespace

    @property
    def outcomes(self) -> str:
        """Settled outcome of each request, for REST calls waiting on it."""
        return f"order-outcomes{self.ns}"

    def user(self, user_id: int) -> str:
        """One user's stream events (executionReport, outboundAccountPosition)."""
        return f"user:{user_id}{self.ns}"

    def stream(self, stream: str) -> str:
        """One market stream, e.g. ``btcusdt@trade``."""
        return f"stream:{stream}{self.ns}"


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.from_url(settings.redis_url, decode_responses=False, health_check_interval=30)
    delay = RETRY_S
    while True:
        try:
            await r.ping()
            break
        except (RedisConnectionError, OSError) as exc:
            log.warning("redis not reachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
    try:
        yield r
    finally:
        await r.aclose()
