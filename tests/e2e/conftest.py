"""The whole fleet as separate processes, as ``spot up`` starts it, on a fresh database and topics."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pytest

from shared.config import Settings
from spot import admin
from spot.fleet import Fleet, Launcher, python_module
from tests.conftest import drop_env, make_env

PORT_OFFSET = int(os.environ.get("SPOT_TEST_PORT_OFFSET", "100"))  # 8100.. beside a developer's fleet on 8000..


@dataclass
class RunningFleet:
    fleet: Fleet
    settings: Settings
    base: str


def _run(
    fresh_env: dict[str, str], launcher: Launcher = python_module, log: IO[str] | None = None
) -> Iterator[RunningFleet]:
    """A fleet on ``fresh_env`` (initialised here), each service started by ``launcher``, ready; its services'
    lines go to ``log`` (stderr with ``SPOT_TEST_LOGS`` set)."""
    old = dict(os.environ)
    os.environ.update(fresh_env)
    settings = Settings()
    asyncio.run(admin.init(settings))
    log = sys.stderr if os.environ.get("SPOT_TEST_LOGS") else log
    f = Fleet(fresh_env, port_offset=PORT_OFFSET, log=log, launcher=launcher)
    try:
        f.start_all()
        f.wait_ready(timeout=90)
        yield RunningFleet(f, settings, f"http://127.0.0.1:{f.port('gateway')}")
    finally:
        f.stop()
        os.environ.clear()
        os.environ.update(old)


REDIS_KINDS = ("redis", "redis-cluster")  # ``@pytest.mark.parametrize("fleet", REDIS_KINDS, indirect=True)``


def fleet_of_kind(request: pytest.FixtureRequest, servers: dict[str, str], **extra: str) -> Iterator[RunningFleet]:
    """A fleet of its own, on a Redis Cluster when the test is parametrized with ``"redis-cluster"``, with
    ``extra`` settings; its topics and database go when it ends."""
    kind = getattr(request, "param", "redis")
    assert kind in REDIS_KINDS, kind
    cluster = request.getfixturevalue("redis_cluster") if kind == "redis-cluster" else None
    env = make_env(servers, cluster)
    try:
        yield from _run({**env, **extra})
    finally:
        drop_env(servers, env)


@pytest.fixture
def fleet(request: pytest.FixtureRequest, servers: dict[str, str]) -> Iterator[RunningFleet]:
    """A fleet of its own for one test; on a Redis Cluster when parametrized with ``"redis-cluster"``."""
    yield from fleet_of_kind(request, servers)


@pytest.fixture(scope="module")
def shared_fleet(module_env: dict[str, str]) -> Iterator[RunningFleet]:
    """One fleet for every test of a module (each test creates its own users)."""
    yield from _run(module_env)
