"""Recovery trusts the manifests: resume after the last one, cut a crashed range again, drop a stale intent."""

from __future__ import annotations

import pytest

from services.trade_archiver.layout import Span
from services.trade_archiver.manifest import Intent, Manifest, gaps, plan


def manifest(first: int, last: int, seqs: dict[str, int] | None = None) -> Manifest:
    return Manifest(partition=0, first=first, last=last, files=[], rows=0, seqs=seqs or {}, committed_ms=0)


def intent(first: int, last: int) -> Intent:
    return Intent(partition=0, first=first, last=last, files=["trades/x.parquet"])


SPANS = [Span(0, 0, 9), Span(0, 10, 24)]


def test_a_partition_never_archived_starts_where_kafka_left_it():
    decided = plan([], None, None)
    assert decided.start is None and decided.redo is None and decided.seqs == {}


def test_resume_right_after_the_last_manifest_with_its_sequences():
    decided = plan(SPANS, manifest(10, 24, {"BTCUSDT": 7}), None)
    assert (decided.start, decided.seqs, decided.redo, decided.stale_intent) == (25, {"BTCUSDT": 7}, None, False)


def test_an_intent_past_the_last_manifest_is_cut_again_exactly():
    decided = plan(SPANS, manifest(10, 24), intent(25, 40))
    assert decided.start == 25
    assert decided.redo == intent(25, 40)


def test_an_intent_on_a_partition_without_manifests_is_cut_again():
    decided = plan([], None, intent(3, 8))
    assert decided.start == 3 and decided.redo == intent(3, 8)


def test_an_intent_a_manifest_already_commits_is_stale():
    decided = plan(SPANS, manifest(10, 24), intent(10, 24))
    assert decided.start == 25 and decided.redo is None and decided.stale_intent


def test_an_intent_that_skips_offsets_is_refused():
    with pytest.raises(ValueError, match="does not follow"):
        plan(SPANS, manifest(10, 24), intent(30, 40))


def test_a_head_that_is_not_the_latest_manifest_is_refused():
    with pytest.raises(ValueError, match="not the latest"):
        plan(SPANS, manifest(0, 9), None)


def test_gaps_between_manifests_are_found():
    assert gaps(SPANS) == []
    assert gaps([Span(0, 0, 9), Span(0, 15, 20), Span(0, 21, 30)]) == [(10, 14)]
