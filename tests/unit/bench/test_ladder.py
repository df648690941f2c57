"""The ladder's figures of a rung, from a soak result of one minute."""

from __future__ import annotations

from bench.ladder import rung


def test_a_rung_counts_refusals_apart_and_the_whole_fleets_cpu_per_confirmed_order() -> None:
    res = {
        "rate": 1000.0,
        "minutes": 1,
        "unconfirmed": 0,
        "rows": [{"cpu_pct": {"gateway": 90, "broker": 60, "postgres": 50}}],  # 2 cores busy for the minute
        "load": {"total": {"offered": 60_000, "confirmed": 30_000, "errors": {"503:-1008": 27_000, "400:-2011": 5,
                           "503:-1001": 2}, "ack_p50_ms": 3.0, "ack_p99_ms": 9.0, "confirm_p50_ms": 20.0,
                           "confirm_p99_ms": 90.0}},
    }  # fmt: skip
    r = rung(res)
    assert r["confirmed_per_s"] == 500.0
    assert r["refused"] == 27_000 and r["refused_share"] == 0.45
    assert r["other_errors"] == {"503:-1001": 2}  # a cancel of an order already gone (-2011) is not an error
    assert r["cpu_ms_per_order"] == 4.0  # 120 core-seconds over 30,000 orders
