"""Admission by measured backlog on a real Redis: the processor's reports (``Reporter``, in the pipeline it
executes anyway) reach every gateway's ``Gate``, which refuses by them without I/O of its own."""

from __future__ import annotations

import asyncio

from shared import pressure
from shared import redis as sredis
from shared.config import Settings


def _settings(env: dict[str, str], budget_ms: int) -> Settings:
    return Settings(redis_url=env["REDIS_URL"], topic_suffix=env["TOPIC_SUFFIX"], admit_backlog_ms=budget_ms)


async def _scenario(env: dict[str, str]) -> None:
    settings = _settings(env, 100)
    async with sredis.client(settings) as cache:
        reporter = pressure.Reporter(settings, "order-processor")
        draws = iter([0.99, 0.5, 0.2] * 10)
        gate = pressure.Gate(cache, settings, draw=lambda: next(draws))

        async def report(waited_ms: int) -> None:
            reporter._last_ms = 0  # a report is due
            pipe = cache.pipeline(transaction=False)
            now = pressure.now_ms()
            reporter.queue(pipe, now - waited_ms, now)
            await pipe.execute()

        await gate.read()
        assert gate.backlog_ms == 0 and gate.admits()  # no report: nothing to refuse for
        await report(150)  # half the budget over: half of new orders refused, once the readings held
        for _ in range(pressure.READINGS - 1):
            await gate.read()
            assert gate.backlog_ms == 0  # a moment is not enough: a slow batch or two refuse nothing
        await gate.read()
        assert gate.backlog_ms == 150
        assert [gate.admits() for _ in range(3)] == [True, True, False]  # draws 0.99, 0.5, 0.2 against 0.5
        await report(400)
        await gate.read()
        assert gate.backlog_ms == 150  # what all the last readings reached
        for _ in range(pressure.READINGS - 1):
            await gate.read()
        assert gate.backlog_ms == 400
        assert not any(gate.admits() for _ in range(3))  # twice the budget and more: every new order refused
        await report(20)
        await gate.read()
        assert gate.backlog_ms == 20 and gate.admits()  # drained: admitted at the first reading
        # a replica that stopped reporting long ago is pruned from the hash
        await cache.hset(pressure.key(settings), "order-processor:gone:1", pressure.encode(5_000, 1))
        await gate.read()
        assert b"order-processor:gone:1" not in await cache.hgetall(pressure.key(settings))
        assert gate.backlog_ms == 20


def test_reports_reach_the_gate_which_refuses_a_growing_share_then_admits(
    fresh_env: dict[str, str],
) -> None:
    asyncio.run(_scenario(fresh_env))


async def _off(env: dict[str, str]) -> None:
    settings = _settings(env, 0)
    async with sredis.client(settings) as cache:
        gate = pressure.Gate(cache, settings)
        await gate.start()  # off: no task, no reads
        pipe = cache.pipeline(transaction=False)
        pressure.Reporter(settings, "order-processor").queue(pipe, 0, pressure.now_ms())
        await pipe.execute()
        assert await cache.hgetall(pressure.key(settings)) == {}
        assert gate.admits()
        await gate.stop()


def test_a_budget_of_zero_reports_nothing_and_admits_everything(fresh_env: dict[str, str]) -> None:
    asyncio.run(_off(fresh_env))
