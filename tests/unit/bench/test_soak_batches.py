"""The soak's view of what a batch costs each consumer: batches a second from its fetch counter, CPU per batch."""

from __future__ import annotations

from typing import Any

from bench.soak import batch_costs, format_row, machine_busy, machine_ticks


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


def _row() -> dict[str, Any]:
    """A minute's row with nothing measured beyond the load generator's counts."""
    return {"minute": 0, "offered": 1, "acked": 1, "cancels_ok": 0, "confirmed": 1, "errors": {}, "ack_p50_ms": 1.0,
            "ack_p99_ms": 2.0, "confirm_p50_ms": 3.0, "confirm_p99_ms": 4.0, "lag": {}, "rss_mb": {}}
