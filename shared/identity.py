"""One identity per fleet: state from another fleet, or from another epoch of the log, is refused.

A fleet is created once (``spot admin init`` on an empty database): a random id and log epoch 0, written in
Postgres, stamped in Redis (``spot:fleet``) and in the broker (one record in the compacted-by-hand topic
``spot.fleet``). Every record a service produces carries the id in its ``fleet`` header.

Each service checks the three agree before it serves (``check``). What they catch:

- a broker that lost its log (the local broker restarted on memory, a new MSK cluster under old Aurora and
  ElastiCache): the broker has no identity record, and its offsets start again from 0, which the matcher
  would take for redeliveries and drop;
- a Redis of another fleet (a server left running by an earlier ``spot up``, a restored snapshot);
- a broker, Redis or record of another fleet.

A service that finds a mismatch raises ``ForeignState`` with one line (what it found, what it expected, the
way out) and stays not-ready until it is repaired; it never serves on mixed state. The ways out are
``spot admin reseed-positions`` (continue on the new log: the epoch goes up, see ``source_partition``) and
``make clean`` (start empty).

The epoch orders source positions across logs: the processor sends the matcher each request's position as
``(epoch * EPOCH_STRIDE + partition, offset)``, compared as a pair, so every position on a new log is past
every position on an old one and nothing new is taken for a redelivery.

With log segments (``shared.segments``) the epoch also moves while a log lives: each segment is an epoch,
and the positions of its records rank by it the same way. So Postgres keeps two numbers: ``epoch``, the
highest ever used (``reseed-positions`` goes past it), and ``base_epoch``, the epoch the broker's log began
at, which is what the broker's stamp holds and what ``check`` compares (``Identity.epoch``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from . import dbsecret, shutdown
from .config import Settings

if TYPE_CHECKING:
    from .redis import Client

TOPIC = "spot.fleet"
REDIS_KEY = "spot:fleet"
HEADER = "fleet"
EPOCH_STRIDE = 1 << 16  # more partitions than any topic has (Settings.kafka_partitions <= 1024)
READ_IDLE_POLLS = 3  # empty polls that end a read of the identity topic
READ_POLL_MS = 100
WAYS_OUT = "run `spot admin reseed-positions` to continue on it, or `make clean` to start empty"


@dataclass(frozen=True)
class Identity:
    fleet_id: str
    epoch: int  # the epoch the broker's log began at (its first segment)

    def as_json(self) -> dict[str, object]:
        return {"fleet": self.fleet_id, "epoch": self.epoch}


class ForeignState(Exception):
    """State of another fleet or epoch: the service must not serve on it. ``str()`` is the one line to log."""


def source_partition(epoch: int, partition: int) -> int:
    """The partition half of a source position: the epoch ranks first, so a new log's positions come after."""
    return epoch * EPOCH_STRIDE + partition


# --- Postgres: the record of truth --------------------------------------------------------------------------


async def stored(conn: asyncpg.Connection | asyncpg.Pool) -> Identity | None:
    """The fleet and the epoch its current broker log began at."""
    row = await conn.fetchrow("SELECT fleet_id, base_epoch FROM fleet")
    return Identity(row["fleet_id"], row["base_epoch"]) if row else None


async def highest_epoch(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The highest log epoch ever used (the current segment's, with segments on)."""
    value = await conn.fetchval("SELECT epoch FROM fleet")
    return int(value or 0)


async def raise_epoch(conn: asyncpg.Connection | asyncpg.Pool, epoch: int) -> None:
    """Record that segment ``epoch`` is in use (never lowers it)."""
    await conn.execute("UPDATE fleet SET epoch = GREATEST(epoch, $1)", epoch)


async def _create(conn: asyncpg.Connection, now_ms: int) -> tuple[Identity, bool]:
    """The fleet's identity, made now if the database has none; True when it was made by this call."""
    made = await conn.fetchrow(
        "INSERT INTO fleet (fleet_id, epoch, base_epoch, created_at) VALUES ($1, 0, 0, $2) ON CONFLICT DO NOTHING "
        "RETURNING fleet_id, base_epoch",
        secrets.token_hex(8),
        now_ms,
    )
    if made:
        return Identity(made["fleet_id"], made["base_epoch"]), True
    found = await stored(conn)
    assert found is not None  # the conflict was with the one row there is
    return found, False


# --- Redis ------------------------------------------------------------------------------------------------


async def in_redis(cache: Client) -> str | None:
    raw = await cache.get(REDIS_KEY)
    return raw.decode() if isinstance(raw, bytes) else raw


# --- the broker ---------------------------------------------------------------------------------------------


def _topic(settings: Settings) -> str:
    return settings.topic(TOPIC)


async def in_broker(settings: Settings) -> list[Identity]:
    """Every identity record the broker holds, oldest first; [] for a broker with none (a new log)."""
    from .kafka import security as _security

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        **_security(settings),
    )
    try:
        await consumer.start()  # inside: a broker that does not answer leaves no unclosed consumer behind
        if _topic(settings) not in await consumer.topics():
            return []
        tp = TopicPartition(_topic(settings), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found: list[Identity] = []
        idle = 0
        while idle < READ_IDLE_POLLS:
            polled = await consumer.getmany(tp, timeout_ms=READ_POLL_MS)
            records = polled.get(tp, [])
            idle = 0 if records else idle + 1
            for r in records:
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    doc = orjson.loads(r.value)
                    found.append(Identity(str(doc["fleet"]), int(doc["epoch"])))
        return found
    finally:
        await consumer.stop()


async def _stamp_broker(settings: Settings, identity: Identity) -> None:
    from .kafka import security as _security

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **_security(settings))
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(_topic(settings), 1, settings.kafka_replication_factor)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=False, **_security(settings)
    )
    await producer.start()
    try:
        await producer.send_and_wait(_topic(settings), orjson.dumps(identity.as_json()), partition=0)
    finally:
        await producer.stop()


# --- what the services and the operator call ----------------------------------------------------------------


def _where(settings: Settings) -> str:
    return f"the broker at {settings.kafka_bootstrap}"


async def check(settings: Settings, db: asyncpg.Pool | asyncpg.Connection, cache: Client) -> Identity:
    """The fleet's identity, once Postgres, Redis and the broker agree on it; ``ForeignState`` otherwise."""
    identity = await stored(db)
    if identity is None:
        raise ForeignState("the database has no fleet identity: run `spot admin init` first")
    redis_id = await in_redis(cache)
    if redis_id != identity.fleet_id:
        found = f"fleet {redis_id}" if redis_id else "no fleet identity (a new or emptied Redis)"
        raise ForeignState(
            f"redis holds {found}, but the database is fleet {identity.fleet_id}: its books would mix with "
            "another fleet's state; point REDIS_URL at this fleet's Redis, or run `make clean` to start empty"
        )
    broker = await in_broker(settings)
    if not broker:
        raise ForeignState(
            f"{_where(settings)} has no fleet identity (a new or reset log), but the database is fleet "
            f"{identity.fleet_id} at epoch {identity.epoch}: its offsets start again from 0; {WAYS_OUT}"
        )
    last = broker[-1]
    if last != identity:
        raise ForeignState(
            f"{_where(settings)} holds fleet {last.fleet_id} at epoch {last.epoch}, but the database is fleet "
            f"{identity.fleet_id} at epoch {identity.epoch}; {WAYS_OUT}"
        )
    return identity


async def establish(settings: Settings, now_ms: int) -> tuple[Identity, bool]:
    """At ``spot admin init``: a new fleet is created and stamped everywhere, in one Postgres transaction that
    commits only once Redis and the broker are stamped; an existing one is only read (a Redis or broker that
    lost its stamp is for ``check`` to refuse, not for init to paper over). True when it was made now."""
    conn = await dbsecret.connect(settings)
    try:
        async with conn.transaction():
            identity, made = await _create(conn, now_ms)
            if made:
                await _stamp_redis(settings, identity)
                broker = await in_broker(settings)
                if broker and broker[-1].fleet_id != identity.fleet_id:
                    raise ForeignState(
                        f"{_where(settings)} holds fleet {broker[-1].fleet_id}: a new fleet needs a broker of "
                        "its own (point KAFKA_BOOTSTRAP at one, or run `make clean`)"
                    )
                await _stamp_broker(settings, identity)
    finally:
        await conn.close()
    return identity, made


async def _stamp_redis(settings: Settings, identity: Identity) -> None:
    """A new fleet takes an empty Redis only: one with keys holds some other fleet's books and streams."""
    from . import redis as sredis

    cache = sredis.connect(settings)
    try:
        other = await in_redis(cache)
        if other is not None or await cache.dbsize():
            held = f"fleet {other}" if other else "keys of a fleet that predates identities"
            raise ForeignState(
                f"redis at {settings.redis_url.split('@')[-1]} already holds {held}: a new fleet needs an empty "
                "Redis (point REDIS_URL at one, or run `make clean`)"
            )
        await cache.set(REDIS_KEY, identity.fleet_id)
    finally:
        await cache.aclose()


async def reseed_positions(settings: Settings) -> tuple[Identity, Identity]:
    """Continue on a new log: it begins past the highest epoch ever used (a segment's included), in Postgres
    and in the broker's stamp. Returns (before, after), as the bases of the two logs. Positions the processor
    gives from now on rank after every earlier one."""
    conn = await dbsecret.connect(settings)
    try:
        async with conn.transaction():
            before = await stored(conn)
            if before is None:
                raise ForeignState("the database has no fleet identity: run `spot admin init` first")
            after = Identity(before.fleet_id, await highest_epoch(conn) + 1)
            await conn.execute("UPDATE fleet SET epoch = $1, base_epoch = $1", after.epoch)
            await _stamp_broker(settings, after)  # before the commit: a failure leaves the epoch as it was
    finally:
        await conn.close()
    return before, after


async def verify(settings: Settings) -> Identity:
    """``check`` on connections of its own, for a service about to serve: the settings carry the identity
    from then on (every record it produces is stamped, the processor ranks positions by the epoch). Nothing
    is served yet, so a stop requested meanwhile abandons it (``shutdown.Stopping``): the broker's identity
    is read with a consumer of its own, whose connect may hang on a blackholed broker."""
    from . import postgres
    from . import redis as sredis

    async with (
        shutdown.attempt(),
        postgres.pool(settings, min_size=1, max_size=1) as db,
        sredis.client(settings) as cache,
    ):
        found = await check(settings, db, cache)
    settings.fleet_id, settings.log_epoch = found.fleet_id, found.epoch
    return found


REFUSED_RETRY_S = 2.0  # how often a refusing service looks again (an operator may have repaired the state)


async def verified(settings: Settings, log: logging.Logger) -> Identity:
    """``verify``, waiting while the state is refused or a dependency does not answer: for a web service's
    start-up, which has no readiness to report until it is done. Each distinct refusal is logged once."""
    from . import resilience

    refused = ""
    while True:
        try:
            return await verify(settings)
        except ForeignState as exc:
            if str(exc) != refused:
                refused = str(exc)
                log.error("refusing to serve: %s", refused)
        except Exception as exc:
            lost = resilience.outage(exc)
            if lost is None:
                raise
            log.warning("%s not reachable (%s); retrying in %.1fs", lost, type(exc).__name__, REFUSED_RETRY_S)
        await shutdown.pause(REFUSED_RETRY_S)
