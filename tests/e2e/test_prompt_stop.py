"""Every service stops promptly, with exit code 0, on SIGTERM while it waits for a dependency at start-up.

A container stop sends SIGTERM and, after the grace period, SIGKILL: a service that ignores the first while
it waits for Postgres or the broker holds a rollout for the whole grace period and dies unclean.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from shared.config import Settings
from spot import admin
from spot.fleet import SERVICES, Fleet
from tests.faults import free_port

pytestmark = pytest.mark.e2e

PORT_OFFSET = int(os.environ.get("SPOT_TEST_PORT_OFFSET", "100"))
PROMPT_S = 3.0
# what a service logs while it waits: a retry loop (shared.postgres, .redis, .kafka, .identity), or the consumer
# services' outage loop (shared.lifecycle)
WAITING = ("not reachable", "serving again in")


def _nowhere() -> str:
    """An address where nothing listens (a port just freed)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def waiting_fleet(request: pytest.FixtureRequest, fresh_env: dict[str, str]) -> Iterator[Fleet]:
    """Every service started with one dependency unreachable, each once it logged that it waits for it (or,
    not needing it, serves)."""
    env = dict(fresh_env, LOG_LEVEL="INFO")
    if request.param == "postgres":  # the first thing every service reaches for
        env["DATABASE_URL"] = f"postgresql://spot@{_nowhere()}/spot"
    else:  # Postgres and Redis answer, the fleet exists: the broker is what it waits for
        old = dict(os.environ)
        os.environ.update(env)
        try:
            asyncio.run(admin.init(Settings()))
        finally:
            os.environ.clear()
            os.environ.update(old)
        env["KAFKA_BOOTSTRAP"] = _nowhere()
    fleet = Fleet(env, port_offset=PORT_OFFSET, log=None)
    try:
        fleet.start_all()
        deadline = time.monotonic() + 60
        for name in SERVICES:
            # each says it waits for the dependency it cannot reach, or serves without it
            while not any(w in line for line in fleet.tails[name] for w in WAITING) and not fleet.ready(name):
                assert fleet.procs[name].poll() is None, "\n".join(fleet.tails[name])
                assert time.monotonic() < deadline, f"{name} never said it waits: " + "\n".join(fleet.tails[name])
                time.sleep(0.1)
        yield fleet
    finally:
        fleet.stop()


@pytest.mark.parametrize("waiting_fleet", ["postgres", "kafka"], indirect=True)
def test_sigterm_while_waiting_for_a_dependency_stops_every_service_at_once_with_code_0(waiting_fleet: Fleet) -> None:
    began = time.monotonic()
    for p in waiting_fleet.procs.values():
        p.send_signal(signal.SIGTERM)
    outcomes: dict[str, tuple[int | None, float]] = {}
    for name, p in waiting_fleet.procs.items():
        try:
            code: int | None = p.wait(max(0.1, began + PROMPT_S - time.monotonic()))
        except Exception:
            code = None
        outcomes[name] = (code, round(time.monotonic() - began, 2))
    late = {name: o for name, o in outcomes.items() if o[0] != 0}
    assert not late, f"exit code, seconds after SIGTERM (None: still running after {PROMPT_S}s): {late}"
    time.sleep(0.2)  # the pumps read the last lines
    for name, tail in waiting_fleet.tails.items():  # a clean stop, not reported as a failure
        said = "\n".join(tail)
        assert "Traceback" not in said and "startup failed" not in said, f"{name}:\n{said}"
