"""Real servers for the tests: Postgres, Redis and a Kafka-protocol broker.

Taken from ``DATABASE_URL``, ``REDIS_URL`` and ``KAFKA_BOOTSTRAP`` when set; otherwise started once per
session from the same local defaults ``spot up`` uses (embedded Postgres, redis-server, Tansu), on ports
of their own so a developer's running fleet is left alone. Each test that needs isolation gets its own
database, Redis database and topic suffix from ``fresh_env``.

``redis_cluster`` is a three-master Redis Cluster (ElastiCache in cluster mode), started once per session
when a test asks for it. A cluster has no databases to isolate by, so ``make_env(servers, cluster)`` empties
it instead: one fleet uses it at a time (the tests run one after the other).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.segments import LOCAL_SEGMENT_S
from spot import infra as local_infra

# ports of their own, so a developer's fleet is left alone; two checkouts testing at once set other ones. All
# below Linux's ephemeral range (32768-60999): a port in it may be held by another process's outgoing
# connection when the server starts (seen: Tansu exiting with "Address already in use")
TEST_KAFKA_PORT = int(os.environ.get("SPOT_TEST_KAFKA_PORT", "29192"))
TEST_REDIS_PORT = int(os.environ.get("SPOT_TEST_REDIS_PORT", "26479"))
# the cluster's first port: three nodes from here, their cluster bus on the next three
TEST_REDIS_CLUSTER_PORT = int(os.environ.get("SPOT_TEST_REDIS_CLUSTER_PORT", "27001"))


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = Path(os.environ.get("SPOT_TEST_STATE") or tmp_path_factory.mktemp("servers"))
    started = local_infra.start(state, kafka_port=TEST_KAFKA_PORT, redis_port=TEST_REDIS_PORT)
    try:
        yield started.env
    finally:
        started.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-master Redis Cluster of Debian's redis-server; its ``REDIS_URL``."""
    started = local_infra.Infra()
    try:
        folder = tmp_path_factory.mktemp("redis-cluster")
        yield local_infra.start_redis_cluster(started, folder, TEST_REDIS_CLUSTER_PORT)
    finally:
        started.stop()


def _empty_cluster(url: str) -> None:
    import redis

    cluster = redis.RedisCluster.from_url(url)
    try:
        cluster.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    finally:
        cluster.close()


_redis_db = iter(range(1, 16))


def _with_database(url: str, name: str) -> str:
    head, _, tail = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{tail}" if tail else "")


def make_env(servers: dict[str, str], redis_cluster: str | None = None) -> dict[str, str]:
    """Environment for one isolated fleet: a new database, Redis database and topic suffix; with
    ``redis_cluster`` (a cluster's URL), that cluster emptied instead of a Redis database."""
    name = f"spot_test_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(servers["DATABASE_URL"])
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    redis_env: dict[str, str]
    if redis_cluster is not None:
        _empty_cluster(redis_cluster)
        redis_env = {"REDIS_URL": redis_cluster, "REDIS_CLUSTER": "true"}
    else:
        redis_db = next(_redis_db, 15)
        redis_url = servers["REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}"
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        redis_env = {"REDIS_URL": redis_url}
    return {
        "DATABASE_URL": _with_database(servers["DATABASE_URL"], name),
        **redis_env,
        "KAFKA_BOOTSTRAP": servers["KAFKA_BOOTSTRAP"],
        "KAFKA_PARTITIONS": "2",
        "KAFKA_SEGMENT_S": str(LOCAL_SEGMENT_S),  # as `spot up` runs its broker
        "TOPIC_SUFFIX": f".t{secrets.token_hex(3)}",
        "LOG_LEVEL": "WARNING",
        "REQUEST_WEIGHT_PER_MINUTE": "600",
        # admission by measured backlog off: a test that restarts a service on purpose meets a backlog at once,
        # and its orders must not be refused for it (tests/e2e/test_overload.py and the soak turn it on)
        "ADMIT_BACKLOG_MS": "0",
        "ARCHIVE_DIR": tempfile.mkdtemp(prefix=f"{name}-archive-"),  # the trade archiver's Parquet files
    }


def drop_env(servers: dict[str, str], env: dict[str, str]) -> None:
    """Delete what ``make_env`` made: the test's topics and database. The shared test broker (Tansu) slows with
    every topic it holds (measured: 1,000 idle topics made a consumer test five times slower), and the segment
    ring triples a test's topics, so a suite that kept them all would slow down as it goes."""

    async def drop() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers["KAFKA_BOOTSTRAP"])
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.endswith(env["TOPIC_SUFFIX"])]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()
        conn = await asyncpg.connect(servers["DATABASE_URL"])
        try:
            name = env["DATABASE_URL"].partition("?")[0].rsplit("/", 1)[1]
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def fresh_env(servers: dict[str, str]) -> Iterator[dict[str, str]]:
    env = make_env(servers)
    yield env
    drop_env(servers, env)


@pytest.fixture(scope="module")
def module_env(servers: dict[str, str]) -> Iterator[dict[str, str]]:
    env = make_env(servers)
    yield env
    drop_env(servers, env)
