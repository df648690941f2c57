"""The matching core as installed: compiled when an extension was built, never older than its source, and
with the snapshot format (``records.py``) the same either way.

``setup.py`` compiles ``services/matcher/book.py`` with mypyc; the pure module is the fallback
(``SPOT_PURE_PYTHON=1``, no C compiler). The property tests in ``test_book.py`` run against whichever was
imported; run them against the pure one with ``SPOT_PURE_PYTHON=1 pip install --no-deps -e .`` first.
"""

from __future__ import annotations

import gc
from pathlib import Path

import msgspec
import pytest

from services.matcher import book
from services.matcher.records import PlainOrder
from shared.booksnapshot import BookState, RestingOrder
from shared.domain import Side
from tests.unit.matcher.test_book import MARKET, Flow

SOURCE = Path(book.__file__).with_name("book.py")
# mypyc builds two: book.*.so, a shim that never changes, and book__mypyc.*.so, the compiled code
EXTENSIONS = sorted(p for p in SOURCE.parent.glob("book*") if p.suffix in (".so", ".pyd"))


def test_compiled_flag_says_which_module_was_imported() -> None:
    assert book.COMPILED == (not book.__file__.endswith(".py")), book.__file__


@pytest.mark.skipif(not EXTENSIONS, reason="no compiled core next to book.py (a pure-Python install)")
def test_compiled_core_is_in_use_and_current() -> None:
    assert book.COMPILED, f"{EXTENSIONS[0].name} was built but {book.__file__} was imported"
    built, edited = max(p.stat().st_mtime for p in EXTENSIONS), SOURCE.stat().st_mtime
    assert built >= edited, (
        f"the compiled core ({', '.join(p.name for p in EXTENSIONS)}) is older than book.py, so the tests run "
        f"the old code: rebuild it with `pip install --no-deps -e .`, or delete it to run pure Python"
    )


def test_snapshot_records_keep_their_wire_format() -> None:
    """mypyc drops class keywords, which is why these live in records.py, outside the compiled module."""
    for record in (RestingOrder, BookState):
        assert record.__struct_config__.array_like, record
    assert not RestingOrder.__struct_config__.gc
    assert msgspec.msgpack.encode(BookState()) == msgspec.msgpack.encode([0, 1, -1, -1, 1, 0])
    assert msgspec.msgpack.decode(msgspec.msgpack.encode([5, 2, 0, 9]), type=BookState) == BookState(5, 2, 0, 9, 1)


def test_resting_orders_are_not_tracked_by_the_collector() -> None:
    """The book's own orders hold only scalars: compiled, ``_Order`` is ``acyclic``; pure, a ``gc=False`` struct.

    Tracked, the collector's walks over a deep book would cost about a sixth of the core's work."""
    core = book.Book(MARKET)
    core.apply(Flow().limit(1, Side.SELL, 100, 1), 0)
    assert not gc.is_tracked(core._orders[1])


def test_events_that_traded_nothing_share_one_empty_trade_list() -> None:
    """A resting order's and a cancel's event carry ``_NO_TRADES`` (no list allocated per event); a crossing
    order's its own list. Nothing may append to it: every later event without trades would report them."""
    core = book.Book(MARKET)
    flow = Flow()
    rested = core.apply(flow.limit(1, Side.SELL, 100, 2), 0)
    cancelled = core.apply(flow.cancel(1, 1), 0)
    core.apply(flow.limit(1, Side.SELL, 100, 2), 0)
    crossed = core.apply(flow.limit(2, Side.BUY, 100, 1), 0)
    assert rested is not None and cancelled is not None and crossed is not None
    assert rested.trades is book._NO_TRADES and cancelled.trades is book._NO_TRADES
    assert crossed.trades is not book._NO_TRADES and len(crossed.trades) == 1
    assert book._NO_TRADES == []


def test_pure_working_order_has_the_snapshot_fields() -> None:
    """``PlainOrder`` (the uncompiled ``_Order``) is built positionally with ``RestingOrder``'s fields up to
    ``stp`` (the stop's fields after them are an untriggered stop's, which the book keeps apart), then takes
    the iceberg's four, which ``_from_record`` reads at their own index."""
    resting = RestingOrder.__struct_fields__[: book._RESTING_FIELDS]
    assert resting[-1] == "stp"
    iceberg = ("iceberg_lots", "hidden", "sub", "maker_bps")
    at = book._ICEBERG_FIELDS
    assert RestingOrder.__struct_fields__[at : at + 4] == iceberg
    assert RestingOrder.__struct_fields__[book._RESTING_FIELDS : book._RESTING_FIELDS + 6] == (
        "stop_ticks", "trailing_delta", "trail_ticks", "trail_ts", "budget", "working_ts",
    )  # fmt: skip
    assert PlainOrder.__struct_fields__ == (*resting, *iceberg, "dead")
    assert not PlainOrder.__struct_config__.gc
