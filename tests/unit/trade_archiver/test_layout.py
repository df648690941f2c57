"""Object keys name a file's partition and offset range; a file is committed exactly when its manifest is."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.trade_archiver.layout import (
    Span,
    committed,
    data_key,
    data_span,
    intent_key,
    latest_key,
    manifest_key,
    manifest_span,
    namespace,
)

spans = st.builds(
    lambda p, first, n: Span(p, first, first + n),
    st.integers(0, 1023),
    st.integers(0, 2**62),
    st.integers(0, 10**6),
)


@given(spans, st.sampled_from(["2026-01-01", "1999-12-31"]), st.sampled_from(["BTCUSDT", "ETHUSDT", "1INCHUSDT"]))
def test_keys_carry_their_span_back(span, dt, symbol):
    key = data_key(dt, symbol, span)
    assert key.startswith(f"trades/dt={dt}/symbol={symbol}/p{span.partition}-")
    assert data_span(key) == span
    assert manifest_span(manifest_key(span)) == span


@given(spans, spans)
@example(Span(0, 999_999_999_999, 999_999_999_999), Span(0, 10**12, 10**12))  # one more digit
@example(Span(0, 9, 99), Span(0, 100, 100))
def test_manifest_keys_sort_in_offset_order_for_every_int64_offset(a, b):
    a, b = Span(0, a.first, a.last), Span(0, b.first, b.last)
    assert (manifest_key(a) < manifest_key(b)) == ((a.first, a.last) < (b.first, b.last))


def test_the_largest_offset_fits_the_padding():
    top = Span(0, 2**63 - 2, 2**63 - 1)
    assert manifest_key(Span(0, 9 * 10**17, 9 * 10**17)) < manifest_key(top)
    assert manifest_span(manifest_key(top)) == top
    assert len(manifest_key(top)) == len(manifest_key(Span(0, 0, 0)))


def test_the_intent_and_the_latest_pointer_are_not_manifests():
    assert manifest_span(intent_key(3)) is None and manifest_span(latest_key(3)) is None
    assert intent_key(3).startswith("manifests/p3/") and latest_key(3).startswith("manifests/p3/")


@pytest.mark.parametrize("symbol", ["../etc", "BTC/USDT", "", ".hidden", "BTC USDT"])
def test_a_symbol_that_would_escape_its_folder_is_refused(symbol):
    with pytest.raises(ValueError, match="symbol"):
        data_key("2026-01-01", symbol, Span(0, 0, 0))


def test_a_malformed_date_is_refused():
    with pytest.raises(ValueError, match="dt"):
        data_key("2026-1-1", "BTCUSDT", Span(0, 0, 0))


def test_only_files_of_committed_spans_are_committed():
    done, open_ = Span(0, 0, 9), Span(0, 10, 19)
    files = [data_key("2026-01-01", "BTCUSDT", done), data_key("2026-01-02", "BTCUSDT", done)]
    unfinished = data_key("2026-01-02", "ETHUSDT", open_)
    other_partition = data_key("2026-01-01", "BTCUSDT", Span(1, 0, 9))
    assert committed([unfinished, *files, other_partition], [manifest_key(done), intent_key(0)]) == sorted(files)


def test_a_suffixed_run_gets_its_own_namespace():
    assert namespace("") == ""
    assert namespace(".t1a2b3c") == "t1a2b3c/"
    with pytest.raises(ValueError):
        namespace("./../x")
