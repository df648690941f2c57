"""The durable broker's bookkeeping that needs no server: the store's clock, and which objects a killed topic
deletion left behind."""

from __future__ import annotations

import itertools

import pytest

from spot import objectstore
from spot.broker_sweep import orphans
from spot.objectstore import Clock


def test_the_clock_gives_each_write_its_own_later_microsecond() -> None:
    clock = Clock()
    times = [clock.next() for _ in range(10_000)]  # many within one microsecond of the wall clock
    assert all(b > a for a, b in itertools.pairwise(times))
    assert all(t % 1000 == 0 for t in times), "whole microseconds: what a listing shows"


def test_the_clock_never_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    clock.saw(2_000_000_000_000_000_000)  # a file written "in the future" (a clock since stepped back)
    assert clock.next() == 2_000_000_000_000_001_000
    wall = iter([3_000_000_000_000_000_000, 2_999_999_999_000_000_000])  # the wall clock steps back a second
    monkeypatch.setattr(objectstore.time, "time_ns", lambda: next(wall))
    assert clock.next() == 3_000_000_000_000_000_000
    assert clock.next() == 3_000_000_000_000_001_000


def test_listed_times_keep_microseconds() -> None:
    assert objectstore._iso(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert objectstore._iso(1_700_000_000_000_001_000) == "2023-11-14T22:13:20.000001Z"


def test_orphans_are_the_objects_and_group_offsets_of_topics_meta_no_longer_names() -> None:
    c = "clusters/tansu_cluster/"
    keys = [
        f"{c}groups/consumers/matcher.json",
        f"{c}groups/consumers/matcher/offsets/gone/partitions/0000000000.json",
        f"{c}groups/consumers/matcher/offsets/kept/partitions/0000000000.json",
        f"{c}groups/consumers/other/offsets/gone/partitions/0000000003.json",
        f"{c}topics/gone/partitions/0000000000/records/00000000000000000000.batch",
        f"{c}topics/gone/partitions/0000000000/watermark.json",
        f"{c}topics/gone.2/partitions/0000000000/watermark.json",
        f"{c}topics/kept/partitions/0000000000/watermark.json",
    ]
    assert orphans(c, {"kept", "gone.2"}, keys) == {"gone": [keys[1], keys[3], keys[4], keys[5]]}
    assert orphans(c, {"kept", "gone", "gone.2"}, keys) == {}
