"""Kline buckets against a calendar model: Python's datetime on the zone's clock, counted the slow way.

Every interval and zone: a trade's candle holds it, candles follow each other without gap or overlap, weeks
open on Mondays and months on the 1st at 00:00 on the zone's clock; the stored level chosen for a roll-up
divides every candle exactly; the open times a request answers are the model's (every candle from the first
trade's to now's, filtered by startTime/endTime, the oldest or newest ``limit``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.candles import (
    DAY_MS,
    HOUR_MS,
    INTERVALS,
    LEVELS,
    MINUTE_MS,
    Candle,
    Interval,
    bucket_open,
    fill,
    format_offset,
    level_for,
    next_open,
    opens,
    parse_time_zone,
    previous_open,
    same_as_utc,
    stream_kind,
)

YEAR_MS = 365 * DAY_MS
times = st.integers(1_000_000_000_000, 2_500_000_000_000)  # 2001 .. 2049
intervals = st.sampled_from(list(INTERVALS.values()))
offsets = st.integers(-12 * 60, 14 * 60).map(lambda minutes: minutes * MINUTE_MS)
common_offsets = st.sampled_from([0, 8 * HOUR_MS, -5 * HOUR_MS, 5 * HOUR_MS + 45 * MINUTE_MS, 14 * HOUR_MS])


def model_open(ts: int, name: str, offset_ms: int) -> int:
    """The candle's open on a calendar: the zone's wall clock, truncated as a person would."""
    local = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts + offset_ms)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "1M":
        start = midnight.replace(day=1)
    elif name == "1w":
        start = midnight - timedelta(days=local.weekday())
    elif name == "3d":
        start = midnight - timedelta(days=(midnight - datetime(1970, 1, 1, tzinfo=UTC)).days % 3)
    elif name == "1d":
        start = midnight
    else:  # widths that divide a day: whole widths since midnight
        width = int(name[:-1]) * {"s": 1, "m": 60, "h": 3600}[name[-1]]
        since = int((local - midnight).total_seconds())
        start = midnight + timedelta(seconds=since - since % width)
    return int((start - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1)) - offset_ms


@given(times, intervals, offsets)
@example(1_700_000_000_000, INTERVALS["1w"], 0)
@example(1_704_067_200_000, INTERVALS["1M"], -HOUR_MS)  # 2024-01-01 00:00 UTC is still December at -1:00
def test_a_trades_candle_is_the_calendars_and_holds_it(ts: int, iv: Interval, offset: int) -> None:
    o = bucket_open(ts, iv, offset)
    assert o <= ts < next_open(o, iv, offset)
    assert o == model_open(ts, iv.name, offset)


@given(times, intervals, offsets)
def test_candles_follow_each_other_without_gap_or_overlap(ts: int, iv: Interval, offset: int) -> None:
    o = bucket_open(ts, iv, offset)
    after = next_open(o, iv, offset)
    assert bucket_open(after, iv, offset) == after and bucket_open(after - 1, iv, offset) == o
    assert previous_open(after, iv, offset) == o and previous_open(o, iv, offset) < o


@given(times, intervals, offsets)
def test_the_stored_level_divides_every_candle(ts: int, iv: Interval, offset: int) -> None:
    """A candle rolls up exactly from stored (UTC-aligned) candles: its open and close are on the level's grid."""
    level = level_for(iv, offset)
    assert level in LEVELS
    o = bucket_open(ts, iv, offset)
    assert o % level == 0 and next_open(o, iv, offset) % level == 0


def test_the_widest_level_is_chosen() -> None:
    assert level_for(INTERVALS["1s"]) == 1_000 and level_for(INTERVALS["5m"]) == MINUTE_MS
    assert level_for(INTERVALS["30m"]) == 15 * MINUTE_MS
    assert level_for(INTERVALS["1M"], 8 * HOUR_MS) == HOUR_MS
    assert level_for(INTERVALS["1d"], 5 * HOUR_MS + 45 * MINUTE_MS) == 15 * MINUTE_MS
    assert level_for(INTERVALS["1w"], 5 * HOUR_MS + 50 * MINUTE_MS) == MINUTE_MS


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [("0", 0), ("8", 480), ("+8", 480), ("-1:00", -60), ("05:45", 345), ("+08:00", 480), ("-12:00", -720), ("14", 840)],
)
def test_time_zones_binance_names(raw: str, minutes: int) -> None:
    assert parse_time_zone(raw) == minutes * MINUTE_MS


@pytest.mark.parametrize("raw", ["", "abc", "8h", "14:01", "-12:01", "15", "5:60", "+-1", "1:5", "٣", "08:00:00"])
def test_time_zones_outside_binance_range_or_grammar_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="timeZone"):
        parse_time_zone(raw)


@given(st.integers(-12 * 60, 14 * 60))
def test_a_zones_name_reads_back(minutes: int) -> None:
    assert parse_time_zone(format_offset(minutes * MINUTE_MS)) == minutes * MINUTE_MS


def test_zoned_streams_share_utcs_where_the_candles_are_the_same() -> None:
    eight = 8 * HOUR_MS
    differ = [iv.name for iv in INTERVALS.values() if not same_as_utc(iv, eight)]
    assert differ == ["6h", "12h", "1d", "3d", "1w", "1M"]
    assert stream_kind(INTERVALS["4h"], eight) == "kline_4h"
    assert stream_kind(INTERVALS["1d"], eight) == "kline_1d@+08:00"


def model_opens(
    iv: Interval, offset: int, first: int, now: int, start: int | None, end: int | None, limit: int
) -> list[int]:
    every, t = [], bucket_open(first, iv, offset)
    while t <= now:
        every.append(t)
        t = next_open(t, iv, offset)
    kept = [t for t in every if (start is None or t >= start) and (end is None or t <= end)]
    return kept[:limit] if start is not None else kept[-limit:]


small_intervals = st.sampled_from([INTERVALS[n] for n in ("1m", "3m", "1h", "6h", "1d", "3d", "1w", "1M")])


@given(
    small_intervals,
    common_offsets,
    st.integers(0, 400),  # the first trade, in days after 2020-01-01
    st.integers(0, 400),  # now, in days after the first trade
    st.one_of(st.none(), st.integers(-30, 900)),  # startTime, in days after 2020-01-01
    st.one_of(st.none(), st.integers(-30, 900)),  # endTime
    st.integers(1, 1000),
)
def test_a_requests_open_times_are_the_models(
    iv: Interval, offset: int, first_d: int, now_d: int, start_d: int | None, end_d: int | None, limit: int
) -> None:
    if iv.width_ms and iv.width_ms < HOUR_MS:
        now_d = min(now_d, 3)  # keep the model's walk short for minutes
    base = 1_577_836_800_000 + 12_345
    first, now = base + first_d * DAY_MS, base + (first_d + now_d) * DAY_MS + 7_777
    start = None if start_d is None else base + start_d * DAY_MS
    end = None if end_d is None else base + end_d * DAY_MS
    got = opens(iv, offset, first_trade=first, now=now, start=start, end=end, limit=limit)
    assert got == model_opens(iv, offset, first, now, start, end, limit)


def test_nothing_is_answered_before_the_first_trade() -> None:
    iv = INTERVALS["1m"]
    assert opens(iv, 0, first_trade=None, now=10**12, start=None, end=None, limit=500) == []


def test_candles_with_no_trade_carry_the_previous_close() -> None:
    iv = INTERVALS["1m"]
    traded = Candle(0, MINUTE_MS - 1, 10, 12, 9, 11, 5, 55, 2, 1, 10, 1, 2)
    got = fill(iv, 0, [0, MINUTE_MS, 2 * MINUTE_MS], {0: traded}, None)
    assert got[0] is traded
    assert [(c.open, c.high, c.low, c.close, c.volume, c.trades) for c in got[1:]] == [(11, 11, 11, 11, 0, 0)] * 2
    assert got[2].close_time == 3 * MINUTE_MS - 1
    assert [c.open for c in fill(iv, 0, [MINUTE_MS], {}, 7)] == [7]


@given(st.lists(st.integers(-(2**62), 2**62), min_size=13, max_size=13))
def test_a_candles_values_are_its_fields_in_order_and_rebuild_it(values: list[int]) -> None:
    candle = Candle(*values)
    assert candle.values() == list(dataclasses.astuple(candle))
    assert Candle(*candle.values()) == candle
