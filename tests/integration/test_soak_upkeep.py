"""The soak's count of the servers' own upkeep, on the real servers: a checkpoint and a Redis fork show in it."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import redis

from bench.soak import _upkeep_counts, upkeep


def test_a_checkpoint_and_a_redis_fork_show_in_the_upkeep_counted(fresh_env: dict[str, str]) -> None:
    url, redis_url = fresh_env["DATABASE_URL"], fresh_env["REDIS_URL"]
    before = asyncio.run(_upkeep_counts(url, redis_url))

    async def checkpoint() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    asyncio.run(checkpoint())
    client = redis.Redis.from_url(redis_url)
    try:
        forks = int(client.info("stats")["total_forks"])
        client.bgsave()
        deadline = time.monotonic() + 10
        while int(client.info("stats")["total_forks"]) == forks and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.close()
    ran = upkeep(before, asyncio.run(_upkeep_counts(url, redis_url)))
    assert ran["checkpoints"] >= 1 and ran["redis_forks"] >= 1, ran
    assert ran["autovacuum"] >= 0 and ran["autoanalyze"] >= 0
