"""Open ranges tile the offsets, skip re-published events, and cut a redone range at its exact boundary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.trade_archiver.layout import Span
from services.trade_archiver.parquet import TradeRow, rows_of
from services.trade_archiver.ranges import Cut, OpenRange
from shared.messages import TradeExecution
from tests.unit.trade_archiver.flows import MARKETS, T0, execution


def rows(execution: TradeExecution, offset: int) -> list[TradeRow]:
    return rows_of(execution, MARKETS[execution.symbol], 0, offset)


def cut_of(r: OpenRange) -> Cut:
    cut = r.cut()
    assert cut is not None, "nothing to cut"
    return cut


def test_a_cut_covers_poison_gaps_and_the_next_range_follows_it():
    r = OpenRange(0, 100, {})
    r.feed([(100, execution("BTCUSDT", 1, [1], T0)), (103, execution("BTCUSDT", 2, [2, 3], T0))], 105, rows, 0.0)
    cut = cut_of(r)
    assert cut.span == Span(0, 100, 104)  # 101, 102 and 104 were dead-lettered: inside the range all the same
    assert [row.trade_id for row in cut.rows] == [1, 2, 3]
    assert r.cut() is None
    r.feed([], 107, rows, 1.0)  # a batch of poison only
    assert cut_of(r).span == Span(0, 105, 106)


def test_an_execution_refused_by_its_rows_stays_in_the_range_without_taking_its_seq():
    refused = execution("BTCUSDT", 10**20, [7], T0)  # a seq no real event reaches: had it been taken, ...

    def rows_or_refused(e: TradeExecution, offset: int) -> list[TradeRow] | None:
        return None if e is refused else rows(e, offset)

    r = OpenRange(0, 0, {})
    r.feed(
        [(0, execution("BTCUSDT", 1, [1], T0)), (1, refused), (2, execution("BTCUSDT", 2, [2], T0))],
        3,
        rows_or_refused,
        0.0,
    )
    cut = cut_of(r)
    assert cut.span == Span(0, 0, 2) and [row.trade_id for row in cut.rows] == [1, 2]  # ... 2 would be skipped
    assert cut.seqs == {"BTCUSDT": 2}


def test_a_re_published_event_is_skipped_across_cuts_and_restarts():
    r = OpenRange(0, 0, {"BTCUSDT": 4})
    r.feed([(0, execution("BTCUSDT", 4, [9], T0)), (1, execution("BTCUSDT", 5, [10], T0))], 2, rows, 0.0)
    r.feed([(2, execution("BTCUSDT", 5, [10], T0)), (3, execution("ETHUSDT", 1, [1], T0))], 4, rows, 0.0)
    cut = cut_of(r)
    assert [(row.symbol, row.trade_id) for row in cut.rows] == [("BTCUSDT", 10), ("ETHUSDT", 1)]
    assert cut.duplicates == 2 and cut.seqs == {"BTCUSDT": 5, "ETHUSDT": 1}


def test_offsets_already_taken_are_ignored_after_a_seek():
    r = OpenRange(0, 10, {})
    r.feed([(8, execution("BTCUSDT", 1, [1], T0)), (10, execution("BTCUSDT", 2, [2], T0))], 11, rows, 0.0)
    r.feed([(10, execution("BTCUSDT", 2, [2], T0)), (11, execution("BTCUSDT", 3, [3], T0))], 12, rows, 0.0)
    assert [row.trade_id for row in cut_of(r).rows] == [2, 3]


@given(st.lists(st.integers(1, 6), min_size=1, max_size=20), st.integers(0, 19))
def test_a_redone_range_is_cut_at_its_boundary_however_the_batches_fall(sizes, boundary):
    log = [execution("BTCUSDT", i + 1, [i + 1], T0) for i in range(20)]
    r = OpenRange(0, 0, {}, redo_until=boundary)
    cuts, pos, i = [], 0, 0
    while pos < len(log):
        n = sizes[i % len(sizes)]
        cuts += r.feed(list(enumerate(log))[pos : pos + n], min(pos + n, len(log)), rows, 0.0)
        if not cuts:
            assert r.cut() is None, "a flush cut the redone range before its boundary"
        pos, i = pos + n, i + 1
    first = cuts[0]
    assert first.span == Span(0, 0, boundary)
    assert [row.trade_id for row in first.rows] == list(range(1, boundary + 2))


def test_nothing_to_cut_before_anything_is_consumed():
    assert OpenRange(0, 5, {}).cut() is None
    assert not OpenRange(0, 5, {}).pending


def test_every_execution_of_an_envelope_is_taken_once_though_they_share_an_offset():
    """The matcher's envelope: one record (offset) carries a symbol's executions of one batch."""
    r = OpenRange(0, 0, {})
    envelope = [execution("BTCUSDT", 1, [1], T0), execution("BTCUSDT", 3, [2, 3], T0), execution("BTCUSDT", 4, [4], T0)]
    r.feed([(0, e) for e in envelope] + [(1, execution("ETHUSDT", 1, [1], T0))], 2, rows, 0.0)
    r.feed([(1, execution("ETHUSDT", 1, [1], T0))] + [(2, e) for e in envelope], 3, rows, 0.0)  # seek + re-publish
    cut = cut_of(r)
    assert [(row.symbol, row.trade_id, row.kafka_offset) for row in cut.rows] == [
        ("BTCUSDT", 1, 0),
        ("BTCUSDT", 2, 0),
        ("BTCUSDT", 3, 0),
        ("BTCUSDT", 4, 0),
        ("ETHUSDT", 1, 1),
    ]
    assert cut.duplicates == 3 and cut.seqs == {"BTCUSDT": 4, "ETHUSDT": 1}


def test_a_redo_boundary_at_an_envelope_keeps_all_of_its_executions_in_the_redone_range():
    r = OpenRange(0, 0, {}, redo_until=1)
    first = [(0, execution("BTCUSDT", 1, [1], T0))]
    envelope = [(1, execution("BTCUSDT", 2, [2], T0)), (1, execution("BTCUSDT", 3, [3], T0))]
    after = [(2, execution("BTCUSDT", 4, [4], T0)), (2, execution("BTCUSDT", 5, [5], T0))]
    assert r.feed(first, 1, rows, 0.0) == []
    cuts = r.feed(envelope + after, 3, rows, 0.0)  # a batch holds all of a record's executions, never part
    assert [c.span for c in cuts] == [Span(0, 0, 1)]
    assert [row.trade_id for row in cuts[0].rows] == [1, 2, 3]
    assert [row.trade_id for row in cut_of(r).rows] == [4, 5]
