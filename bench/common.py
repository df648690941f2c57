"""What every benchmark shares: the machine, percentiles, result rows, and an isolated environment.

Servers come from ``spot.infra.start`` on ports of their own (Kafka 29292, Redis 26579, embedded Postgres
under ``.spot/bench``), so a developer's ``spot up`` and the test servers are left alone. Each benchmark
gets a fresh database, Redis database and topic suffix (``fresh_env``), so no run sees another's data.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.segments import LOCAL_SEGMENT_S

ROOT = Path(__file__).resolve().parent.parent
# BENCH_* let two bench runs share a machine: each needs its own servers, state folder and service ports
STATE = Path(os.environ.get("BENCH_STATE", ROOT / ".spot" / "bench"))
RESULTS = Path(__file__).resolve().parent / "results"
KAFKA_PORT = int(os.environ.get("BENCH_KAFKA_PORT", "29292"))
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "26579"))
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "200"))  # 8200.. beside `spot up` (8000..), tests (8100..)
# memory, or disk: the broker on spot.objectstore (`spot up --durable-broker`), its files under STATE/broker
BROKER_STORAGE = os.environ.get("BENCH_BROKER_STORAGE", "memory")
STORE_PORT = int(os.environ.get("BENCH_STORE_PORT", str(KAFKA_PORT + 1)))  # the broker's, beside it


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "loadavg": loadavg(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "core_speed_ms": core_speed_ms()}


def core_speed_ms() -> float:
    """One core's speed: the best of three runs of a fixed pure-Python loop, in ms.

    Machines of the same name ("AMD EPYC, 2 cores") differed by 2x from one day to the next, which no figure of
    the fleet shows by itself; this number, taken before the run, lets two runs' figures be compared.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i & 7
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def loadavg() -> list[float]:
    """The 1/5/15-minute load: other work on the machine skews every figure, so it is recorded."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[i])


@dataclass
class Row:
    """One line of the table."""

    subject: str
    workload: str
    figure: str
    target: str
    reference: str
    ratio: str
    value: float | None = None  # the headline number, for the JSON
    unit: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}/s"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# --- servers and isolated environments ------------------------------------------------------------------

class Servers:
    """Tansu, embedded Postgres and Redis for the whole bench run (started once, stopped at the end)."""

    def __init__(self) -> None:
        self.infra: Any = None
        self.env: dict[str, str] = {}
        self._redis_db = 0

    def __enter__(self) -> Servers:
        from spot import infra

        STATE.mkdir(parents=True, exist_ok=True)
        saved = {k: os.environ.pop(k) for k in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL") if k in os.environ}
        storage: infra.BrokerStorage = "disk" if BROKER_STORAGE == "disk" else "memory"
        if storage == "disk":  # each run from an empty log, as on memory
            import shutil

            shutil.rmtree(STATE / infra.BROKER_DIR, ignore_errors=True)
        try:
            self.infra = infra.start(STATE, kafka_port=KAFKA_PORT, redis_port=REDIS_PORT, broker_storage=storage,
                                     store_port=STORE_PORT)
        finally:
            os.environ.update(saved)
        self.env = dict(self.infra.env)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.infra is not None:
            self.infra.stop()

    def fresh_env(self, partitions: int = 4, **extra: str) -> dict[str, str]:
        """A new database, Redis database and topic suffix; ``spot admin init`` is run on them."""
        import asyncpg
        import redis

        name = f"spot_bench_{secrets.token_hex(4)}"

        async def create() -> None:
            conn = await asyncpg.connect(self.env["DATABASE_URL"])
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        self._redis_db = self._redis_db % 15 + 1
        redis_url = self.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{self._redis_db}"
        redis.Redis.from_url(redis_url).flushdb()
        head, _, tail = self.env["DATABASE_URL"].partition("?")
        env = {
            "DATABASE_URL": head.rsplit("/", 1)[0] + f"/{name}" + (f"?{tail}" if tail else ""),
            "REDIS_URL": redis_url,
            "KAFKA_BOOTSTRAP": self.env["KAFKA_BOOTSTRAP"],
            "KAFKA_PARTITIONS": str(partitions),
            "KAFKA_SEGMENT_S": os.environ.get("BENCH_KAFKA_SEGMENT_S", str(LOCAL_SEGMENT_S)),  # as `spot up` runs it
            "TOPIC_SUFFIX": f".b{secrets.token_hex(3)}",
            "LOG_LEVEL": "WARNING",
            **extra,
        }
        with environ(env):
            from shared.config import Settings
            from spot import admin

            asyncio.run(admin.init(Settings()))
        return env


@contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    old = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


def settings_for(env: Mapping[str, str]) -> Any:
    from shared.config import Settings

    with environ(env):
        return Settings()


# --- service processes ---------------------------------------------------------------------------------

@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int


def start_service(name: str, env: Mapping[str, str], port: int, tag: str = "") -> Service:
    """``python -m services.<name>`` with the benchmark's environment, its log under ``.spot/bench``."""
    module = f"services.{name.replace('-', '_')}"
    log = STATE / f"{name}{tag}{env.get('TOPIC_SUFFIX', '')}.log"
    full = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", module], env=full, stdout=out, stderr=subprocess.STDOUT,
                             cwd=ROOT)
    return Service(name, p, log, port)


def wait_ready(services: Sequence[Service], timeout: float = 60) -> None:
    import urllib.request

    pending = list(services)
    deadline = time.monotonic() + timeout
    while pending:
        for s in list(pending):
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited with {s.proc.returncode}; see {s.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        pending.remove(s)
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout:.0f}s: {[s.name for s in pending]}")
        time.sleep(0.1)


def stop_services(services: Sequence[Service]) -> None:
    for s in services:
        if s.proc.poll() is None:
            s.proc.terminate()
    deadline = time.monotonic() + 15
    for s in services:
        try:
            s.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(5)


def rss_mb(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return None


# --- profiling -----------------------------------------------------------------------------------------

def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` with py-spy for ``seconds`` into collapsed stacks; None if py-spy is missing."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return None
    return subprocess.Popen([str(exe), "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200",
                             "-f", "raw", "--function", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(collapsed: Path, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Top functions by self and by inclusive share of samples, from py-spy's collapsed output."""
    from collections import Counter

    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    if not collapsed.exists():
        return {"self": [], "inclusive": []}
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        self_c[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return {"self": [], "inclusive": []}
    # the interpreter's and the event loop's own frames hold nearly every sample; they say nothing
    inner = [(f, c) for f, c in incl.most_common() if c < 0.85 * total]
    return {"self": [(f, round(100 * c / total, 1)) for f, c in self_c.most_common(n)],
            "inclusive": [(f, round(100 * c / total, 1)) for f, c in inner[:n]],
            "samples": [("total", float(total))]}


# --- where the CPU goes --------------------------------------------------------------------------------

def server_pids() -> dict[int, str]:
    """The pids of this bench run's own servers, by role: Tansu and Redis listening on its ports, and the
    embedded Postgres of its state folder with its backends. Other brokers, Redis and Postgres servers on
    the machine (another run, a test session, the system's own) are not the fleet's: they count as other.
    """
    import psutil

    out: dict[int, str] = {}
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        name, cmd = p.info.get("name") or "", " ".join(p.info.get("cmdline") or ())
        try:
            if "tansu" in name and f":{KAFKA_PORT}" in cmd:
                out[p.pid] = "tansu"
            elif "spot.objectstore" in cmd and str(STATE) in cmd:
                out[p.pid] = "objectstore"
            elif "redis" in name and any(c.laddr.port == REDIS_PORT for c in p.net_connections("tcp")):
                out[p.pid] = "redis"
            elif "postgres" in name and str(STATE / "pg") in cmd:  # the postmaster; its backends below
                out[p.pid] = "postgres"
                out.update({child.pid: "postgres" for child in p.children(recursive=True)})
        except psutil.Error:
            continue
    return out


def cpu_snapshot(named: Mapping[int, str]) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process on the machine, labelled by role.

    ``named`` labels the fleet's own pids, ``server_pids`` its servers (read again each time: Postgres
    starts a backend per new connection), the load generator is told by its command line; the rest is
    ``other`` (whatever else the machine runs, which a 2-core figure has to share the cores with).
    """
    import psutil

    labels = {**server_pids(), **named}
    out: dict[int, tuple[str, float]] = {}
    for p in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        info = p.info
        times = info.get("cpu_times")
        if times is None:
            continue
        pid, cmd = info["pid"], " ".join(info.get("cmdline") or ())
        label = labels.get(pid) or ("loadgen" if "bench.loadgen" in cmd else "other")
        out[pid] = (label, times.user + times.system)
    return out


def cpu_spent(before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per label between two snapshots (a process that started in between counts whole)."""
    spent: dict[str, float] = {}
    for pid, (label, cpu) in after.items():
        was = before.get(pid)
        spent[label] = spent.get(label, 0.0) + cpu - (was[1] if was and was[0] == label else 0.0)
    return {k: round(v, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
