"""A stop request ends every wait for a dependency (the pause between tries, a try that hangs) with a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from aiokafka.errors import KafkaConnectionError

from shared import lifecycle, shutdown
from shared.config import Settings

HANG_S = 60.0  # a try that would outlast any test: only the stop request can end it in time


async def _stop_soon(delay_s: float = 0.05) -> None:
    await asyncio.sleep(delay_s)
    shutdown.request()  # as the SIGTERM handler does, from the loop, outside the waiting task


def test_a_try_that_hangs_ends_in_stopping_as_soon_as_the_stop_is_requested():
    async def main() -> float:
        asyncio.get_running_loop().call_later(0.05, shutdown.request)
        began = time.monotonic()
        with pytest.raises(shutdown.Stopping):
            async with shutdown.attempt():
                await asyncio.wait_for(asyncio.Event().wait(), HANG_S)  # a client's own bound, as asyncpg's
        return time.monotonic() - began

    assert asyncio.run(main()) < 1.0


def test_nested_tries_end_in_one_stopping():
    async def main() -> list[str]:
        seen = []
        stopper = asyncio.ensure_future(_stop_soon())
        try:
            async with shutdown.attempt():
                try:
                    async with shutdown.attempt():
                        await asyncio.sleep(HANG_S)
                except asyncio.CancelledError:
                    seen.append("inner passes the cancellation on")
                    raise
        except shutdown.Stopping:
            seen.append("outer stops")
        await stopper
        return seen

    assert asyncio.run(main()) == ["inner passes the cancellation on", "outer stops"]


def test_a_library_that_swallows_the_cancellation_still_stops():
    async def swallowing_connect() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(HANG_S)
        return "a connection, too late"

    async def main() -> None:
        stopper = asyncio.ensure_future(_stop_soon())
        with pytest.raises(shutdown.Stopping):
            async with shutdown.attempt():
                await swallowing_connect()
        await stopper

    asyncio.run(main())


def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    async def main() -> None:
        async def trying() -> None:
            async with shutdown.attempt():
                await asyncio.sleep(HANG_S)

        task = asyncio.ensure_future(trying())
        await asyncio.sleep(0.05)
        task.cancel()  # e.g. a test's timeout: not a stop request
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not shutdown.requested()

    asyncio.run(main())


def test_a_try_begun_after_the_stop_request_is_not_made():
    async def main() -> None:
        shutdown.request()
        with pytest.raises(shutdown.Stopping):
            async with shutdown.attempt():
                raise AssertionError("the try must not run")
        with pytest.raises(shutdown.Stopping):
            await shutdown.pause(HANG_S)

    asyncio.run(main())


def test_a_try_that_finishes_before_the_stop_is_kept():
    async def main() -> str:
        async with shutdown.attempt():
            result = "connected"
        shutdown.request()
        return result

    assert asyncio.run(main()) == "connected"


# --- a consumer service's serving loop (shared.lifecycle.serve_through_outages) -----------------------------


def _outage_loop(monkeypatch: pytest.MonkeyPatch, fails: Exception) -> asyncio.Event:
    """``serve_through_outages`` whose fleet check fails with ``fails`` just after SIGTERM arrived: the stop
    request and the failing try to reach the broker race, as they did for market-data under load."""
    stop = asyncio.Event()

    async def verify(_: Settings) -> None:
        stop.set()  # the SIGTERM handler ran while the try was in flight...
        shutdown.request()
        raise fails  # ...and the try failed after it

    monkeypatch.setattr(lifecycle.identity, "verify", verify)
    return stop


async def _never_served(settings: Settings, stop: asyncio.Event, health: lifecycle.Health) -> None:
    raise AssertionError("serve must not be reached")


def test_an_outage_met_after_the_stop_request_is_a_clean_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        stop = _outage_loop(monkeypatch, KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]"))
        health = lifecycle.Health()
        await lifecycle.serve_through_outages(_never_served, Settings(), stop, health, logging.getLogger("t"))

    asyncio.run(main())  # returns: the process exits 0, not 1 with a traceback


def test_a_bug_met_after_the_stop_request_still_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        stop = _outage_loop(monkeypatch, ValueError("a bug"))
        health = lifecycle.Health()
        await lifecycle.serve_through_outages(_never_served, Settings(), stop, health, logging.getLogger("t"))

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(main())
