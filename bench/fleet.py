"""Benchmark 4: the whole fleet (``spot.fleet.Fleet``, ports 8200..) driven over signed REST.

Phases, each by ``bench/loadgen.py`` in a process of its own:

1. reference: ``GET /api/v3/ping`` at the same concurrency (what client + gateway HTTP alone sustain);
2. saturation for ``--seconds``: accepted orders/s (HTTP 200 with an orderId, ``newOrderRespType=ACK``);
   then the consumer lag of every group, and how long the fleet takes to work that backlog off, which
   gives the end-to-end figure ``accepted / (seconds + drain)``;
3. paced for ``--seconds`` at 1,000 orders/s, or at 80% of the end-to-end figure when that is lower:
   submit -> owner's user-stream ``executionReport`` (x=NEW) latency, p50/p99, also per 10 s of sending,
   on a second fleet started on fresh state (``run`` says why), after 15 s of light load (20 orders/s) on
   it: the same path when the cores are not the queue.

Also printed: consumer lag per group (high watermark minus committed) and each service's RSS at the start
and the end of the saturation fleet, and the CPU each process spent per order in both phases. Both fleets run
the defaults ``spot up`` runs (admission by measured backlog included), with one change: the bench lifts the
per-key rate limits and the open-orders cap (``ORDERS_PER_10S``, ``REQUEST_WEIGHT_PER_MINUTE``,
``OPEN_ORDERS_MAX``), since 64 accounts at thousands of orders/s would otherwise meet Binance's per-account
limits, not the fleet's capacity. The throughput profile the README names (consumers fetching 256 KiB or
100 ms) is not measured here: what the bench reports is what a user gets.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from shared.messages import Topic
from spot.fleet import SERVICES, Fleet

from . import kafkatools as kt
from .common import (
    PORT_OFFSET,
    ROOT,
    STATE,
    Row,
    Servers,
    cpu_snapshot,
    cpu_spent,
    fmt_rate,
    py_spy,
    ratio,
    rss_mb,
    settings_for,
    top_frames,
)
from .services import _create_users

TARGET_RATE, TARGET_P50_MS, TARGET_P99_MS, PACED_RATE = 3_000, 5.0, 20.0, 1_000
LIGHT_RATE = 20  # orders/s of the light phase before the paced one
PACED_DRAIN_S = 30.0  # how long the paced fleet's lag may take to reach 0 after the load stops
USERS, CONCURRENCY = 64, 64
GROUP_TOPICS = {
    "order-processor": [Topic.ORDER_REQUESTS],
    "matcher": [Topic.VALIDATED_ORDERS],
    "settlement": [Topic.MATCHED_EVENTS],
    "market-data": [Topic.MATCHED_EVENTS, Topic.TRADE_EXECUTION],
}


def _loadgen(cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    tag = f"{cfg['mode']}-{int(time.time() * 1000)}"
    path, out = STATE / f"loadgen-{tag}.json", STATE / f"loadgen-{tag}.out.json"
    path.write_text(json.dumps({**cfg, "out": str(out)}))
    was = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "bench.loadgen", str(path)], cwd=ROOT, check=True, timeout=timeout)
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(out.read_text())
    result["cpu_s"] = round(now.ru_utime + now.ru_stime - was.ru_utime - was.ru_stime, 3)
    return result


def _cpu_per_order(spent: dict[str, float], loadgen_s: float, orders: int) -> dict[str, float]:
    """Microseconds of CPU per accepted order, by process role: where the 2 cores' budget goes."""
    spent = {**spent, "loadgen": spent.get("loadgen", 0.0) + loadgen_s}
    per = {k: round(1e6 * v / max(1, orders), 1) for k, v in spent.items() if k != "other"}
    per = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    per["total (without other)"] = round(sum(per.values()), 1)
    per["other (not the fleet)"] = round(1e6 * spent.get("other", 0.0) / max(1, orders), 1)
    return per


async def _lag(bootstrap: str, suffix: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    async with kt.Offsets(bootstrap) as o:
        for group, topics in GROUP_TOPICS.items():
            lag = await o.lag(f"{group}{suffix}", [f"{t.value}{suffix}" for t in topics])
            out[group] = {k.removesuffix(suffix): v for k, v in lag.items()}
    return out


def _total(lag: dict[str, dict[str, int]]) -> int:
    return sum(sum(v.values()) for v in lag.values())


def _rss(fleet: Fleet) -> dict[str, float | None]:
    return {name: rss_mb(p.pid) for name, p in fleet.procs.items()}


class _Running:
    """One fleet on fresh state (database, Redis database, topics) with the bench's users and their keys."""

    def __init__(self, servers: Servers, ingestion: str, tag: str) -> None:
        in_gateway = str(ingestion == "gateway").lower()
        self.env = servers.fresh_env(4, ORDERS_PER_10S="100000000", REQUEST_WEIGHT_PER_MINUTE="1000000000",
                                     OPEN_ORDERS_MAX="1000000", INGESTION_IN_GATEWAY=in_gateway)
        self.st = st = settings_for(self.env)
        users = asyncio.run(_create_users(st, USERS))
        self.user_keys = asyncio.run(_keys(st, users))
        self.log = open(STATE / f"fleet{st.topic_suffix}-{tag}.log", "w")
        self.fleet = Fleet(self.env, port_offset=PORT_OFFSET, log=self.log)
        self.common = {"base": f"http://127.0.0.1:{self.fleet.port('gateway')}", "users": self.user_keys,
                       "symbols": ["BTCUSDT", "ETHUSDT"], "concurrency": CONCURRENCY}

    def start(self) -> None:
        self.fleet.start_all(SERVICES)
        self.fleet.wait_ready(timeout=120)
        time.sleep(1)

    def stop(self) -> None:
        self.fleet.stop()
        self.log.close()

    def pids(self) -> dict[int, str]:
        return {p.pid: name.split("#")[0] for name, p in self.fleet.procs.items()}

    def lag(self) -> dict[str, dict[str, int]]:
        return asyncio.run(_lag(self.st.kafka_bootstrap, self.st.topic_suffix))


async def _keys(settings: Any, users: list[int]) -> list[dict[str, Any]]:
    """The users' keys with their secrets, opened from their envelope (the database holds them sealed)."""
    import asyncpg

    from shared import envelope

    box = envelope.from_settings(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT api_key, secret_sealed, user_id FROM api_keys WHERE user_id = ANY($1::bigint[])", users
        )
        return [
            {"api_key": r["api_key"], "secret": box.open(bytes(r["secret_sealed"]), r["api_key"]),
             "user_id": r["user_id"]}
            for r in rows
        ]
    finally:
        await conn.close()


def run(servers: Servers, seconds: float, profile: str | None = None, rate: float | None = None,
        ingestion: str = "gateway", profile_phase: str = "saturate") -> dict[str, Any]:
    """Ping and saturation on one fleet; the paced phase on a second one, started on fresh state: Tansu's
    fetch cost grows with the batches a partition holds, and the saturation phase leaves ~100k behind,
    which would charge the latency phase for the throughput phase's data (and its autovacuum)."""
    res: dict[str, Any] = {"seconds": seconds, "users": USERS, "concurrency": CONCURRENCY, "ingestion": ingestion,
                           "symbols": ["BTCUSDT", "ETHUSDT"]}
    spy_out = STATE / f"profile-fleet-{profile}-{profile_phase}-{int(time.time())}.txt"
    one = _Running(servers, ingestion, "saturate")
    res["env_overrides"] = {k: one.env[k] for k in ("ORDERS_PER_10S", "OPEN_ORDERS_MAX", "REQUEST_WEIGHT_PER_MINUTE")}
    try:
        one.start()
        res["rss_mb_start"] = _rss(one.fleet)
        res["lag_start"] = one.lag()
        res["ping"] = _loadgen({**one.common, "mode": "ping", "seconds": min(5.0, seconds)}, 60 + seconds)
        spy = None
        if profile and profile_phase == "saturate":
            spy = py_spy(one.fleet.procs[profile].pid, seconds, spy_out)
        cpu_before = cpu_snapshot(one.pids())
        res["saturate"] = _loadgen({**one.common, "mode": "saturate", "seconds": seconds}, 120 + seconds)
        t_end = time.perf_counter()
        res["lag_after_saturation"] = one.lag()
        drained = False
        while time.perf_counter() - t_end < 180:
            if _total(one.lag()) == 0:
                drained = True
                break
            time.sleep(0.5)
        drain_s = time.perf_counter() - t_end
        res["cpu_us_per_order"] = _cpu_per_order(cpu_spent(cpu_before, cpu_snapshot(one.pids())),
                                                 res["saturate"]["cpu_s"], res["saturate"]["accepted"])
        if spy is not None:
            spy.wait(60)
            res["profile"] = {"service": profile, "phase": profile_phase, "file": str(spy_out), **top_frames(spy_out)}
        res["lag_end"] = one.lag()
        res["rss_mb_end"] = _rss(one.fleet)
    finally:
        one.stop()
    accepted = res["saturate"]["accepted"]
    e2e = accepted / (res["saturate"]["elapsed"] + drain_s)
    res.update(drain_s=round(drain_s, 2), drained=drained, e2e_rate=e2e)
    paced = rate or (PACED_RATE if e2e >= PACED_RATE else max(10.0, round(0.8 * e2e)))
    two = _Running(servers, ingestion, "paced")
    try:
        two.start()
        spy = None
        if profile and profile_phase == "paced":
            spy = py_spy(two.fleet.procs[profile].pid, seconds, spy_out)
        # first a light load on the fresh fleet: what the path costs when the cores are not the queue
        res["light"] = _loadgen({**two.common, "mode": "paced", "seconds": min(15.0, seconds), "rate": LIGHT_RATE,
                                 "seed": 6, "prefix": "l"}, 180 + seconds)
        cpu_before = cpu_snapshot(two.pids())
        res["paced"] = _loadgen({**two.common, "mode": "paced", "seconds": seconds, "rate": paced,
                                 "concurrency": 512}, 180 + seconds)
        # the paced phase also carries every order's user-stream events to a WebSocket: its own CPU per order
        res["paced_cpu_us_per_order"] = _cpu_per_order(cpu_spent(cpu_before, cpu_snapshot(two.pids())),
                                                       res["paced"]["cpu_s"], res["paced"]["sent"])
        if spy is not None:
            spy.wait(60)
            res["profile"] = {"service": profile, "phase": profile_phase, "file": str(spy_out), **top_frames(spy_out)}
        quiet = time.perf_counter()  # consumers commit on an interval and when idle: wait for that, bounded
        while _total(lag_end := two.lag()) and time.perf_counter() - quiet < PACED_DRAIN_S:
            time.sleep(0.5)
        res["paced_lag_end"], res["paced_drain_s"] = lag_end, round(time.perf_counter() - quiet, 2)
    finally:
        two.stop()
    return res


def rows(res: dict[str, Any]) -> list[Row]:
    sat, ping, paced = res["saturate"], res["ping"], res["paced"]
    rate = sat["rate"]
    lag = res["lag_after_saturation"]
    lag_txt = ", ".join(f"{g} {sum(v.values()):,}" for g, v in lag.items())
    out = [
        Row("fleet: accepted (REST ACK)",
            f"{res['seconds']:.0f} s, {res['users']} users, {res['concurrency']} in flight, ingestion in "
            f"{'the gateway' if res.get('ingestion') == 'gateway' else 'its service'}, "
            f"2 symbols, LIMIT GTC around the mid; the default fleet; lag after: {lag_txt}",
            f"{fmt_rate(rate)} (orders)",
            f">= {TARGET_RATE:,}/s for 60 s", f"GET /ping {fmt_rate(ping['rate'])}", ratio(rate, ping["rate"]),
            rate, "orders/s", rate >= TARGET_RATE and res["seconds"] >= 60, {k: v for k, v in res.items()}),
        Row("fleet: end-to-end", f"{sat['accepted']:,} accepted, backlog drained in {res['drain_s']:.1f} s"
            + ("" if res["drained"] else " (NOT drained)"), f"{fmt_rate(res['e2e_rate'])} (orders)",
            f">= {TARGET_RATE:,}/s", f"accepted {fmt_rate(rate)}", ratio(res["e2e_rate"], rate), res["e2e_rate"],
            "orders/s", res["e2e_rate"] >= TARGET_RATE),
        Row("fleet: submit -> user stream NEW", f"paced {paced['rate_target']:,.0f}/s for {res['seconds']:.0f} s "
            f"(sent {paced['sent']:,}, confirmed {paced['confirmed']:,}, unconfirmed {paced['unconfirmed']:,}); "
            f"REST answer alone p50 {paced.get('ack_p50_ms')} ms, p99 {paced.get('ack_p99_ms')} ms; by 10 s of "
            "sending, p50/p99 ms: " + ", ".join(f"{w['p50_ms']}/{w['p99_ms']}" for w in paced.get("windows", []))
            + "; the default fleet; submit -> the taker's first fill, "
            f"{paced.get('fills', 0):,} orders that took on arrival: p50 {paced.get('fill_p50_ms')} ms, "
            f"p99 {paced.get('fill_p99_ms')} ms",
            f"p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms", f"p50 <= {TARGET_P50_MS:.0f} ms, p99 <= "
            f"{TARGET_P99_MS:.0f} ms", "-", "-", paced["p99_ms"], "ms p99",
            bool(paced["p50_ms"] is not None and paced["p50_ms"] <= TARGET_P50_MS
                 and paced["p99_ms"] <= TARGET_P99_MS)),
    ]
    light = res.get("light")
    if light:
        out.append(Row("fleet: submit -> user stream NEW, light load", f"paced {light['rate_target']:,.0f}/s for "
                       f"{light['seconds']:.0f} s on the fresh paced fleet, before its paced phase (sent "
                       f"{light['sent']:,}, confirmed {light['confirmed']:,}); REST answer alone p50 "
                       f"{light.get('ack_p50_ms')} ms, p99 {light.get('ack_p99_ms')} ms; the taker's first fill "
                       f"({light.get('fills', 0):,}): p50 {light.get('fill_p50_ms')} ms, "
                       f"p99 {light.get('fill_p99_ms')} ms",
                       f"p50 {light['p50_ms']} ms, p99 {light['p99_ms']} ms", "- (the target is at 1,000/s)", "-",
                       "-", light["p99_ms"], "ms p99", None))
    start, end = res.get("rss_mb_start") or {}, res.get("rss_mb_end") or {}
    if start and end:
        mem = ", ".join(f"{k} {start[k]:.0f}->{end.get(k) or 0:.0f}" for k in start if start[k] is not None)
        lags = (_total(res["lag_start"]) if "lag_start" in res else None, _total(res["lag_end"]))
        paced_lag = _total(res["paced_lag_end"]) if "paced_lag_end" in res else 0
        out.append(Row("fleet: memory and lag", f"saturation fleet, RSS MB at start -> after the drain: {mem}; "
                       f"paced fleet's lag {paced_lag} after {res.get('paced_drain_s', 0)} s of quiet",
                       f"lag {lags[0]} -> {lags[1]}",
                       "lag back to 0, flat memory", "-", "-", float(lags[1]), "records",
                       lags[1] == 0 and paced_lag == 0))
    budget = 1e6 * (os.cpu_count() or 2) / TARGET_RATE
    for phase, cpu in (("saturation + drain", res.get("cpu_us_per_order")),
                       ("paced, with the user streams", res.get("paced_cpu_us_per_order"))):
        if cpu:
            total = cpu["total (without other)"]
            out.append(Row("fleet: CPU per order", f"{phase}, by process: "
                           + ", ".join(f"{k} {v:,.0f}" for k, v in cpu.items()), f"{total:,.0f} us",
                           f"<= {budget:,.0f} us ({TARGET_RATE:,}/s on all cores)", "-", "-", total, "us/order",
                           total <= budget))
    return out
