"""Bounded pools on real servers: past capacity a request waits ``pool_wait_ms`` and is refused with
Binance's -1008, never an unbounded queue or a raw ``MaxConnectionsError``, on one Redis and on a Redis
Cluster alike (redis-py's cluster pools refused at once); ingestion's client-id claims share one connection
per event-loop turn; and an expected fault is answered without a traceback.

The claims are the cause of issue 27's collapse: at 300 orders/s, once the fleet slowed, ingestion had a
few hundred requests in flight, each claiming its client order id with a lone ``SET`` that held a pooled
connection for its round trip, and redis-py's pool (100) raised ``MaxConnectionsError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError

from shared import errors, postgres
from shared import redis as sredis
from shared.config import Settings
from shared.http import add_error_handlers
from shared.postgres import PostgresPoolExhausted
from shared.redis import BatchedCommands, RedisPoolExhausted
from tests.conftest import drop_env, make_env

CLAIMS = 300  # requests in flight at once


def _settings(env: dict[str, str], **overrides: object) -> Settings:
    return Settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"], **overrides)  # type: ignore[arg-type]


REDIS_MODES = ("redis", "redis-cluster")  # one server, and ElastiCache's cluster mode: bounded alike


@pytest.fixture(params=REDIS_MODES)
def redis_env(request: pytest.FixtureRequest, servers: dict[str, str]) -> Iterator[dict[str, str]]:
    """``make_env``'s settings on one Redis or on the local three-master Redis Cluster (started only when asked)."""
    cluster = request.getfixturevalue("redis_cluster") if request.param == "redis-cluster" else None
    env = make_env(servers, cluster)
    yield {**env, "REDIS_CLUSTER": env.get("REDIS_CLUSTER", "false")}
    drop_env(servers, env)


def _redis_settings(env: dict[str, str], **overrides: object) -> Settings:
    return _settings(env, redis_cluster=env["REDIS_CLUSTER"] == "true", **overrides)


# Keys of one hash tag: on a cluster they live on one node, so the calls holding connections and the one that
# finds none meet at the same node's pool (redis-py's per-node pool refused that one at once).
BLOCK, LONE = "{pool}:block:%d", "{pool}:lone"


def _holding(cache: sredis.Client, seconds: float) -> list[asyncio.Future[object]]:
    """Two calls that hold a connection each for ``seconds`` (BLPOP on empty lists)."""
    return [asyncio.ensure_future(cache.blpop([BLOCK % i], timeout=seconds)) for i in range(2)]


async def _claims(env: dict[str, str]) -> None:
    settings = _redis_settings(env, redis_pool_max=2, pool_wait_ms=200)
    async with sredis.client(settings) as cache:
        assert isinstance(cache, aioredis.RedisCluster) == settings.redis_cluster
        # lone commands: each holds a connection for its round trip, so most wait; BLPOP holds two for 0.5 s
        blockers = _holding(cache, 0.5)
        await asyncio.sleep(0.05)
        began = time.monotonic()
        with pytest.raises(RedisPoolExhausted) as refused:
            await cache.set(LONE, 1)
        waited = time.monotonic() - began
        assert 0.18 <= waited < 0.45, f"refused after {waited:.3f}s: it must wait pool_wait_ms (0.2 s), no longer"
        assert refused.value.code == errors.SERVER_BUSY and refused.value.http_status == 503
        assert refused.value.headers["Retry-After"] == "1"
        assert isinstance(refused.value, RedisConnectionError)  # a consumer treats it as an outage: backoff
        await asyncio.gather(*blockers)
        # the same pool of two serves 300 concurrent claims when they are batched: one connection per turn
        claims = BatchedCommands(cache)
        taken = await asyncio.gather(*(claims("SET", f"pool:coid:{i % 150}", i, "NX", "EX", 60) for i in range(CLAIMS)))
        assert [bool(t) for t in taken] == [True] * 150 + [False] * 150  # the second claim of an id is refused
        assert await cache.ttl("pool:coid:7") > 0  # a claim is a window, not forever
        assert await claims("DEL", "pool:coid:7") == 1


def test_a_full_redis_pool_refuses_after_its_wait_and_batched_claims_fit_in_two_connections(
    redis_env: dict[str, str],
) -> None:
    asyncio.run(_claims(redis_env))


async def _waits_its_turn(env: dict[str, str]) -> None:
    settings = _redis_settings(env, redis_pool_max=2, pool_wait_ms=2000)
    async with sredis.client(settings) as cache:
        blockers = _holding(cache, 0.3)
        await asyncio.sleep(0.05)
        began = time.monotonic()
        assert await cache.set(LONE, 2)  # no connection free: it waits for one, and is served
        pipe = cache.pipeline(transaction=False)
        pipe.get(LONE)
        pipe.delete(LONE)
        assert await pipe.execute() == [b"2", 1]
        waited = time.monotonic() - began
        await asyncio.gather(*blockers)
        assert 0.15 <= waited < 2.0, f"served after {waited:.3f}s: it must wait for the first connection freed"


def test_a_call_that_finds_the_redis_pool_full_waits_for_a_connection(redis_env: dict[str, str]) -> None:
    asyncio.run(_waits_its_turn(redis_env))


async def _refused_over_http(env: dict[str, str]) -> None:
    settings = _redis_settings(env, redis_pool_max=2, pool_wait_ms=200)
    async with sredis.client(settings) as cache:
        app = FastAPI()
        add_error_handlers(app)

        @app.post("/write")
        async def write() -> dict[str, bool]:
            return {"written": bool(await cache.set(LONE, 3))}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            blockers = _holding(cache, 0.5)
            await asyncio.sleep(0.05)
            busy = await http.post("/write")
            await asyncio.gather(*blockers)
            served = await http.post("/write")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1", busy.text
    assert busy.json()["code"] == errors.SERVER_BUSY  # -1008: come back later
    assert served.status_code == 200 and served.json() == {"written": True}


def test_a_request_that_finds_the_redis_pool_full_is_answered_1008_with_retry_after(redis_env: dict[str, str]) -> None:
    asyncio.run(_refused_over_http(redis_env))


async def _postgres(env: dict[str, str]) -> None:
    settings = _settings(env)
    async with postgres.pool(settings, min_size=1, max_size=1, acquire_wait_s=0.1) as db:
        async with db.acquire() as held:
            assert await held.fetchval("SELECT 1") == 1
            with pytest.raises(PostgresPoolExhausted) as refused:
                await db.fetchval("SELECT 2")
            assert refused.value.code == errors.SERVER_BUSY and refused.value.headers["Retry-After"] == "1"
        assert await db.fetchval("SELECT 3") == 3  # freed: served again
    async with postgres.pool(settings, min_size=1, max_size=1) as db:  # a consumer's pool waits its turn
        async with db.acquire():
            waiting = asyncio.ensure_future(db.fetchval("SELECT 4"))
            await asyncio.sleep(0.3)
            assert not waiting.done()
        assert await waiting == 4


def test_a_full_postgres_pool_refuses_a_request_after_its_wait_and_a_consumer_waits(fresh_env: dict[str, str]) -> None:
    asyncio.run(_postgres(fresh_env))


def _app() -> FastAPI:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise RedisPoolExhausted("redis connection", 1.0)

    @app.get("/lost")
    async def lost() -> None:
        raise RedisConnectionError("Connection refused")

    @app.get("/timeout")
    async def timeout() -> None:
        raise TimeoutError

    @app.get("/bug")
    async def bug() -> None:
        raise ValueError("a bug")

    return app


async def _answers(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=_app())  # raises what the app lets escape, as a server would log it
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        with caplog.at_level(logging.WARNING):
            busy = await http.get("/busy")
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
            assert busy.json()["code"] == errors.SERVER_BUSY
            for path in ("/lost", "/timeout", "/lost"):
                lost = await http.get(path)
                assert lost.status_code == 503 and lost.json()["code"] == errors.DISCONNECTED
            with pytest.raises(ValueError, match="a bug"):  # only a bug escapes to the server's traceback
                await http.get("/bug")
    assert not [r for r in caplog.records if r.exc_info and r.levelno < logging.ERROR]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("redis unavailable" in m for m in warned) == 1  # the second /lost within 5 s: counted, not logged


def test_expected_faults_are_answered_503_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(_answers(caplog))
