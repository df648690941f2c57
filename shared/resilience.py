"""Telling a lost dependency from a bug, and probing dependencies for readiness.

A database, cache or broker that goes away mid-run is an outage, not a bug: the service reports
not-ready, waits with backoff and carries on from its committed state once the dependency answers,
without a restart (``lifecycle.run_until_signal``). Any other exception is a bug and still stops the
process, so the supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What a Postgres statement raises for the values it was given, not for the database's health: retrying it with the
# same values fails the same way, so a consumer isolates the request that carried them instead of waiting.
POSTGRES_VALUE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError,  # the server's class 22: a number out of range, a NUL in a text, ...
    asyncpg.IntegrityConstraintViolationError,  # class 23: a CHECK constraint, a unique index, a foreign key
    asyncpg.exceptions._base.DataError,  # the client's: an argument it cannot encode (an int past int64)
)

if TYPE_CHECKING:

    from . import redis as sredis
    from .kafka import Outbox

Probe = Callable[[], Awaitable[object]]
PROBE_TIMEOUT_S = 2.0

_OUTAGES: tuple[tuple[type[BaseException], str], ...] = (
    (asyncpg.PostgresConnectionError, "postgres"),
    (asyncpg.exceptions.OperatorInterventionError, "postgres"),  # shutting down, starting up
    (asyncpg.InterfaceError, "postgres"),  # e.g. the connection was closed under a query
    # a password refused mid-rotation (shared.dbsecret reads the secret again on the next connection)
    (asyncpg.InvalidAuthorizationSpecificationError, "postgres"),
    (RedisConnectionError, "redis"),
    (RedisTimeoutError, "redis"),
    (KafkaError, "kafka"),
    (ConnectionError, "network"),
    (TimeoutError, "network"),
    (OSError, "network"),
)


def keepalive_options() -> dict[int, int]:
    """TCP keepalive probes after 5 s idle, every 2 s, 3 unanswered: an idle connection to a server that
    vanished without closing it is found dead in ~11 s instead of the kernel's two hours."""
    names = (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    return {getattr(socket, name): value for name, value in names if hasattr(socket, name)}


def keep_alive(sock: socket.socket | None) -> None:
    """Turn TCP keepalives on for a connected TCP socket (a Unix socket has none to turn on)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in keepalive_options().items():
        sock.setsockopt(socket.IPPROTO_TCP, option, value)


def outage(exc: BaseException) -> str | None:
    """The dependency an exception says went away, or None when it is not an outage."""
    if isinstance(exc, POSTGRES_VALUE_ERRORS):  # asyncpg's own DataError is an InterfaceError, yet no outage
        return None
    for kind, name in _OUTAGES:
        if isinstance(exc, kind):
            return name
    cause = exc.__cause__ or exc.__context__
    return outage(cause) if cause is not None and cause is not exc else None


def probes(
    *, db: asyncpg.Pool | None = None, cache: sredis.Client | None = None, outbox: Outbox | None = None
) -> dict[str, Probe]:
    """Cheap round trips to each dependency a service holds, for ``/readyz``."""
    found: dict[str, Probe] = {}
    if db is not None:
        pool = db
        found["postgres"] = lambda: pool.fetchval("SELECT 1")
    if cache is not None:
        redis_client = cache
        found["redis"] = lambda: redis_client.ping()
    if outbox is not None:
        found["kafka"] = outbox.reachable
    return found


async def failing(checks: dict[str, Probe]) -> list[str]:
    """Names of the dependencies that do not answer within ``PROBE_TIMEOUT_S``."""

    async def one(name: str, probe: Probe) -> str | None:
        try:
            await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
            return None
        except Exception:  # any failure to answer is "not ready", whatever the client raised
            return name

    results = await asyncio.gather(*(one(n, p) for n, p in checks.items()))
    return [name for name in results if name is not None]
