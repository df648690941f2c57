"""Benchmark 5: the soak. The default fleet for ``--minutes`` at ``--rate`` requests/s, open loop.

``make bench ARGS="soak --rate 300 --minutes 60"``. The fleet is started exactly as ``spot up`` starts it
(``spot.fleet``, every service, the default settings: no tuning, the default rate limits and open-order
cap), on a fresh database, Redis database and topics of the bench's servers. ``bench/soakload.py`` drives
it: 50 users, each with a user stream, resting limits, crossing limits and cancels (its docstring gives
the mix). Once a minute a row: requests offered, orders ACKed, cancels answered, orders confirmed on the
user stream, errors by status and code, REST answer and confirmation p50/p99, consumer lag (every group),
and the RSS of every process: each service, the broker, Redis, and Postgres (the proportional set size of
the postmaster and its backends, so shared buffers count once) and the share of a core each used in that
minute (Postgres: a backend that ended within the minute is not counted). Then a summary: ACKed orders never
confirmed (5 s after the load stopped), 5xx answers, tracebacks in the fleet's log, and each process's RSS
growth after a warm-up of 5 minutes (half the run when shorter), in MB per minute. The table's verdicts are the
issue's own terms (``bench/soak_verdict.py``): confirm p99 within 100 ms in every minute, and every process
within 10% of its size after the warm-up. The confirmations slower
than 100 ms are counted by second of the minute and set against the servers' upkeep (autovacuum runs, AOF
rewrites) read from their logs (``bench/upkeep_windows.py``), so a slow minute's cause can be told from the load.

The broker is Tansu with memory storage, which keeps every record; the segment ring (``shared.segments``)
recycles its log every few segments, so its RSS, like every service's, must stay flat.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from . import ping_reference
from . import soak_verdict as verdict

USERS = 50
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
LAG_DRAIN_S = 30.0  # after the load: how long the consumers may take to reach the end of their topics
SHORT = {"gateway": "gw", "ingestion": "in", "order-processor": "op", "matcher": "ma", "settlement": "se",
         "market-data": "md", "trade-archiver": "ta", "broker": "broker", "redis": "redis", "postgres": "pg",
         "postgres_private": "pg-own"}


def warm_up_minutes(minutes: int) -> int:
    """Five minutes, or half a shorter run (at least one): growth is measured from there to the end."""
    return min(5, max(1, minutes // 2))


def _port(url: str) -> int:
    found = re.search(r":(\d+)(?:/|$)", url.split("@")[-1].split("?")[0])
    if found is None:
        raise ValueError(f"no port in {url!r}")
    return int(found.group(1))


async def _postgres_facts(database_url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        stats = await conn.fetch(
            "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables "
            "WHERE relname = ANY($1::text[]) ORDER BY relname",
            ["orders", "ledger", "trades", "balances", "open_order_counts"],
        )
        return {"data_directory": await conn.fetchval("SHOW data_directory"),
                "autovacuum": await conn.fetchval("SHOW autovacuum"),
                "tables": {r["relname"]: {k: r[k] for k in r.keys() if k != "relname"} for r in stats}}
    finally:
        await conn.close()


async def _upkeep_counts(database_url: str, redis_url: str) -> dict[str, int]:
    """Upkeep that runs beside the load, counted since the servers started: autovacuum and autoanalyze runs on
    every table, checkpoints, and Redis' forks (an AOF rewrite is one); a row's change in them says whether a
    slow minute had a server busy with its own work."""
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetchrow(
            "SELECT coalesce(sum(autovacuum_count), 0)::bigint AS v, coalesce(sum(autoanalyze_count), 0)::bigint AS a "
            "FROM pg_stat_user_tables"
        )
        try:  # Postgres 17 moved the checkpoint counters out of pg_stat_bgwriter
            checkpoints = await conn.fetchval("SELECT num_timed + num_requested FROM pg_stat_checkpointer")
        except asyncpg.UndefinedTableError:
            checkpoints = await conn.fetchval("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
    finally:
        await conn.close()
    client = aioredis.from_url(redis_url)
    try:
        forks = int((await client.info("stats"))["total_forks"])
    finally:
        await client.aclose()
    return {"autovacuum": tables["v"], "autoanalyze": tables["a"], "checkpoints": checkpoints, "redis_forks": forks}


def upkeep(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """How many of each upkeep ran between two ``_upkeep_counts``."""
    return {k: after[k] - before.get(k, 0) for k in after}


def server_pids(env: Mapping[str, str], pg_data: str | None) -> dict[str, list[int]]:
    """The broker and Redis listening on the fleet's ports, and the fleet's Postgres: its postmaster (from
    ``postmaster.pid`` in its data directory, when that is on this machine) and every backend."""
    import psutil

    kafka_port, redis_port = _port("//" + env["KAFKA_BOOTSTRAP"]), _port(env["REDIS_URL"])
    out: dict[str, list[int]] = {"broker": [], "redis": [], "postgres": []}
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.pid:
            if c.laddr.port == kafka_port:
                out["broker"].append(c.pid)
            elif c.laddr.port == redis_port:
                out["redis"].append(c.pid)
    pid_file = Path(pg_data or "/nonexistent") / "postmaster.pid"
    if pid_file.exists():
        postmaster = int(pid_file.read_text().split()[0])
        try:
            out["postgres"] = [postmaster, *(p.pid for p in psutil.Process(postmaster).children(recursive=True))]
        except psutil.Error:
            pass
    return {k: sorted(set(v)) for k, v in out.items()}


def memory_mb(procs: Mapping[str, int], servers: Mapping[str, list[int]]) -> dict[str, float | None]:
    """RSS of each service and server; Postgres as the sum of its processes' proportional set size, and apart
    the sum of their private memory (``postgres_private``: without the shared buffers, which fill up to
    ``shared_buffers`` as the tables grow and then stop, so a leak shows there alone)."""
    import psutil

    def one(pid: int, kind: str = "rss") -> float | None:
        try:
            p = psutil.Process(pid)
            info = p.memory_info() if kind == "rss" else p.memory_full_info()
            return float(getattr(info, kind)) / 2**20
        except psutil.Error:
            return None

    out: dict[str, float | None] = {name: one(pid) for name, pid in procs.items()}
    for role in ("broker", "redis"):
        out[role] = one(servers[role][0]) if servers.get(role) else None
    for name, kind in (("postgres", "pss"), ("postgres_private", "uss")):
        pg = [one(pid, kind) for pid in servers.get("postgres", [])]
        out[name] = sum(x for x in pg if x is not None) if pg else None
    return {k: None if v is None else round(v, 1) for k, v in out.items()}


Readings = dict[str, dict[int, float]]  # per service or server, per process: seconds so far


def cpu_seconds(procs: Mapping[str, int], servers: Mapping[str, list[int]]) -> Readings:
    """CPU seconds (user + system) each service and server has spent so far, per process (Postgres: every
    backend)."""
    import psutil

    def spent(pid: int) -> float | None:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return None
        return float(t.user + t.system)

    return _per_process(procs, servers, spent)


def waited_seconds(procs: Mapping[str, int], servers: Mapping[str, list[int]]) -> Readings:
    """Seconds each service and server has spent runnable but not running so far, per process, every thread
    together: the second field of Linux's ``/proc/<pid>/task/<tid>/schedstat`` (psutil does not read it). At
    300 orders/s on two cores each process waited for a core about 1.5 times as long as it ran, ~0.4 ms a
    wakeup: the part of a slow minute's latency that is the run queue's. Nothing where there is no such file."""

    def waited(pid: int) -> float | None:
        stats = list(Path(f"/proc/{pid}/task").glob("*/schedstat"))
        if not stats:
            return None
        total = 0
        for stat in stats:
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
                continue
        return total / 1e9

    return _per_process(procs, servers, waited)


def _per_process(procs: Mapping[str, int], servers: Mapping[str, list[int]],
                 read: Callable[[int], float | None]) -> Readings:
    named = {name: [pid] for name, pid in procs.items()} | dict(servers)
    out: Readings = {}
    for name, pids in named.items():
        out[name] = {pid: value for pid in pids if (value := read(pid)) is not None}
    return out


def cpu_share(before: Readings, after: Readings, seconds: float) -> dict[str, float]:
    """Percent of one core each service or server used (or waited for: ``waited_seconds``) between two readings.
    Counted per process: a Postgres backend that ended meanwhile is left out (its past no longer lowers the sum),
    and one that started counts from zero."""
    share: dict[str, float] = {}
    for name, by_pid in after.items():
        then = before.get(name, {})
        spent = sum(max(0.0, value - then.get(pid, 0.0)) for pid, value in by_pid.items())
        share[name] = round(100 * spent / seconds)
    return share


def machine_ticks() -> tuple[float, float, float]:
    """The whole machine's CPU seconds so far, all cores together (psutil): (total, idle or waiting on disk, stolen
    by the hypervisor)."""
    import psutil

    t = psutil.cpu_times()
    total = t.user + t.nice + t.system + t.idle + t.iowait + t.irq + t.softirq + t.steal  # guest is in user
    return total, t.idle + t.iowait, t.steal


def machine_busy(before: tuple[float, float, float], after: tuple[float, float, float]) -> dict[str, float]:
    """The share of the machine's CPU time busy between two ``machine_ticks``, and of it taken by the hypervisor
    (steal): a minute whose p99 is high on a machine with no core to spare is the run queue's, not one hop's."""
    total, idle, steal = (b - a for a, b in zip(before, after, strict=True))
    if total <= 0:
        return {"busy": 0.0, "steal": 0.0}
    return {"busy": round(100 * (total - idle) / total, 1), "steal": round(100 * steal / total, 1)}


def _lag(env: Mapping[str, str]) -> dict[str, int]:
    """Records behind, per consumer group (every topic it reads)."""
    from .fleet import _lag as lag_by_group

    found = asyncio.run(lag_by_group(env["KAFKA_BOOTSTRAP"], env.get("TOPIC_SUFFIX", "")))
    return {group: sum(topics.values()) for group, topics in found.items()}


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _lags(lag: Mapping[str, int]) -> str:
    behind = {SHORT.get(g, g): n for g, n in lag.items() if n}
    return f"{sum(lag.values()):,}" + (f" ({', '.join(f'{g} {n:,}' for g, n in behind.items())})" if behind else "")


CONSUMERS = ("order-processor", "matcher", "settlement", "market-data")
FETCHED = 'spot_kafka_call_seconds_count{operation="fetch"}'  # polls that returned records: the batches taken


def batches_taken(ports: Mapping[str, int]) -> dict[str, float]:
    """How many batches each consumer has taken so far (its polls that returned records)."""
    return {name: _metrics(port).get(FETCHED, 0.0) for name, port in ports.items()}


def batch_costs(before: Mapping[str, float], after: Mapping[str, float], seconds: float,
                cpu_pct: Mapping[str, float]) -> dict[str, dict[str, float | None]]:
    """Per consumer: batches a second, and the CPU each cost it (ms): a batch's cost is most of a consumer's
    at low rates, where each takes one record."""
    out: dict[str, dict[str, float | None]] = {}
    for name, n in after.items():
        rate = max(0.0, n - before.get(name, 0.0)) / seconds
        cpu = cpu_pct.get(name)
        out[name] = {"per_s": round(rate, 1),
                     "cpu_ms": None if not rate or cpu is None else round(10 * cpu / rate, 2)}
    return out


def _batches(costs: Mapping[str, Mapping[str, float | None]]) -> str:
    return " ".join(f"{SHORT.get(k, k)} {v['per_s']:,.0f}" + (f" ({v['cpu_ms']} ms)" if v["cpu_ms"] else "")
                    for k, v in costs.items())


def _machine(busy: Mapping[str, float]) -> str:
    return f"  machine busy {busy['busy']}% (steal {busy['steal']}%)"


def _shares(pct: Mapping[str, float]) -> str:
    return " ".join(f"{SHORT.get(k, k)} {v}" for k, v in pct.items())


def format_row(row: Mapping[str, Any]) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(row["errors"].items())) or "none"
    mem = " ".join(f"{SHORT.get(k, k)} {_ms(v)}" for k, v in row["rss_mb"].items())
    cpu = _shares(row.get("cpu_pct", {}))
    return (f"{row['minute'] + 1:>3}  offered {row['offered']:>6,}  acked {row['acked']:>6,}"
            f"  cancels {row['cancels_ok']:>5,}  confirmed {row['confirmed']:>6,}"
            f"  ack p50/p99 {_ms(row['ack_p50_ms'])}/{_ms(row['ack_p99_ms'])} ms"
            f"  confirm p50/p99 {_ms(row['confirm_p50_ms'])}/{_ms(row['confirm_p99_ms'])} ms"
            f"  first fill p50/p99 {_ms(row.get('fill_p50_ms'))}/{_ms(row.get('fill_p99_ms'))} ms"
            f"  lag {_lags(row['lag'])}"
            f"  errors: {errors}  RSS MB: {mem}  CPU % of a core: {cpu}"
            + (_machine(row["machine"]) if row.get("machine") else "")
            + (f"  waited for a core %: {_shares(row['waited_pct'])}" if row.get("waited_pct") else "")
            + (f"  batches/s (CPU each): {_batches(row['batches'])}" if row.get("batches") else "")
            + (f"  upkeep: {_shares(row['upkeep'])}" if row.get("upkeep") else ""))


def growth(rows: list[dict[str, Any]], warm: int) -> dict[str, dict[str, float | None]]:
    """Per process: RSS at the end of the warm-up and at the end, and the growth in MB per minute between."""
    if len(rows) <= warm:
        return {}
    first, last = rows[warm - 1]["rss_mb"], rows[-1]["rss_mb"]
    span = len(rows) - warm
    out: dict[str, dict[str, float | None]] = {}
    for name in last:
        a, b = first.get(name), last.get(name)
        out[name] = {"after_warm_up": a, "end": b,
                     "mb_per_min": None if a is None or b is None else round((b - a) / span, 2)}
    return out


def log_faults(log: Path) -> dict[str, int]:
    """What the fleet's log says went wrong: tracebacks, Starlette's unhandled-exception line, warnings."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return {"tracebacks": text.count("Traceback (most recent call last)"),
            "asgi_exceptions": text.count("Exception in ASGI application"),
            "warning_lines": len(re.findall(r'"level": ?"WARNING"|\bWARNING\b', text))}


ADMISSION_CLOSED = re.compile(r'"msg": ?"(admission refusing new orders[^"]*)"')


def admission_closings(log: Path, keep: int = 10) -> list[str]:
    """The gateways' lines saying admission started refusing, with the reading that decided (the first few)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [m.group(1) for m in ADMISSION_CLOSED.finditer(text)][:keep]


SEGMENT_START = re.compile(r'"ts": ?([0-9.]+).*?"msg": ?"segment (\d+) starts in (\d+) ms')


def segment_starts(log_text: str) -> list[float]:
    """When each log segment started (wall-clock seconds), from the keeper's lines in the fleet's log."""
    starts = {int(m.group(2)): float(m.group(1)) + int(m.group(3)) / 1000 for m in SEGMENT_START.finditer(log_text)}
    return sorted(starts.values())


def slow_by_phase(slow: list[list[float]], starts: list[float]) -> dict[int, int]:
    """Slow confirmations counted by the whole seconds between their segment's start and their send: a pile
    at 0 says the segment switch (not the load) makes the tail."""
    out: dict[int, int] = {}
    for sent, _ in slow:
        i = bisect_right(starts, sent)
        if i:
            phase = int(sent - starts[i - 1])
            out[phase] = out.get(phase, 0) + 1
    return dict(sorted(out.items()))


async def _log_autovacuum(database_url: str) -> None:
    """Have the bench's Postgres log every autovacuum and autoanalyze run, with its times."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER SYSTEM SET log_autovacuum_min_duration = 0")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def slow_in_upkeep(sent: list[float], logs: list[Path], span: list[float]) -> tuple[dict[str, Any], list[int]]:
    """The share of the slow confirmations sent while a server did upkeep (per kind, beside the share of the
    time it took), from the servers' logs where the bench has them, and their count by second of the minute."""
    from . import upkeep_windows as uw

    windows: list[uw.Window] = []
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else ""
        windows += uw.aof_rewrite_windows(text) + uw.autovacuum_windows(text)
    return uw.attribute(sent, windows, (span[0], span[1] or time.time())), uw.by_second_of_minute(sent)


def run(env: dict[str, str], rate: float, minutes: int, state: Path, port_offset: int,
        say: Callable[[str], None] = print, reference_s: float = 0.0) -> dict[str, Any]:
    """The soak on a fresh ``env`` (database, Redis database, topic suffix; ``spot admin init`` done). With
    ``reference_s``, the fleet's ``GET /ping`` for that long before the load (``bench/ping_reference.py``)."""
    from shared.config import Settings
    from spot.fleet import SERVICES, Fleet

    from .common import ROOT, environ
    from .fleet import _keys
    from .services import _create_users

    with environ(env):
        st = Settings()
    users = asyncio.run(_keys(st, asyncio.run(_create_users(st, USERS))))
    pg = asyncio.run(_postgres_facts(st.database_url))
    own_postgres = Path(pg["data_directory"]).resolve().is_relative_to(state.resolve())
    if own_postgres:  # the bench's own server: its log says when autovacuum ran, for the slow confirmations
        asyncio.run(_log_autovacuum(st.database_url))
    state.mkdir(parents=True, exist_ok=True)
    tag = f"{int(time.time())}{st.topic_suffix}"
    fleet_log_path = state / f"soak-fleet-{tag}.log"
    progress, out = state / f"soak-{tag}.progress.jsonl", state / f"soak-{tag}.out.json"
    res: dict[str, Any] = {"rate": rate, "minutes": minutes, "users": USERS, "symbols": SYMBOLS,
                           "warm_up_minutes": warm_up_minutes(minutes), "postgres_autovacuum": pg["autovacuum"],
                           "fleet_log": str(fleet_log_path)}
    fleet_log: IO[str] = open(fleet_log_path, "w")  # closed in the finally below
    fleet = Fleet(env, port_offset=port_offset, log=fleet_log)
    loadgen: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, Any]] = []
    load_span = [0.0, 0.0]  # when the load generator started and ended (wall clock)
    try:
        fleet.start_all(SERVICES)
        fleet.wait_ready(timeout=120)
        servers = server_pids(env, pg["data_directory"])
        procs = {name: p.pid for name, p in fleet.procs.items()}
        res["rss_mb_start"] = memory_mb(procs, servers)
        if reference_s > 0:
            gateway = {"gateway": procs["gateway"]}
            res["ping"] = ping_reference.measure(f"http://127.0.0.1:{fleet.port('gateway')}",
                                                 lambda: sum(cpu_seconds(gateway, {})["gateway"].values()),
                                                 state, reference_s)
        cfg = {"base": f"http://127.0.0.1:{fleet.port('gateway')}", "users": users, "symbols": SYMBOLS,
               "rate": rate, "minutes": minutes, "progress": str(progress), "out": str(out), "prefix": "s"}
        cfg_path = state / f"soak-{tag}.json"
        cfg_path.write_text(json.dumps(cfg))
        progress.write_text("")
        load_span[0] = time.time()
        loadgen = subprocess.Popen([sys.executable, "-m", "bench.soakload", str(cfg_path)], cwd=ROOT)
        say(f"soak: {rate:,.0f} requests/s for {minutes} min, {USERS} users with user streams, the default fleet "
            f"(gateway on :{fleet.port('gateway')}); a row per minute")
        deadline = time.monotonic() + 60 * minutes + 300
        cpu_then, then, ticks_then = cpu_seconds(procs, servers), time.monotonic(), machine_ticks()
        waited_then = waited_seconds(procs, servers)
        consumer_ports = {name: fleet.port(name) for name in CONSUMERS if name in procs}
        taken_then = batches_taken(consumer_ports)
        upkeep_then = asyncio.run(_upkeep_counts(st.database_url, st.redis_url))
        while loadgen.poll() is None or len(rows) < _lines(progress):
            if time.monotonic() > deadline:
                raise RuntimeError("the soak's load generator did not finish in time")
            if len(rows) < _lines(progress):
                row = json.loads(progress.read_text().splitlines()[len(rows)])
                now_servers = server_pids(env, pg["data_directory"])
                row["rss_mb"] = memory_mb(procs, now_servers)
                cpu_now, now = cpu_seconds(procs, now_servers), time.monotonic()
                row["cpu_pct"] = cpu_share(cpu_then, cpu_now, now - then)
                waited_now = waited_seconds(procs, now_servers)
                row["waited_pct"] = cpu_share(waited_then, waited_now, now - then)
                taken_now = batches_taken(consumer_ports)
                row["batches"] = batch_costs(taken_then, taken_now, now - then, row["cpu_pct"])
                ticks_now = machine_ticks()
                row["machine"] = machine_busy(ticks_then, ticks_now)
                upkeep_now = asyncio.run(_upkeep_counts(st.database_url, st.redis_url))
                row["upkeep"] = upkeep(upkeep_then, upkeep_now)
                cpu_then, taken_then, then, ticks_then, waited_then = cpu_now, taken_now, now, ticks_now, waited_now
                upkeep_then = upkeep_now
                row["lag"] = _lag(env)
                rows.append(row)
                say(format_row(row))
                continue
            time.sleep(0.5)
        load_span[1] = time.time()
        if loadgen.returncode:
            raise RuntimeError(f"the soak's load generator failed with exit code {loadgen.returncode}")
        result = json.loads(out.read_text())
        quiet = time.perf_counter()
        while sum((lag := _lag(env)).values()) and time.perf_counter() - quiet < LAG_DRAIN_S:
            time.sleep(0.5)
        if sum(lag.values()):  # a consumer that did not catch up: where each of those services is stuck
            behind = [g for g, n in lag.items() if n and g in procs]
            res["stacks"] = {g: _stack(procs[g]) for g in behind}
            before = {g: _metrics(fleet.port(g)) for g in behind}
            time.sleep(5)
            res["metrics_moving"] = {g: _moved(before[g], _metrics(fleet.port(g))) for g in behind}
            for group in behind:
                say(f"{group} still {lag[group]:,} behind; its threads (py-spy dump):\n{res['stacks'][group]}\n"
                    f"its call counters over 5 s: {res['metrics_moving'][group]}")
        res.update(load=result, rows=rows, lag_end=lag, rss_mb_end=memory_mb(procs, servers),
                   postgres_end=asyncio.run(_postgres_facts(st.database_url))["tables"])
        exited = {name: p.returncode for name, p in fleet.procs.items() if p.poll() is not None}
        res["services_exited"] = exited
    finally:
        if loadgen is not None and loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(10)
        fleet.stop()
        fleet_log.close()
    total = res["load"]["total"]
    res["unconfirmed"] = res["load"]["unconfirmed"]
    res["server_errors"] = sum(n for k, n in total["errors"].items() if k.startswith("5"))
    res["growth"] = growth(rows, res["warm_up_minutes"])
    res["log"] = log_faults(fleet_log_path)
    res["admission_closed"] = admission_closings(fleet_log_path)
    slow = res["load"].pop("slow_confirms", [])
    res["slow_confirms"] = len(slow)
    res["slow_by_segment_phase_s"] = slow_by_phase(slow, segment_starts(fleet_log_path.read_text(errors="replace")))
    from spot.infra import POSTGRES_LOG, REDIS_LOG

    logs = [state / REDIS_LOG] + ([Path(pg["data_directory"]) / POSTGRES_LOG] if own_postgres else [])
    res["slow_in_upkeep"], res["slow_by_minute_second"] = slow_in_upkeep([s[0] for s in slow], logs, load_span)
    say(summary(res))
    return res


def _stack(pid: int) -> str:
    """What a process is doing, by ``py-spy dump`` (with its locals), when py-spy is installed."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return "py-spy not installed"
    done = subprocess.run([str(exe), "dump", "--locals", "--pid", str(pid)], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout or done.stderr


WATCHED = ("spot_kafka_call_seconds_count", "spot_postgres_call_seconds_count", "spot_redis_call_seconds_count",
           "spot_kafka_consumer_lag", "spot_orders_decided_total", "spot_dependency_outages_total")


def _metrics(port: int) -> dict[str, float]:
    """A service's call counters and lag gauges from its ``/metrics``."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as exc:
        return {"unreachable": float(len(str(exc)))}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(WATCHED):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each series' value after, and by how much it moved (only those that exist)."""
    return {k: v for k, v in after.items()} | {f"{k} (+)": v - before.get(k, 0.0) for k, v in after.items()}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def summary(res: dict[str, Any]) -> str:
    total = res["load"]["total"]
    grow = ", ".join(f"{SHORT.get(k, k)} {_ms(v['after_warm_up'])}->{_ms(v['end'])} ({v['mb_per_min']:+} MB/min)"
                     if v["mb_per_min"] is not None else f"{k} -" for k, v in res["growth"].items())
    return (f"soak summary: offered {total['offered']:,}, ACKed {total['acked']:,}, confirmed {total['confirmed']:,} "
            f"(rejected {total['rejected']:,}), cancels answered {total['cancels_ok']:,}; ACKed and never confirmed "
            f"(5 s after the load): {res['unconfirmed']:,}; 5xx: {res['server_errors']:,}; errors: "
            f"{dict(total['errors']) or 'none'}; ack p50/p99 {_ms(total['ack_p50_ms'])}/{_ms(total['ack_p99_ms'])} "
            f"ms, confirm p50/p99 {_ms(total['confirm_p50_ms'])}/{_ms(total['confirm_p99_ms'])} ms, a crossing order's "
            f"first fill p50/p99 {_ms(total.get('fill_p50_ms'))}/{_ms(total.get('fill_p99_ms'))} ms; lag at the end "
            f"{_lags(res['lag_end'])}; fleet log: {res['log']}; Postgres autovacuum {res['postgres_autovacuum']} ("
            f"{_upkeep(res.get('postgres_end', {}))}); "
            f"RSS after the {res['warm_up_minutes']}-minute warm-up -> end: {grow}; confirmations over 100 ms: "
            f"{res.get('slow_confirms', 0):,}, by seconds since their log segment started: "
            f"{res.get('slow_by_segment_phase_s') or '-'}; by second of the minute: {_piles(res)}; sent during "
            f"upkeep: {_upkeep_shares(res.get('slow_in_upkeep', {}))}")


def _piles(res: Mapping[str, Any]) -> str:
    from .upkeep_windows import piles

    counts = res.get("slow_by_minute_second")
    return piles(counts) if counts and sum(counts) else "-"


def _upkeep_shares(shares: Mapping[str, Mapping[str, float]], top: int = 6) -> str:
    """``"autoanalyze orders 60 runs, 7.7% of the time, 46% of the slow"`` for the kinds of upkeep that held the
    most slow confirmations (the catalog tables' runs are many and small)."""
    worst = sorted(shares.items(), key=lambda kv: -kv[1]["slow_pct"])[:top]
    return "; ".join(f"{kind} {s['runs']:.0f} runs, {s['time_pct']}% of the time, {s['slow_pct']}% of the slow"
                     for kind, s in worst) or "none logged"


def _upkeep(tables: Mapping[str, Mapping[str, int]]) -> str:
    """How often autovacuum and autoanalyze ran on each growing table during the run."""
    growing = {name: t for name, t in tables.items() if name in ("orders", "ledger", "trades")}
    return ", ".join(f"{name} {t['n_live_tup']:,} rows, vacuumed {t['autovacuum_count']}x, analyzed "
                     f"{t['autoanalyze_count']}x" for name, t in growing.items())


def rows_for_table(res: dict[str, Any]) -> list[Any]:
    from .common import Row

    total = res["load"]["total"]
    services = {k: v for k, v in res["growth"].items() if k not in ("broker", "redis", "postgres", "postgres_private")}
    worst = max(services.items(), key=lambda kv: kv[1]["mb_per_min"] or 0.0, default=("-", {"mb_per_min": 0.0}))
    broker = res["growth"].get("broker", {})
    minutes = verdict.minutes_within(res["rows"])
    grown = verdict.growth_pct(res["growth"])
    top = grown[0] if grown else None
    workload = (f"default fleet, {res['rate']:,.0f} requests/s open loop for {res['minutes']} min, {res['users']} "
                "users with user streams, resting and crossing limits, cancels")
    return [
        Row("soak: confirmations", workload, f"{res['unconfirmed']:,} ACKed never confirmed",
            "0", f"ACKed {total['acked']:,}", "-", float(res["unconfirmed"]), "orders", res["unconfirmed"] == 0,
            {k: v for k, v in res.items() if k != "rows"}),
        Row("soak: server errors", workload, f"{res['server_errors']:,} 5xx; log {res['log']}", "0 5xx, 0 tracebacks",
            f"offered {total['offered']:,}", "-", float(res["server_errors"]), "answers",
            res["server_errors"] == 0 and res["log"]["tracebacks"] == 0),
        Row("soak: latency", workload, f"confirm p99 within {verdict.CONFIRM_P99_MS:.0f} ms in {minutes.within} of "
            f"{minutes.counted} minutes (worst: minute {minutes.worst_minute}, {_ms(minutes.worst_p99_ms)} ms); "
            f"over the run ack p50 {total['ack_p50_ms']} ms p99 {total['ack_p99_ms']} ms, confirm p50 "
            f"{total['confirm_p50_ms']} ms p99 {total['confirm_p99_ms']} ms",
            f"every minute's confirm p99 <= {verdict.CONFIRM_P99_MS:.0f} ms", ping_reference.describe(res.get("ping")),
            "-", float(minutes.within),
            "minutes", minutes.counted > 0 and minutes.within == minutes.counted),
        Row("soak: memory", workload, f"largest growth after the {res['warm_up_minutes']}-minute warm-up: "
            + (f"{top.process} {top.pct:+}% ({top.after_warm_up_mb} -> {top.end_mb} MB)" if top else "no reading")
            + f"; fastest-growing service {worst[0]} {worst[1]['mb_per_min']} MB/min, broker "
            f"{broker.get('mb_per_min')} MB/min (log recycled by segments)",
            f"every process within {verdict.GROWTH_MAX_PCT:.0f}%", "-", "-", top.pct if top else None, "%",
            verdict.memory_flat(res["growth"]), {"growth": res["growth"]}),
    ]
