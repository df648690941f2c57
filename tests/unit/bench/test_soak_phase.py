"""The soak's view of slow confirmations: by how long after their log segment started they were sent."""

from __future__ import annotations

from bench.soak import segment_starts, slow_by_phase

LOG = "\n".join([
    'order-processor | {"ts": 100.5, "level": "INFO", "logger": "shared.segment_keeper", '
    '"msg": "segment 1 starts in 1000 ms (slot 1)", "service": "order-processor"}',
    'gateway | {"ts": 105.0, "level": "INFO", "msg": "something else"}',
    'order-processor | {"ts": 111.5, "level": "INFO", "logger": "shared.segment_keeper", '
    '"msg": "segment 2 starts in 1000 ms (slot 2)", "service": "order-processor"}',
])


def test_segment_starts_are_the_announced_instants() -> None:
    assert segment_starts(LOG) == [101.5, 112.5]


def test_slow_confirmations_are_counted_by_whole_seconds_into_their_segment() -> None:
    slow = [[101.6, 0.3], [102.9, 0.2], [112.5, 0.4], [111.0, 0.2], [99.0, 0.5]]  # the last before any start
    assert slow_by_phase(slow, [101.5, 112.5]) == {0: 2, 1: 1, 9: 1}
