"""``kafka._stop``: a client that cannot stop cleanly is dropped, and never ends the service.

aiokafka's fetcher, closing, cancels a fetch still pending (one backing off after the broker went silent) and
awaits it without catching the CancelledError, so ``consumer.stop()`` raises it. Seen in the black-hole chaos
test: the trade-archiver exited after the broker came back. A cancel aimed at the stopping task itself still
goes on up.
"""

from __future__ import annotations

import asyncio

import pytest

from shared.kafka import _stop


class _LeaksCancel:
    async def stop(self) -> None:
        raise asyncio.CancelledError  # as aiokafka's Fetcher.close lets a pending fetch's cancel out


class _Slow:
    async def stop(self) -> None:
        await asyncio.sleep(60)


def test_a_cancel_leaking_out_of_stop_is_dropped() -> None:
    asyncio.run(_stop(_LeaksCancel(), "consumer test"))


def test_a_cancel_aimed_at_the_stopping_task_goes_on_up() -> None:
    async def scenario() -> None:
        task = asyncio.create_task(_stop(_Slow(), "consumer test"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
