"""Admission by measured backlog (``shared.pressure``): the pure rules, against a simple model."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import Settings
from shared.pressure import Gate, backlog_ms, encode, refused_share, stale

NOW = 1_000_000


@given(st.integers(0, 10_000), st.integers(1, 5_000))
def test_the_refused_share_is_none_within_the_budget_all_past_twice_it(backlog: int, budget: int) -> None:
    share = refused_share(backlog, budget)
    assert 0.0 <= share <= 1.0
    if backlog <= budget:
        assert share == 0.0
    elif backlog >= 2 * budget:
        assert share == 1.0
    else:
        assert share == (backlog - budget) / budget
    assert refused_share(backlog + 1, budget) >= share  # more waiting never admits more


@given(st.integers(0, 10_000))
def test_a_budget_of_zero_turns_admission_off(backlog: int) -> None:
    assert refused_share(backlog, 0) == 0.0


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.tuples(st.integers(0, 5_000), st.integers(0, 5_000))))
def test_the_backlog_is_the_longest_fresh_report(reports: dict[str, tuple[int, int]]) -> None:
    """Model: a report made ``ago`` ms before now counts if ``ago`` is at most the freshness bound."""
    raw = {name: encode(age, NOW - ago).encode() for name, (age, ago) in reports.items()}
    fresh = [age for age, ago in reports.values() if ago <= 1_000]
    assert backlog_ms(raw, NOW, fresh_ms=1_000) == max(fresh, default=0)


def test_unreadable_reports_count_for_nothing_and_are_pruned_with_the_forgotten() -> None:
    raw = {b"a": b"300 999900", b"b": b"garbage", b"c": encode(900, NOW - 61_000), b"d": b"\xff\xfe"}
    assert backlog_ms(raw, NOW) == 300
    assert sorted(stale(raw, NOW)) == [b"b", b"c", b"d"]


def test_the_gate_logs_once_when_it_closes_naming_the_reading_and_once_when_it_opens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate(None, Settings(admit_backlog_ms=200))
    caplog.set_level(logging.INFO, logger="shared.pressure")
    # the lowest of the last five: a stall of four readings closes nothing, a fifth does (60 ms -> 240 ms)
    for lag in (10, 90, 90, 90, 90, 60, 70, 80, 0):
        gate.loop_lagged(lag)
        gate.log_turn()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "admission refusing new orders (budget 200 ms): processor backlog 0 ms, loop lag 60 ms x 4"),
        ("INFO", "admission open again: processor backlog 0 ms, loop lag 0 ms x 4"),
    ]
