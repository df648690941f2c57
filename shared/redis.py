"""Redis (ElastiCache) access: one client per process that waits for the server, and the key names.

The client's connection pool is bounded (``Settings.redis_pool_max``) and blocking: a call that finds
every connection in use waits up to ``Settings.pool_wait_ms`` for one, then fails with
``RedisPoolExhausted``, which is both Binance's -1008 refusal for a request (``shared.overload``) and a
Redis ``ConnectionError`` for a consumer's outage handling. redis-py's default pool raised
``MaxConnectionsError`` at its 100th concurrent call instead, with no wait at all.

Key names are gathered here so the hot book, the market-data state and the rate limiter never collide.

ElastiCache in cluster mode (``REDIS_CLUSTER=true``, ``REDIS_URL`` naming its configuration endpoint) gets a
``RedisCluster`` instead, from the same ``client`` factory. Every service's keys carry a hash tag (``{SYMBOL}``
per symbol, ``{u:<user>}`` per user), so each script and MULTI touches one slot; ``PUBLISH`` on a cluster
reaches every node's subscribers, so classic pub/sub works unchanged. A cluster has no ``SELECT`` (database 0
only). Its pools are bounded the same way: redis-py's pool per cluster node refuses at once past its size
(``MaxConnectionsError``, an outage to a request), so every call and pipeline first takes one of
``redis_pool_max`` places (``_Gate``), waiting ``pool_wait_ms`` at most and then refused with the same
``RedisPoolExhausted``. Each call uses at most one connection per node, so no node's pool runs dry behind it.

Batch calls (a MULTI, a pipeline) are timed with ``timed(operation)`` into ``spot_redis_call_seconds``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import hiredis
import msgspec
import redis.asyncio as aioredis
from prometheus_client import Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from . import overload, resilience, shutdown, tracing
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


# A pub/sub message may carry several events of one channel, each on its own line (``Publications.add_all``):
# a batch's outcomes, or one user's events of a batch. A gateway then reads one message, not one per event.
# JSON (orjson) never holds a raw newline, nor does a ``tracing.wrap`` prefix; one event is one line.
EVENTS_SEPARATOR = b"\n"


class Channels:
    """Pub/sub channel names. Channels are global to a Redis server (not per database), so every fleet
    sharing one server gets its own namespace (``TOPIC_SUFFIX``)."""

    def __init__(self, namespace: str = "") -> None:
        self.ns = namespace

    @property
    def outcomes(self) -> str:
        """Settled outcome of each request, for REST calls waiting on it (``EVENTS_SEPARATOR``)."""
        return f"order-outcomes{self.ns}"

    @property
    def access(self) -> str:
        """API keys and users that changed (``shared.apikeys.changed_key``): replicas drop their copies."""
        return f"access{self.ns}"

    def user(self, user_id: int) -> str:
        """One user's stream events (executionReport, outboundAccountPosition)."""
        return f"user:{user_id}{self.ns}"

    def stream(self, stream: str) -> str:
        """One market stream, e.g. ``btcusdt@trade``."""
        return f"stream:{stream}{self.ns}"


class _PackedByHiredis:
    """Commands packed by hiredis' C packer: redis-py's asyncio connection packs in Python, 4.6 against
    0.7 µs for a rate-limit call, on every command of every service. Floats and what hiredis refuses
    (redis-py raises its own ``DataError`` for those) go through redis-py's packer, so the bytes and the
    errors are redis-py's."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) and " " in first:  # "SCRIPT LOAD": the server wants the words apart
            args = (*first.split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        for arg in args:
            if type(arg) is float:
                return super().pack_command(*args)  # type: ignore[misc]
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)  # type: ignore[misc]


class _TcpConnection(_PackedByHiredis, aioredis.Connection):
    pass


class _TlsConnection(_PackedByHiredis, aioredis.SSLConnection):
    pass


def _connection_options(url: str) -> dict[str, Any]:
    """The packer and TCP keepalives for TCP and TLS URLs (ElastiCache's ``rediss://``); a unix socket keeps
    redis-py's connection, which has no keepalive to set."""
    keepalive = {"socket_keepalive": True, "socket_keepalive_options": resilience.keepalive_options()}
    if url.startswith("redis://"):
        return {"connection_class": _TcpConnection, **keepalive}
    if url.startswith("rediss://"):
        return {"connection_class": _TlsConnection, **keepalive}
    return {}


NO_MAINTENANCE_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)


class RedisPoolExhausted(overload.Overloaded, RedisConnectionError):
    """No pooled Redis connection came free within the wait: a -1008 for a request, an outage for a consumer."""


class _BoundedPool(aioredis.BlockingConnectionPool):
    """redis-py's blocking pool, whose timeout says which pool ran out (``RedisPoolExhausted``)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError) and self.timeout is not None:
                raise overload.refuse("redis connection", self.timeout, RedisPoolExhausted) from None
            raise


def connection_pool(settings: Settings) -> aioredis.BlockingConnectionPool:
    """Bounded: ``redis_pool_max`` connections, a caller waits ``pool_wait_ms`` at most for one. Every connect
    and reply is bounded by ``redis_timeout_ms`` (a TimeoutError, an outage to ``shared.resilience``), so a
    server that goes silent without closing fails the call instead of holding it; keepalives find an idle
    connection's peer gone. Pub/sub reads pass their own timeout.

    Maintenance notifications (Redis Enterprise's, which ElastiCache does not send) are off: while on, even
    as redis-py 8's default ``"auto"``, the pool skips its check of a connection it hands out, so one the
    server closed while it sat idle (an outage, a failover) fails its next command after the server is back,
    and the service takes a second outage for it instead of reconnecting."""
    timeout_s = settings.redis_timeout_ms / 1000
    return _BoundedPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_max,
        timeout=settings.pool_wait_ms / 1000,
        decode_responses=False,
        health_check_interval=30,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        maint_notifications_config=NO_MAINTENANCE_NOTIFICATIONS,
        **_connection_options(settings.redis_url),
    )


Client = aioredis.Redis | aioredis.RedisCluster
"""What ``client`` gives: a single server's client, or a cluster's (``REDIS_CLUSTER``)."""
Pipeline = aioredis.client.Pipeline | aioredis.cluster.ClusterPipeline


# Pub/sub connections come from a node's pool without a place at the gate (the gateway's reader holds one
# for its life, two while it replaces it): the nodes' pools have room for them beside the gate's calls.
PUBSUB_CONNECTIONS = 2


class _Gate:
    """At most ``limit`` calls (commands, pipelines, MULTIs) in flight on a cluster client, as a single server's
    pool has ``limit`` connections: a call past it waits ``wait_s`` for a place, then is refused with
    ``RedisPoolExhausted`` (a -1008 with ``Retry-After`` for a request, an outage for a consumer). A call made
    inside another (a pipeline's command sent again after a ``MOVED``) runs in its place."""

    def __init__(self, limit: int, wait_s: float) -> None:
        self.wait_s = wait_s
        self._free = asyncio.Semaphore(limit)

    def place(self) -> _Place:
        return _Place(self)


_held: ContextVar[_Gate | None] = ContextVar("spot_redis_gate_held", default=None)  # the gate this call holds


class _Place:
    __slots__ = ("_gate", "_token")

    def __init__(self, gate: _Gate) -> None:
        self._gate = gate
        self._token: Any = None

    async def __aenter__(self) -> None:
        gate = self._gate
        if _held.get() is gate:
            return  # inside a call that holds a place already
        if gate._free.locked():  # full: wait, bounded
            try:
                await asyncio.wait_for(gate._free.acquire(), gate.wait_s)
            except TimeoutError:
                raise overload.refuse("redis connection", gate.wait_s, RedisPoolExhausted) from None
        else:  # the common case: a place is free, no timer
            await gate._free.acquire()
        self._token = _held.set(gate)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _held.reset(self._token)
            self._gate._free.release()


class _GatedCluster(aioredis.RedisCluster):
    """``RedisCluster`` whose calls and pipelines each take a place at its ``_Gate`` first."""

    __slots__ = ("gate",)

    def __init__(self, *args: Any, gate: _Gate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.gate.place():
            return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> aioredis.cluster.ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's refusal
        return _GatedPipeline(self, transaction)  # type: ignore[abstract]  # redis-py makes its own alike


class _GatedPipeline(aioredis.cluster.ClusterPipeline):
    """A cluster pipeline (or MULTI) that takes one place at its client's gate for its whole execution."""

    __slots__ = ()

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, _GatedCluster)
        async with client.gate.place():
            return await super().execute(raise_on_error, allow_redirections)


def cluster_client(settings: Settings) -> aioredis.RedisCluster:
    """A ``RedisCluster`` on ``REDIS_URL``'s host (ElastiCache's configuration endpoint, ``rediss://`` for
    TLS): the cluster's nodes are discovered from it, and a ``MOVED`` after a resharding or failover refreshes
    them. At most ``redis_pool_max`` calls in flight, a caller waiting ``pool_wait_ms`` at most for a place
    (``_Gate``), as on ``connection_pool``; every call bounded by ``redis_timeout_ms``."""
    timeout_s = settings.redis_timeout_ms / 1000
    return _GatedCluster.from_url(
        settings.redis_url,
        gate=_Gate(settings.redis_pool_max, settings.pool_wait_ms / 1000),
        max_connections=settings.redis_pool_max + PUBSUB_CONNECTIONS,
        decode_responses=False,
        health_check_interval=30,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_keepalive=True,
        socket_keepalive_options=resilience.keepalive_options(),
    )


def connect(settings: Settings) -> Client:
    """The process's client, not yet checked to answer (``client`` waits for it)."""
    if settings.redis_cluster:
        return cluster_client(settings)
    return aioredis.Redis.from_pool(connection_pool(settings))


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[Client]:
    """One client per process, on a bounded pool (``connection_pool``), or a cluster's (``REDIS_CLUSTER``)."""
    r = connect(settings)
    delay = RETRY_S
    while True:
        try:
            async with shutdown.attempt():  # a stop abandons a try that hangs (a blackholed server)
                await r.ping()
            break
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("redis not reachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            await shutdown.pause(delay)  # a stop requested meanwhile ends the wait (shared.shutdown)
            delay = min(delay * 2, RETRY_MAX_S)
    try:
        yield r
    finally:
        await r.aclose()


class BatchedCommands:
    """Lone commands, made by concurrent requests in one event-loop turn, sent as one pipeline.

    redis-py spends ~50-70 µs of CPU on a lone command outside Redis (a pool checkout, a retry wrapper,
    packing and parsing each on its own); in a pipeline the same call costs a fraction (``EVALSHA`` from
    64 concurrent callers: 65 → 17-29 µs each, measured on this 2-core machine). A lone command also holds
    a pooled connection for its round trip: N concurrent requests need N connections, and ingestion's one
    claim per order ran its pool dry (``MaxConnectionsError``) once a slow loop let a few hundred overlap.
    Batched, one turn's commands share one connection whatever their number.
    """

    def __init__(self, cache: Client) -> None:
        self.cache = cache
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def __call__(self, *command: Any) -> asyncio.Future[Any]:
        """``await batched("SET", key, value, "NX", "EX", ttl)``: the command's reply, or its error raised."""
        return self._add(command)

    def _add(self, call: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after every callback of this turn: they join the same pipeline
        self._pending.append((call, fut))
        return fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._run([call for call, _ in batch])
        except Exception as exc:  # the connection failed: every caller sees it, as a lone call would
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():  # its request went away meanwhile
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def _run(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        return await self._pipeline(calls)

    async def _pipeline(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.cache.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        return list(await pipe.execute(raise_on_error=False))


class BatchedScript(BatchedCommands):
    """A Lua script whose calls, made by concurrent requests in one event-loop turn, go as one pipeline
    (``BatchedCommands`` says why). A script the server does not know yet (``NOSCRIPT``: a restart, a
    failover) is loaded and the calls that missed it are repeated.
    """

    def __init__(self, cache: Client, source: str) -> None:
        super().__init__(cache)
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

    def __call__(self, keys: Sequence[str], args: Sequence[int | str]) -> asyncio.Future[Any]:
        return self._add(("EVALSHA", self.sha, len(keys), *keys, *args))

    async def _run(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        results = await self._pipeline(calls)
        missed = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missed:
            await self.cache.script_load(self.source)
            for i, again in zip(missed, await self._pipeline([calls[i] for i in missed]), strict=True):
                results[i] = again
        return results


# Redis packs many small arguments slowly in redis-py (an ``Encoder.encode`` and a header per argument, in
# Python: market-data's largest cost). ``Publications`` and ``Atomic`` send their whole payload as one
# msgpack argument instead (msgspec, in C), which the script unpacks with Redis' built-in ``cmsgpack``.
# Everything travels as msgpack text: that ``cmsgpack`` predates msgpack's binary type (so the payloads,
# all JSON, are decoded from UTF-8 first), and a Lua number is a double, exact only to 2^53 (so integers
# go as decimal strings).
_pack = msgspec.msgpack.Encoder().encode

# ARGV[1]: a msgpack array of (channel, message) pairs; one script call publishes them all, in order.
PUBLISH_ALL = """
local pairs = cmsgpack.unpack(ARGV[1])
for i = 1, #pairs do redis.call('PUBLISH', pairs[i][1], pairs[i][2]) end
return #pairs
"""


class Publications:
    """Pub/sub messages gathered over a batch and published by one command (``EVAL`` of ``PUBLISH_ALL``).

    One ``PUBLISH`` per message costs redis-py its packing, a reply to read and parse, and in a MULTI a
    ``QUEUED`` reply too, each with its own read timeout: the bulk of market-data's CPU per order. The
    script is sent as ``EVAL`` (the server caches it by hash), so it also works inside a MULTI, where a
    ``NOSCRIPT`` would fail one command of the transaction and not the rest.

    On a cluster, a channel's messages must all leave from one node: a node forwards what is published on
    it to the other nodes' subscribers over its own bus link, in order, but two nodes' links race (a script
    without keys goes to any node, and a user's NEW and TRADE then arrived swapped). So there, each channel's
    messages go as one call keyed by the channel's name, to the node of its slot, whoever publishes them.
    """

    __slots__ = ("_pairs",)

    def __init__(self) -> None:
        self._pairs: list[tuple[str, str]] = []

    def add(self, channel: str, message: bytes) -> None:
        """``message``: UTF-8 (JSON, or a ``tracing.wrap`` of it)."""
        self._pairs.append((channel, message.decode()))

    def add_all(self, channel: str, events: list[bytes]) -> None:
        """Several events for one channel as one message, one per line (``EVENTS_SEPARATOR``), in order."""
        self._pairs.append((channel, EVENTS_SEPARATOR.join(events).decode()))

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(channel, message) in the order they were added."""
        return iter(self._pairs)

    def queue(self, pipe: Pipeline) -> None:
        """Add the one command to ``pipe`` (a pipeline or a MULTI), one per channel on a cluster; nothing if
        there is nothing to say."""
        if not self._pairs:
            return
        if not isinstance(pipe, aioredis.cluster.ClusterPipeline):
            pipe.execute_command("EVAL", PUBLISH_ALL, 0, _pack(self._pairs))
            return
        for channel, pairs in self._per_channel().items():
            pipe.execute_command("EVAL", PUBLISH_ALL, 1, channel, _pack(pairs))

    async def send(self, cache: Client) -> None:
        if not self._pairs:
            return
        if not isinstance(cache, aioredis.RedisCluster):
            await cache.execute_command("EVAL", PUBLISH_ALL, 0, _pack(self._pairs))
            return
        pipe = cache.pipeline(transaction=False)
        self.queue(pipe)
        await pipe.execute()

    def _per_channel(self) -> dict[str, list[tuple[str, str]]]:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for pair in self._pairs:
            grouped.setdefault(pair[0], []).append(pair)
        return grouped


# ARGV[1]: a msgpack array of commands, each an array of its name and arguments; run in order.
ATOMIC = """
local commands = cmsgpack.unpack(ARGV[1])
for i = 1, #commands do redis.call(unpack(commands[i])) end
return #commands
"""
ATOMIC_MAX_ARGS = 4000  # per command: Lua's unpack stops at its C stack (~8,000 values)


class Atomic:
    """Writes to one hash slot as one script call: all or nothing like a MULTI, with one reply instead of
    a ``QUEUED`` and a result per command for redis-py to read and parse.

    ``key`` names the slot (its hash tag) so a cluster routes the call to the node that owns every key the
    commands touch; they must share its tag. Sent as ``EVAL`` (cached by the server by hash), so there is
    no ``NOSCRIPT`` to recover from. A command's replies are not returned: for writes whose outcome is
    certain (LPUSH, SET, PUBLISH, ...).
    """

    __slots__ = ("_commands", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._commands: list[tuple[str, ...]] = []

    def call(self, *command: str | bytes | int) -> None:
        """One command; ``bytes`` arguments must be UTF-8 (JSON, as every value market-data writes)."""
        if len(command) > ATOMIC_MAX_ARGS:
            raise ValueError(f"{command[0]!r} with {len(command)} arguments: split it")
        self._commands.append(
            tuple(a if isinstance(a, str) else a.decode() if isinstance(a, bytes) else str(a) for a in command)
        )

    def __bool__(self) -> bool:
        return bool(self._commands)

    def mark(self) -> int:
        """Where the commands end now, for ``rollback``."""
        return len(self._commands)

    def rollback(self, mark: int) -> None:
        """Drop the commands added since ``mark`` (a message that failed half-way through its writes)."""
        del self._commands[mark:]

    def queue(self, pipe: Pipeline) -> None:
        """Add the one call to ``pipe`` (not a MULTI: the script is atomic by itself)."""
        if self._commands:
            pipe.execute_command("EVAL", ATOMIC, 1, self.key, _pack(self._commands))
