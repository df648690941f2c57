"""``spot up`` owns its servers: it adopts none it did not start, says where its own are before it is ready,
and a ``kill -9`` of it leaves no process behind.

Each test runs ``spot up`` as a subprocess on a temporary state folder, with ports of its own (Kafka,
Redis, and the services at an offset beside the other fleets of this test run).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import redis

from spot import ports
from spot.children import die_with_parent
from spot.infra import port_open, redis_binary
from tests.e2e.conftest import PORT_OFFSET
from tests.faults import free_port

pytestmark = pytest.mark.e2e

UP_OFFSET = PORT_OFFSET + 50  # services at 8000 + this: clear of the fleets (PORT_OFFSET) and their replicas
READY_WITHIN_S, GONE_WITHIN_S = 180.0, 30.0
SERVER_KEYS = ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL")


def _spot_up(state: Path, kafka_port: int, redis_port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in (*SERVER_KEYS, "TOPIC_SUFFIX", "PORT")}
    env["LOG_LEVEL"] = "WARNING"
    return subprocess.Popen(
        [sys.executable, "-m", "spot.cli", "up", "--state-dir", str(state), "--kafka-port", str(kafka_port),
         "--redis-port", str(redis_port), "--port-offset", str(UP_OFFSET), "--partitions", "2"],
        env=env,
        cwd=state.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent(),  # this test run killed: its `spot up` goes too
    )  # fmt: skip


def _children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command may hold spaces and parentheses
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line."""
    tree, found, todo = _children_by_parent(), {}, [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found[child] = ports.describe(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, or at least not a zombie waiting to be reaped."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Up:
    proc: subprocess.Popen[str]
    state: Path
    lines: list[str] = field(default_factory=list)

    def read_until(self, marker: str, within: float = READY_WITHIN_S) -> None:
        """Read stdout until a line holds ``marker`` (the deadline is checked between lines)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if marker in line:
                return
            assert time.monotonic() < deadline, f"no {marker!r} within {within:.0f}s:\n" + "\n".join(self.lines)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        raise AssertionError(f"spot up ended before {marker!r}:\n" + "\n".join(self.lines) + "\n" + err)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / ".spot"


@pytest.fixture
def foreign_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server this test started, as a crashed earlier `spot up` would have left it."""
    port = free_port()
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),
    )
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
        time.sleep(0.05)
    try:
        yield proc, port
    finally:
        proc.kill()
        proc.wait()


def test_spot_up_refuses_a_foreign_redis_on_its_port_naming_it_and_starts_nothing(
    state: Path, foreign_redis: tuple[subprocess.Popen[bytes], int]
) -> None:
    holder, redis_port = foreign_redis
    kafka_port = free_port()
    up = _spot_up(state, kafka_port, redis_port)
    try:
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 1, (out, err)
    refusal = [line for line in err.splitlines() if line.strip()]
    assert len(refusal) == 1, err  # one clear line, no traceback
    assert f"port {redis_port}" in refusal[0] and f"pid {holder.pid}" in refusal[0], refusal
    assert "redis-server" in refusal[0], refusal
    assert not port_open(kafka_port), "the broker was started anyway"
    assert not (state / "pg").exists(), "postgres was started anyway"
    assert not (state / "env").exists()
    assert holder.poll() is None, "the foreign redis-server was touched"


def test_spot_up_writes_its_env_before_ready_and_kill_9_leaves_no_process(state: Path) -> None:
    kafka_port, redis_port = free_port(), free_port()
    up = Up(_spot_up(state, kafka_port, redis_port), state)
    try:
        up.read_until("migrations applied")  # printed before any service starts
        env = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines())
        # the servers, the log segments setting and the local key files
        assert set(env) == {*SERVER_KEYS, "KAFKA_SEGMENT_S", "ENVELOPE_KEY_FILE", "SERVICE_KEY_FILE"}, env
        assert env["KAFKA_BOOTSTRAP"] == f"127.0.0.1:{kafka_port}" and port_open(kafka_port)
        assert env["REDIS_URL"] == f"redis://127.0.0.1:{redis_port}/0"
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        assert str(state / "pg") in env["DATABASE_URL"], env  # its own embedded Postgres
        assert env["ENVELOPE_KEY_FILE"] == str(state.resolve() / "envelope.key"), env  # its keys with its state

        async def database_answers() -> int:
            conn = await asyncpg.connect(env["DATABASE_URL"])
            try:
                return int(await conn.fetchval("SELECT 1"))
            finally:
                await conn.close()

        assert asyncio.run(database_answers()) == 1
        up.read_until("spot exchange is up")
        children = descendants(up.proc.pid)
        commands = " ".join(children.values())
        for expected in ("tansu", "redis-server", "postgres -D", "services.gateway", "services.matcher"):
            assert expected in commands, (expected, children)
        assert sum("-m services." in c for c in children.values()) == 7, children
        up.proc.send_signal(signal.SIGKILL)
        up.proc.wait(10)
        deadline = time.monotonic() + GONE_WITHIN_S
        while left := {pid: cmd for pid, cmd in children.items() if alive(pid)}:
            assert time.monotonic() < deadline, f"left behind after kill -9: {left}"
            time.sleep(0.2)
        assert not port_open(kafka_port) and not port_open(redis_port)
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()
