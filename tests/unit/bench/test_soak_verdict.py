"""The soak's verdict is the issue's: every minute within the bound, every process within 10% after warm-up."""

from __future__ import annotations

from bench.soak_verdict import growth_pct, memory_flat, minutes_within


def _minute(i: int, p99: float | None, acked: int = 100) -> dict[str, object]:
    return {"minute": i, "acked": acked, "confirm_p99_ms": p99}


def test_one_slow_minute_among_good_ones_fails_the_hour_and_is_named() -> None:
    rows = [_minute(0, 80.0), _minute(1, 99.9), _minute(2, 136.0), _minute(3, 100.0)]
    assert minutes_within(rows) == (3, 4, 3, 136.0)


def test_a_minute_that_acked_orders_but_confirmed_none_is_the_worst() -> None:
    rows = [_minute(0, 250.0), _minute(1, None), _minute(2, 50.0)]
    within, counted, worst, worst_p99 = minutes_within(rows)
    assert (within, counted, worst, worst_p99) == (1, 3, 2, None)


def test_a_minute_with_nothing_acked_is_not_held_against_the_run() -> None:
    assert minutes_within([_minute(0, None, acked=0), _minute(1, 40.0)]) == (2, 2, 2, 40.0)


def test_growth_is_relative_to_the_size_after_warm_up() -> None:
    growth = {
        "broker": {"after_warm_up": 55.6, "end": 63.5, "mb_per_min": 0.14},  # +14%: the 2026-12-07 hour
        "gateway": {"after_warm_up": 108.0, "end": 108.5, "mb_per_min": 0.01},
        "order-processor": {"after_warm_up": None, "end": 70.0, "mb_per_min": None},  # exited: left out
    }
    grown = growth_pct(growth)
    assert [(g.process, g.pct) for g in grown] == [("broker", 14.2), ("gateway", 0.5)]
    assert not memory_flat(growth)
    assert memory_flat({"postgres": {"after_warm_up": 184.0, "end": 187.0, "mb_per_min": 0.05}})


def test_no_reading_proves_nothing() -> None:
    assert not memory_flat({})
