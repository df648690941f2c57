"""The audit's comparison of one symbol (``spot.audit.book_differences``), pure: for any flow of limit orders, the
book the pure core built, its orders as Postgres rows and its depth as market data shows it agree; each thing
changed behind the audit's back is named; stores at different sequences are not compared at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from services.matcher.book import Book, RestingOrder
from shared.domain import OrderType, Side, StpMode, TimeInForce
from shared.messages import AcceptedOrder
from shared.postgres import DEFAULT_MARKETS
from spot.audit import HotView, book_differences

MARKET = DEFAULT_MARKETS[0]  # BTCUSDT
orders = st.lists(
    st.tuples(st.sampled_from(Side), st.integers(4_999_000, 5_001_000), st.integers(1, 50)), min_size=1, max_size=60
)


def _book(flow: list[tuple[Side, int, int]]) -> Book:
    book = Book(MARKET)
    for i, (side, price, qty) in enumerate(flow, start=1):
        order = AcceptedOrder(
            src_partition=0, src_offset=i, order_id=1_000 + i, user_id=2 + i % 3, symbol=MARKET.symbol, side=side,
            type=OrderType.LIMIT, tif=TimeInForce.GTC, price_ticks=price, qty_lots=qty,
            budget=price * qty if side is Side.BUY else qty, client_order_id=f"c{i}", stp=StpMode.NONE, ts=i,
        )  # fmt: skip
        book.apply(order, i)
    return book


def _row(o: RestingOrder) -> dict[str, Any]:
    """The orders row settlement keeps of a resting order (``shared.reconcile.WARM_COLUMNS``)."""
    return {
        "order_id": o.order_id, "user_id": o.user_id, "symbol": MARKET.symbol, "client_order_id": o.client_order_id,
        "side": o.side.value, "type": o.type.value, "tif": o.tif.value, "price_ticks": o.price_ticks,
        "qty_lots": o.qty_lots, "quote_nu": 0, "status": o.status.value, "executed_lots": o.executed_lots,
        "prevented_lots": o.qty_lots - o.executed_lots - o.remaining - o.hidden, "iceberg_lots": o.iceberg_lots,
        "maker_fee_bps": o.maker_bps, "taker_fee_bps": -1,
        "hold_atoms": 0, "stp": o.stp.value, "created_ts": o.created_ts, "last_seq": o.arrival, "src_partition": 0,
        "src_offset": o.arrival,
    }  # fmt: skip


def _views(book: Book) -> tuple[HotView, dict[int, Mapping[str, Any]]]:
    resting = list(book.orders())
    view = HotView(
        book.state, resting, [], book.state.seq, dict(book.depth(Side.BUY)), dict(book.depth(Side.SELL))
    )
    return view, {o.order_id: _row(o) for o in resting}


@given(orders)
def test_a_book_its_rows_and_its_depth_agree(flow: list[tuple[Side, int, int]]) -> None:
    view, warm = _views(_book(flow))
    assert book_differences(MARKET, view.state.seq, view, warm) == []


@given(orders, st.integers(0, 10**6))
def test_a_resting_order_changed_in_redis_is_named_with_the_level_it_breaks(flow, pick: int) -> None:
    view, warm = _views(_book(flow))
    if not view.resting:
        return
    i = pick % len(view.resting)
    changed = view.resting[i]
    view.resting[i] = msgspec.structs.replace(changed, remaining=changed.remaining + 1)
    diffs = book_differences(MARKET, view.state.seq, view, warm)
    assert diffs is not None and diffs[0].startswith(f"order {changed.order_id}: book has {changed.remaining + 1}")
    side = "BUY" if changed.side is Side.BUY else "SELL"
    assert any(d.startswith(f"depth {side} {MARKET.fmt_price(changed.price_ticks)}: market data shows") for d in diffs)


@given(orders)
def test_a_depth_level_changed_in_market_data_is_named(flow: list[tuple[Side, int, int]]) -> None:
    view, warm = _views(_book(flow))
    view.bids[1] = 7  # a level no order makes
    diffs = book_differences(MARKET, view.state.seq, view, warm)
    shown = f"depth BUY {MARKET.fmt_price(1)}: market data shows {MARKET.fmt_qty(7)}, the book holds 0.00000000"
    assert diffs == [shown]


def test_orders_the_stores_lost_or_kept_are_named() -> None:
    view, warm = _views(_book([(Side.SELL, 5_000_000, 3), (Side.BUY, 4_999_000, 2)]))
    accepted = {**_row(view.resting[0]), "order_id": 7, "last_seq": 0, "src_offset": 99}  # never in book or hot
    ended = {**_row(view.resting[0]), "status": "FILLED"}
    diffs = book_differences(MARKET, view.state.seq, view, {**warm, 7: accepted, view.resting[1].order_id: ended})
    assert diffs is not None
    assert "order 7 is open in Postgres but neither in the hot book nor in the book" in diffs
    assert f"order {view.resting[1].order_id} rests in the book but Postgres has FILLED" in diffs
    view.hot.append(8)  # a hot entry without a row
    assert "hot-book entry 8 is stale (the order rests in the book, has ended or has no row)" in (
        book_differences(MARKET, view.state.seq, view, warm) or []
    )


def test_stores_at_different_sequences_are_not_compared() -> None:
    view, warm = _views(_book([(Side.SELL, 5_000_000, 3)]))
    assert book_differences(MARKET, view.state.seq - 1, view, warm) is None  # settlement behind the book
    view.depth_seq -= 1  # market data behind it
    assert book_differences(MARKET, view.state.seq, view, warm) is None


def test_a_crossed_book_is_named() -> None:
    view, warm = _views(_book([(Side.SELL, 5_000_000, 3), (Side.BUY, 4_999_000, 2)]))
    bid = next(o for o in view.resting if o.side is Side.BUY)
    crossing = msgspec.structs.replace(bid, price_ticks=5_000_001)
    view.resting = [o if o is not bid else crossing for o in view.resting]
    warm[bid.order_id] = _row(crossing)
    view.bids = {5_000_001: crossing.remaining}
    diffs = book_differences(MARKET, view.state.seq, view, warm)
    assert diffs == [f"the book is crossed: best bid {MARKET.fmt_price(5_000_001)} >= best ask 50000.00000000"]
