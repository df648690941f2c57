"""Every service stops promptly, with exit code 0, on SIGTERM while it waits for a dependency at start-up.

A container stop sends SIGTERM and, after the grace period, SIGKILL: a service that ignores the first while
it waits for Postgres or the broker holds a rollout for the whole grace period and dies unclean.

Two ways to wait: between tries (an address that refuses at once), and in a try that hangs (an address that
drops every SYN, as a firewall or a security group does: ``tests.faults.syn_blackhole``). For the second the
dependencies' timeouts are raised to a minute, so each service is certainly inside its try when it is told to
stop; it used to finish the try first (5-15 s with the default timeouts).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from shared.config import Settings
from spot import admin
from spot.fleet import SERVICES, Fleet
from tests.faults import free_port, syn_blackhole

pytestmark = pytest.mark.e2e

PORT_OFFSET = int(os.environ.get("SPOT_TEST_PORT_OFFSET", "100"))
PROMPT_S = 3.0
# what a service logs while it waits: a retry loop (shared.postgres, .redis, .kafka, .identity), or the consumer
# services' outage loop (shared.lifecycle)
WAITING = ("not reachable", "serving again in")


def _nowhere() -> str:
    """An address where nothing listens (a port just freed)."""
    return f"127.0.0.1:{free_port()}"


def _initialised(env: dict[str, str]) -> None:
    """The fleet exists (``spot admin init`` on the test's database, Redis and broker)."""
    old = dict(os.environ)
    os.environ.update(env)
    try:
        asyncio.run(admin.init(Settings()))
    finally:
        os.environ.clear()
        os.environ.update(old)


@pytest.fixture
def waiting_fleet(request: pytest.FixtureRequest, fresh_env: dict[str, str]) -> Iterator[Fleet]:
    """Every service started with one dependency unreachable, each once it logged that it waits for it (or,
    not needing it, serves)."""
    env = dict(fresh_env, LOG_LEVEL="INFO")
    if request.param == "postgres":  # the first thing every service reaches for
        env["DATABASE_URL"] = f"postgresql://spot@{_nowhere()}/spot"
    else:  # Postgres and Redis answer, the fleet exists: the broker is what it waits for
        _initialised(env)
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
    _stops_at_once(waiting_fleet)


HANGING_TIMEOUT_MS = "60000"  # every try outlasts the test: only the stop request can end it in time
AWS_TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def _reaching(pid: int, port: int) -> bool:
    """Whether the process has a connection to ``port`` open or opening (SYN_SENT)."""
    try:
        return any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections(kind="tcp"))
    except psutil.Error:
        return False


@pytest.fixture
def hanging_fleet(request: pytest.FixtureRequest, fresh_env: dict[str, str]) -> Iterator[Fleet]:
    """Every service started with one dependency's address dropping SYNs, each once it is inside a try to
    reach it (a connection to it in SYN_SENT), or, not needing it, serving."""
    env = dict(
        fresh_env,
        LOG_LEVEL="INFO",
        POSTGRES_TIMEOUT_MS=HANGING_TIMEOUT_MS,
        REDIS_TIMEOUT_MS=HANGING_TIMEOUT_MS,
        KAFKA_REQUEST_TIMEOUT_MS=HANGING_TIMEOUT_MS,
    )
    if request.param != "postgres":  # the fleet exists (the gateway's role too), then one address fails
        _initialised(env)
    with syn_blackhole() as port:
        where = f"127.0.0.1:{port}"
        if request.param == "postgres":  # the first thing every service reaches for
            env["DATABASE_URL"] = f"postgresql://spot@{where}/spot"
        elif request.param == "redis":  # reached right after Postgres, by every service
            env["REDIS_URL"] = f"redis://{where}/0"
        elif request.param == "kafka":  # Postgres and Redis answer
            env["KAFKA_BOOTSTRAP"] = where
        else:  # Aurora's password from Secrets Manager, whose endpoint does not answer (no route to it)
            assert request.param == "secrets-manager"
            env.update(AWS_TEST_KEYS, DATABASE_SECRET_ID="spot/database", AWS_ENDPOINT_URL=f"http://{where}")
        fleet = Fleet(env, port_offset=PORT_OFFSET, log=None)
        try:
            fleet.start_all()
            deadline = time.monotonic() + 60
            for name in SERVICES:
                # the gateway needs no broker (it hands orders to ingestion over HTTP): it serves
                while not _reaching(fleet.procs[name].pid, port) and not fleet.ready(name):
                    assert fleet.procs[name].poll() is None, "\n".join(fleet.tails[name])
                    assert time.monotonic() < deadline, f"{name} never tried {where}: " + "\n".join(fleet.tails[name])
                    time.sleep(0.1)
            yield fleet
        finally:
            fleet.stop()


@pytest.mark.parametrize("hanging_fleet", ["postgres", "redis", "kafka", "secrets-manager"], indirect=True)
def test_sigterm_while_a_connect_hangs_stops_every_service_at_once_with_code_0(hanging_fleet: Fleet) -> None:
    _stops_at_once(hanging_fleet)


def _stops_at_once(fleet: Fleet) -> None:
    """SIGTERM to every service: each exits with code 0 within ``PROMPT_S``, and says nothing of a failure."""
    began = time.monotonic()
    for p in fleet.procs.values():
        p.send_signal(signal.SIGTERM)
    outcomes: dict[str, tuple[int | None, float]] = {}
    for name, p in fleet.procs.items():
        try:
            code: int | None = p.wait(max(0.1, began + PROMPT_S - time.monotonic()))
        except Exception:
            code = None
        outcomes[name] = (code, round(time.monotonic() - began, 2))
    late = {name: o for name, o in outcomes.items() if o[0] != 0}
    assert not late, f"exit code, seconds after SIGTERM (None: still running after {PROMPT_S}s): {late}"
    time.sleep(0.2)  # the pumps read the last lines
    for name, tail in fleet.tails.items():  # a clean stop, not reported as a failure
        said = "\n".join(tail)
        assert "Traceback" not in said and "startup failed" not in said, f"{name}:\n{said}"
