"""Replicas join and leave while orders flow: Kafka moves symbols between them, nothing lost or doubled.

A second matcher and a second order processor join the flow (the two symbols sit on different
partitions, so each replica takes one), then the original of each leaves, the matcher by a crash
(SIGKILL) and the processor politely (SIGTERM), so the newcomers end up with every partition. Every
rebalance hands a symbol's book from one matcher to another through Redis; the outcome must still equal
the replay through the pure core.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from services.matcher.pipeline import partition_of
from spot.fleet import Fleet
from tests.chaos.test_crash_replay import Disturbance, _flow
from tests.chaos.test_crash_replay import fleet as fleet  # one log segment: the comparison replays the whole log

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


def join(name: str) -> Disturbance:
    def act(fleet: Fleet) -> None:
        fleet.start(name)
        fleet.wait_ready([name], 60)

    return f"{name} joined", act


def leave(name: str, sig: int) -> Disturbance:
    def act(fleet: Fleet) -> None:
        fleet.kill(name, sig)

    return f"{name} left ({signal.Signals(sig).name})", act


def test_symbols_split_across_partitions() -> None:
    assert partition_of("BTCUSDT", 2) != partition_of("ETHUSDT", 2), "two replicas must each get a symbol"


@pytest.mark.timeout(900)
def test_replicas_joining_and_leaving_change_nothing(fleet: Any) -> None:
    asyncio.run(
        _flow(
            fleet,
            [
                join("matcher#1"),
                join("order-processor#1"),
                leave("matcher", signal.SIGKILL),
                leave("order-processor", signal.SIGTERM),
            ],
            one_at_a_time=True,
        )
    )
