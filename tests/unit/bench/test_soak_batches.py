"""The soak's view of what a batch costs each consumer (batches a second from its fetch counter, CPU per batch),
of how busy the machine was, and of how long each process waited for a core."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.soak import batch_costs, cpu_share, format_row, machine_busy, machine_ticks, waited_seconds

BURN_ON_CORE_0 = "import os, time\nos.sched_setaffinity(0, {0})\nt = time.time()\nwhile time.time() - t < 3: pass"


def test_a_batch_costs_the_consumer_its_cpu_over_the_batches_it_took() -> None:
    before = {"order-processor": 1_000.0, "matcher": 500.0, "settlement": 7.0}
    after = {"order-processor": 7_000.0, "matcher": 500.0, "settlement": 7.0, "market-data": 1_200.0}
    costs = batch_costs(before, after, 60.0, {"order-processor": 27, "matcher": 3, "market-data": 12})
    assert costs["order-processor"] == {"per_s": 100.0, "cpu_ms": 2.7}  # 27% of a core over 100 batches/s
    assert costs["matcher"] == {"per_s": 0.0, "cpu_ms": None}  # idle: no batch to charge
    assert costs["settlement"] == {"per_s": 0.0, "cpu_ms": None}  # its CPU not measured
    assert costs["market-data"] == {"per_s": 20.0, "cpu_ms": 6.0}  # new since the last reading: counted from 0


def test_the_minute_row_shows_the_batches_when_measured() -> None:
    row = _row()
    assert "batches/s" not in format_row(row)
    row["batches"] = {"order-processor": {"per_s": 96.0, "cpu_ms": 2.8}, "matcher": {"per_s": 0.0, "cpu_ms": None}}
    assert format_row(row).endswith("batches/s (CPU each): op 96 (2.8 ms) ma 0")


def test_the_machine_is_busy_for_what_it_did_not_spend_idle_or_waiting_on_disk() -> None:
    before = (1000.0, 850.0, 0.0)  # (total, idle or waiting on disk, stolen) CPU seconds, as machine_ticks gives
    busy = machine_busy(before, (1200.0, 880.0, 20.0))
    assert busy == {"busy": 85.0, "steal": 10.0}  # 170 of 200 seconds busy (the stolen among them), 30 idle
    assert machine_busy(before, before) == {"busy": 0.0, "steal": 0.0}  # no time passed: nothing to divide
    total, idle, steal = machine_ticks()  # this machine's own counters
    assert total >= idle >= 0 and steal >= 0


def test_the_minute_row_shows_how_busy_the_machine_was_when_measured() -> None:
    row = _row()
    assert "machine busy" not in format_row(row)
    row["machine"] = {"busy": 98.2, "steal": 0.0}
    assert "machine busy 98.2% (steal 0.0%)" in format_row(row)


def test_three_processes_sharing_one_core_each_wait_for_it() -> None:
    burners = [subprocess.Popen([sys.executable, "-c", BURN_ON_CORE_0]) for _ in range(3)]
    try:
        procs = {name: p.pid for name, p in zip("abc", burners, strict=True)}
        time.sleep(0.5)  # all three started and pinned
        before, then = waited_seconds(procs, {}), time.monotonic()
        time.sleep(1.0)
        waited = cpu_share(before, waited_seconds(procs, {}), time.monotonic() - then)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    # each runs a third of the core's time and waits two thirds: together two cores' worth, where the time they
    # ran is one core's at most
    assert sum(waited.values()) >= 130, waited
    assert waited_seconds({"gone": burners[0].pid}, {"postgres": []}) == {"gone": {}, "postgres": {}}


def test_a_process_that_ends_or_starts_between_readings_counts_for_its_own_time_only() -> None:
    before = {"postgres": {101: 10.0, 102: 50.0}, "gateway": {7: 3.0}}  # backend 102 ends before the next reading
    after = {"postgres": {101: 16.0, 103: 3.0}, "gateway": {7: 9.0}, "broker": {9: 1.0}}  # 103 and the broker new
    assert cpu_share(before, after, 10.0) == {"postgres": 90, "gateway": 60, "broker": 10}


def test_the_minute_row_shows_the_wait_for_a_core_when_measured() -> None:
    row = _row()
    assert "waited for a core" not in format_row(row)
    row["waited_pct"] = {"gateway": 57, "broker": 80}
    assert "waited for a core %: gw 57 broker 80" in format_row(row)


def _row() -> dict[str, Any]:
    """A minute's row with nothing measured beyond the load generator's counts."""
    return {"minute": 0, "offered": 1, "acked": 1, "cancels_ok": 0, "confirmed": 1, "errors": {}, "ack_p50_ms": 1.0,
            "ack_p99_ms": 2.0, "confirm_p50_ms": 3.0, "confirm_p99_ms": 4.0, "lag": {}, "rss_mb": {}}


def test_the_minute_row_shows_the_upkeep_that_ran_in_it() -> None:
    row = _row()
    assert "upkeep" not in format_row(row)
    row["upkeep"] = {"autovacuum": 1, "autoanalyze": 2, "checkpoints": 0, "redis_forks": 1}
    assert format_row(row).endswith("upkeep: autovacuum 1 autoanalyze 2 checkpoints 0 redis_forks 1")
