"""Bounded pools on real servers: past capacity a request waits ``pool_wait_ms`` and is refused with
Binance's -1008, never an unbounded queue or a raw ``MaxConnectionsError``; ingestion's client-id claims
share one connection per event-loop turn; and an expected fault is answered without a traceback.

The claims are the cause of issue 27's collapse: at 300 orders/s, once the fleet slowed, ingestion had a
few hundred requests in flight, each claiming its client order id with a lone ``SET`` that held a pooled
connection for its round trip, and redis-py's pool (100) raised ``MaxConnectionsError``.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError

from shared import errors, postgres
from shared import redis as sredis
from shared.config import Settings
from shared.http import add_error_handlers
from shared.postgres import PostgresPoolExhausted
from shared.redis import BatchedCommands, RedisPoolExhausted

CLAIMS = 300  # requests in flight at once


def _settings(env: dict[str, str], **overrides: object) -> Settings:
    return Settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"], **overrides)  # type: ignore[arg-type]


async def _claims(env: dict[str, str]) -> None:
    settings = _settings(env, redis_pool_max=2, pool_wait_ms=200)
    async with sredis.client(settings) as cache:
        # lone commands: each holds a connection for its round trip, so most wait; BLPOP holds two for 0.5 s
        blockers = [asyncio.ensure_future(cache.blpop([f"pool:block:{i}"], timeout=0.5)) for i in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(RedisPoolExhausted) as refused:
            await cache.set("pool:lone", 1)
        assert refused.value.code == errors.SERVER_BUSY and refused.value.http_status == 503
        assert isinstance(refused.value, RedisConnectionError)  # a consumer treats it as an outage: backoff
        await asyncio.gather(*blockers)
        # the same pool of two serves 300 concurrent claims when they are batched: one connection per turn
        claims = BatchedCommands(cache)
        taken = await asyncio.gather(*(claims("SET", f"pool:coid:{i % 150}", i, "NX", "EX", 60) for i in range(CLAIMS)))
        assert [bool(t) for t in taken] == [True] * 150 + [False] * 150  # the second claim of an id is refused
        assert await cache.ttl("pool:coid:7") > 0  # a claim is a window, not forever
        assert await claims("DEL", "pool:coid:7") == 1


def test_a_full_redis_pool_refuses_after_its_wait_and_batched_claims_fit_in_two_connections(
    fresh_env: dict[str, str],
) -> None:
    asyncio.run(_claims(fresh_env))


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
