"""Run the services as separate processes with prefixed logs, health checks and a clean stop.

Used by ``spot up`` and by the end-to-end tests, so both start the fleet the same way. Each service dies
with the process that started it (``spot.children``), so a killed ``spot up`` or test run leaves none behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from shared.config import SERVICE_PORTS, database_role

from .children import die_with_parent
from .infra import refuse_taken

SERVICES = ("ingestion", "order-processor", "matcher", "settlement", "market-data", "trade-archiver", "gateway")
MODULES = {name: f"services.{name.replace('-', '_')}" for name in SERVICE_PORTS}
COLORS = ("36", "33", "35", "32", "34", "31", "96")


TAIL_LINES = 40
# Stopping without losing what the broker holds: the entry first, then each consumer once it has caught up.
DRAIN_STAGES: tuple[frozenset[str], ...] = (
    frozenset({"gateway", "ingestion"}),
    frozenset({"order-processor"}),
    frozenset({"matcher"}),
    frozenset({"settlement", "market-data", "trade-archiver"}),
)
DRAIN_QUIET_S = 1.0  # caught up this long with nothing upstream: every batch in hand is done (they take ms)
DRAIN_TIMEOUT_S = 30.0
REPLICA_PORT_STEP = 10
# Each service's connections act as its own Postgres role (spot_<service>, migration 0010: only what its
# statements need). DATABASE_ROLES=off runs them as the connecting user, for a database whose migrating user
# could not create roles.
ROLES_OFF = "off"


# How a service is started: its argv, given its name (``matcher``, ``matcher#1``) and the environment it gets
# on top of ours. The default is a process of this Python; the image test starts each in a container.
Launcher = Callable[[str, Mapping[str, str]], list[str]]


def python_module(name: str, env: Mapping[str, str]) -> list[str]:
    """A service as a process of this Python interpreter (``spot up``)."""
    return [sys.executable, "-m", MODULES[name.partition("#")[0]]]


def _pump(prefix: str, stream: IO[bytes], out: IO[str] | None, tail: deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        tail.append(line)
        if out is not None:
            out.write(f"{prefix} {line}\n")
            out.flush()


@dataclass
class Fleet:
    env: Mapping[str, str]
    host: str = "127.0.0.1"
    log: IO[str] | None = sys.stdout
    port_offset: int = 0  # tests run a second fleet beside a developer's `spot up`
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tails: dict[str, deque[str]] = field(default_factory=dict)  # the last lines of each service, for errors
    launcher: Launcher = python_module

    def port(self, name: str) -> int:
        """A second replica of a service is named ``service#1`` and listens 10 ports further on."""
        service, _, replica = name.partition("#")
        return SERVICE_PORTS[service] + self.port_offset + REPLICA_PORT_STEP * int(replica or 0)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        refuse_taken(self.port(name), name)  # another fleet still running, most likely
        own = {
            **self.env,
            "PORT": str(self.port(name)),
            "HOST": self.host,
            "INGESTION_URL": f"http://127.0.0.1:{self.port('ingestion')}",
        }
        if {**os.environ, **own}.get("DATABASE_ROLES", "").lower() != ROLES_OFF:
            own["DATABASE_ROLE"] = database_role(name.partition("#")[0])
        p = subprocess.Popen(
            self.launcher(name, own),
            env={**os.environ, **own},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `spot up` only, which stops services before servers
            preexec_fn=die_with_parent(signal.SIGKILL),  # a crash each service is built to survive
        )
        color = COLORS[list(SERVICE_PORTS).index(name.partition("#")[0]) % len(COLORS)]
        prefix = f"\033[{color}m{name:>15} |\033[0m" if self.log is not None and self.log.isatty() else f"{name:>15} |"
        assert p.stdout is not None
        tail = self.tails[name] = deque(maxlen=TAIL_LINES)
        threading.Thread(target=_pump, args=(prefix, p.stdout, self.log, tail), daemon=True).start()
        self.procs[name] = p
        return p

    def start_all(self, names: Iterable[str] = SERVICES) -> None:
        for name in names:
            self.start(name)

    def ready(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(name)}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, names: Iterable[str] | None = None, timeout: float = 60) -> None:
        pending = set(names or self.procs)
        deadline = time.monotonic() + timeout
        while pending:
            for name in list(pending):
                p = self.procs[name]
                if p.poll() is not None:
                    time.sleep(0.2)  # let the pump read the last words
                    last = "\n".join(self.tails.get(name, ()))
                    raise RuntimeError(f"{name} exited with code {p.returncode} during start-up:\n{last}")
                if self.ready(name):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[name]
        p.send_signal(sig)
        p.wait(15)

    def lag(self, name: str) -> float | None:
        """Records the service's consumers are behind (``spot_kafka_consumer_lag`` summed), None if it does not
        answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(name)}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("spot_kafka_consumer_lag{")
        )

    def drain(self, quiet_s: float = DRAIN_QUIET_S, timeout: float = DRAIN_TIMEOUT_S) -> list[str]:
        """Stop the fleet stage by stage, each once its consumers have been caught up for ``quiet_s`` (nothing
        upstream of it runs any more): every record on every topic is then consumed, so the broker's log holds
        nothing that matters. Returns what kept it from draining ([] when it drained)."""
        problems: list[str] = []
        for index, stage in enumerate(DRAIN_STAGES):
            names = [n for n in self.procs if n.partition("#")[0] in stage]
            deadline, quiet_since = time.monotonic() + timeout, None
            while names and index > 0:  # the entry has no consumers: it is stopped first, at once
                lags = {n: self.lag(n) for n in names}
                caught_up = all(lag == 0 for lag in lags.values())
                quiet_since = (quiet_since or time.monotonic()) if caught_up else None
                if quiet_since is not None and time.monotonic() - quiet_since >= quiet_s:
                    break
                if time.monotonic() > deadline:
                    problems.append(f"not caught up after {timeout:.0f}s: {lags}")
                    break
                time.sleep(0.1)
            for n in names:
                code = self._stop_one(n)
                if code != 0 and index > 0:  # the entry holds nothing; a consumer must finish its batch
                    problems.append(f"{n} stopped with code {code}")
        return problems

    def _stop_one(self, name: str) -> int | None:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            return None

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
