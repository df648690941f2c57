"""What a durable local broker costs: Tansu on ``memory://`` against Tansu on ``s3://`` over ``spot.objectstore``.

``python -m bench.broker_storage [--records 400] [--idle-s 20]`` starts each broker on ports of its own (with
its store's files in a temporary folder), and measures, one storage after the other:

* produce: one record per produce request, each acknowledged before the next (acks=all), p50/p99;
* hop: produce -> consume, records paced at 50/s, read by an assigned consumer at each fetch wait the fleet
  uses (``kafka_request_fetch_max_wait_ms`` for order requests, ``kafka_fetch_max_wait_ms`` for the rest);
* idle CPU: the broker's and the store's, in % of one core, while consumers shaped like the fleet's poll
  empty partitions (five groups on four partitions each, market-data on eight, order requests at the short
  wait): what a quiet ``spot up`` costs;
* memory: resident size of the broker (and the store) at the end;
* with ``--fleet``, the same idle CPU of a real ``spot up`` (both ways), its services started and quiet,
  beside the whole fleet's: its consumers, segment ring and all.

Tansu's fetch sleeps whatever remains of its max wait, and in each pass reads the watermark of every fetched
partition (a conditional GET, answered from its own five-second cache most of the time) and lists the
partition's objects when there is something new, so the store's work grows with the partitions being read
and with how often records arrive, not with the number of consumers waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.config import Settings
from spot import infra

from .common import PORT_OFFSET, RESULTS, loadavg, machine, pct, rss_mb

PARTITIONS = 4
HOP_RATE = 50  # records/s in the hop phase
VALUE = b"x" * 200  # about an order request's size
IDLE_GROUPS = (  # (group, topics, fetch wait): the fleet's consumers, each on its segment's slot
    ("order-processor", ("order-requests",), "request"),
    ("matcher", ("validated-orders",), "default"),
    ("settlement", ("matched-events",), "default"),
    ("market-data", ("matched-events", "trade-execution"), "default"),
    ("trade-archiver", ("trade-execution",), "default"),
)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(values_ms: Sequence[float]) -> dict[str, float]:
    s = sorted(values_ms)
    return {"p50_ms": round(pct(s, 50), 2), "p99_ms": round(pct(s, 99), 2), "mean_ms": round(statistics.fmean(s), 2)}


async def _produce_latency(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0)
    await producer.start()
    try:
        took = []
        for _ in range(n):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, VALUE, partition=0)
            took.append((time.perf_counter() - t0) * 1000)
        return _summary(took)
    finally:
        await producer.stop()


async def _hop(bootstrap: str, topic: str, n: int, wait_ms: int) -> dict[str, float]:
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        sent: dict[int, float] = {}
        took: list[float] = []

        async def read() -> None:
            while len(took) < n:
                polled = await consumer.getmany(tp, timeout_ms=1000)
                now = time.perf_counter()
                for r in polled.get(tp, []):
                    took.append((now - sent[int(r.key or b"0")]) * 1000)

        reader = asyncio.create_task(read())
        for i in range(n):
            sent[i] = time.perf_counter()
            await producer.send(topic, VALUE, key=str(i).encode(), partition=0)
            await asyncio.sleep(1 / HOP_RATE)
        await asyncio.wait_for(reader, 30)
        return _summary(took)
    finally:
        await producer.stop()
        await consumer.stop()


async def _idle_consumers(bootstrap: str, waits: dict[str, int], seconds: float, pids: Sequence[int]) -> float:
    """% of one core the broker and store spend while the fleet's consumers poll empty partitions."""
    consumers = []
    for _group, topics, wait in IDLE_GROUPS:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=waits[wait])
        await c.start()
        c.assign([TopicPartition(f"idle.{t}", p) for t in topics for p in range(PARTITIONS)])
        consumers.append(c)

    async def poll(c: AIOKafkaConsumer) -> None:
        while True:
            await c.getmany(timeout_ms=1000)

    tasks = [asyncio.create_task(poll(c)) for c in consumers]
    try:
        await asyncio.sleep(3)  # past the first fetches and metadata
        before, t0 = sum(_cpu_s(p) for p in pids), time.monotonic()
        await asyncio.sleep(seconds)
        return round(100 * (sum(_cpu_s(p) for p in pids) - before) / (time.monotonic() - t0), 1)
    finally:
        for t in tasks:
            t.cancel()
        for c in consumers:
            await c.stop()


async def _measure(bootstrap: str, pids: dict[str, int], records: int, idle_s: float) -> dict[str, Any]:
    settings = Settings()
    waits = {"request": settings.kafka_request_fetch_max_wait_ms, "default": settings.kafka_fetch_max_wait_ms}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = ["produce", *(f"hop{w}" for w in sorted(set(waits.values())))]
        topics += sorted({f"idle.{t}" for _, ts, _ in IDLE_GROUPS for t in ts})
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        await admin.close()
    out: dict[str, Any] = {"produce": await _produce_latency(bootstrap, "produce", records)}
    for wait in sorted(set(waits.values())):
        out[f"hop_wait_{wait}ms"] = await _hop(bootstrap, f"hop{wait}", records // 2, wait)
    out["idle_cpu_pct_of_core"] = await _idle_consumers(bootstrap, waits, idle_s, list(pids.values()))
    out["rss_mb"] = {name: rss_mb(pid) for name, pid in pids.items()}
    return out


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (a loaded 2-core machine moves any one run a lot)."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, dict):
            out[key] = _median([r[key] for r in rounds])
        elif isinstance(value, int | float):
            out[key] = round(statistics.median(r[key] for r in rounds), 2)
        else:
            out[key] = value
    return out


def run(storage: infra.BrokerStorage, records: int, idle_s: float) -> dict[str, Any]:
    from tests.faults import free_port

    with tempfile.TemporaryDirectory(prefix=f"broker-{storage}-") as folder:
        started = infra.Infra()
        try:
            bootstrap = infra.start_kafka(started, Path(folder), free_port(), storage, free_port())
            result = asyncio.run(_measure(bootstrap, started.pids, records, idle_s))
        finally:
            started.stop()
    return {"storage": storage, **result}


def idle_fleet(storage: infra.BrokerStorage, seconds: float, warmup_s: float = 15) -> dict[str, Any]:
    """% of one core each part of a quiet ``spot up`` spends: the broker, its store, the whole fleet."""
    import psutil

    from tests.faults import free_port

    with tempfile.TemporaryDirectory(prefix=f"idle-{storage}-") as folder:
        state = Path(folder) / ".spot"
        flags = ["--durable-broker", "--broker-store-port", str(free_port())] if storage == "disk" else []
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL")}
        up = subprocess.Popen(
            [sys.executable, "-m", "spot.cli", "up", "--state-dir", str(state), "--kafka-port", str(free_port()),
             "--redis-port", str(free_port()), "--port-offset", str(PORT_OFFSET), *flags],
            env={**env, "LOG_LEVEL": "WARNING"}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert up.stdout is not None
            for line in up.stdout:
                if "spot exchange is up" in line:
                    break
            else:
                raise RuntimeError(f"spot up ({storage}) ended before it was up")
            time.sleep(warmup_s)
            procs = psutil.Process(up.pid).children(recursive=True)
            role = {p.pid: ("tansu" if "tansu" in p.name() else "objectstore" if "spot.objectstore" in
                            " ".join(p.cmdline()) else "rest of the fleet") for p in procs}  # fmt: skip
            before, t0 = {p.pid: _cpu_s(p.pid) for p in procs}, time.monotonic()
            time.sleep(seconds)
            spent: dict[str, float] = {}
            for p in procs:
                try:
                    spent[role[p.pid]] = spent.get(role[p.pid], 0.0) + _cpu_s(p.pid) - before[p.pid]
                except OSError:
                    continue
            took = time.monotonic() - t0
            return {"storage": storage, **{k: round(100 * v / took, 1) for k, v in sorted(spent.items())}}
        finally:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(120)
            except subprocess.TimeoutExpired:
                up.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.broker_storage", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400, help="produces timed (and half as many hops per wait)")
    ap.add_argument("--idle-s", type=float, default=20, help="seconds of idle CPU sampling")
    ap.add_argument("--fleet", action="store_true", help="also a quiet `spot up`'s CPU, both ways")
    ap.add_argument("--rounds", type=int, default=3, help="memory and disk in turn, this many times: medians")
    args = ap.parse_args(argv)
    mach = machine()
    rounds = [run(s, args.records, args.idle_s) for _ in range(args.rounds) for s in ("memory", "disk")]
    results = [_median([r for r in rounds if r["storage"] == s]) for s in ("memory", "disk")]
    fleet = [idle_fleet(s, args.idle_s) for s in ("memory", "disk")] if args.fleet else []
    for r in results:
        hops = "  ".join(f"{k[4:]} {v['p50_ms']}/{v['p99_ms']}" for k, v in r.items() if k.startswith("hop_"))
        print(
            f"{r['storage']:<7} produce p50/p99 {r['produce']['p50_ms']}/{r['produce']['p99_ms']} ms  "
            f"hop p50/p99 {hops} ms  idle CPU {r['idle_cpu_pct_of_core']}% of a core  RSS {r['rss_mb']} MB"
        )
    for f in fleet:
        print(f"{f['storage']:<7} quiet spot up, % of a core: " + ", ".join(f"{k} {v}" for k, v in f.items()
                                                                          if k != "storage"))  # fmt: skip
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, load average at start {mach['loadavg']}, at end {loadavg()}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"broker-storage-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {"machine": mach, "loadavg_end": loadavg(), "results": results, "rounds": rounds, "fleet": fleet}, indent=2
        )
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
