"""The outbox keeps a batch until the broker acknowledged it and settlement applied it (``retention.py``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.matcher.retention import release, spans


@st.composite
def contiguous(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Acknowledged entries as a matcher has them: consecutive batches of one symbol, in any order."""
    first, out = draw(st.integers(1, 1_000)), []
    for size in draw(st.lists(st.integers(1, 50), max_size=30)):
        out.append((first, first + size - 1))
        first += size
    return draw(st.permutations(out))


@given(contiguous(), st.integers(0, 3_000), st.integers(0, 40))
def test_what_is_kept_is_every_batch_settlement_has_not_applied_up_to_the_bound(
    acked: list[tuple[int, int]], settled: int, keep_at_most: int
) -> None:
    removed, kept = release(acked, settled, keep_at_most)
    assert sorted(removed + kept) == sorted(acked) and not set(removed) & set(kept)
    unsettled = sorted(e for e in acked if e[1] > settled)
    assert kept == unsettled[max(len(unsettled) - keep_at_most, 0) :], "the newest unsettled, in order"
    assert all(e[1] <= settled for e in removed if e not in unsettled)
    if len(unsettled) <= keep_at_most:  # under the bound: nothing unsettled is ever dropped
        assert all(e[1] <= settled for e in removed)
        # what settlement has not applied is all still there, from the one after its cursor on
        assert sorted(kept) == unsettled


def test_spans_of_a_loaded_outbox_end_where_the_next_begins_and_the_last_at_the_book() -> None:
    assert spans([7, 3, 12], 15) == [(3, 6), (7, 11), (12, 15)]
    assert spans([-1, 4], 9) == [(-1, -1), (4, 9)]  # the legacy entry spans nothing: it goes at once
    assert spans([], 9) == []
    removed, kept = release(spans([3, 7, 12], 15), settled=8)
    assert removed == [(3, 6)] and kept == [(7, 11), (12, 15)], "7..11 is only partly settled: kept whole"
