"""A side of the book: its hand-written heap pops levels in ``heapq``'s order, and an order that rests at the
side's top price, or better, finds its level without the lookup by price and keeps the ladder consistent.

The heap and the top are internals; the property tests in ``test_book.py`` check the book's behaviour, these
pin the two paths they might reach only by chance.
"""

from __future__ import annotations

import heapq

from hypothesis import given
from hypothesis import strategies as st

from services.matcher import book as book_module
from services.matcher.book import Book
from shared.domain import Side, StpMode
from tests.unit.matcher.test_book import MARKET, Flow

B, S = Side.BUY, Side.SELL


@given(st.lists(st.tuples(st.booleans(), st.integers(-(10**6), 10**6)), max_size=300))
def test_level_heap_keeps_heapq_order(ops: list[tuple[bool, int]]) -> None:
    heap: list = []
    model: list[int] = []
    for push, key in ops:
        if push and key not in model:  # one level per price: keys are distinct
            book_module._heap_push(heap, book_module._Level(abs(key), abs(key), key))
            heapq.heappush(model, key)
        elif model:
            book_module._heap_pop(heap)
            heapq.heappop(model)
        assert sorted(lv.key for lv in heap) == sorted(model)
        assert not model or heap[0].key == model[0]


def test_orders_rest_at_and_above_the_top_level_in_price_time_order() -> None:
    f = Flow()
    book = Book(MARKET)
    asks = book._asks
    first = [f.limit(1, S, price, 1) for price in (105, 103)]
    for c in first:
        book.apply(c, 0)
    assert asks.top is not None and asks.top.price == 103
    cancelled = book.apply(f.cancel(1, first[1].order_id), 0)
    assert cancelled is not None and cancelled.deltas[0].lots == 0
    assert asks.top.price == 103 and not asks.top.live and asks.empty == 1  # emptied, still the top
    again = f.limit(2, S, 103, 2)  # at the top's price: its (empty) level again
    better = f.limit(2, S, 101, 3)  # better than the top: a new level
    behind = f.limit(2, S, 105, 4)  # behind the top: found by price
    for c, lots in ((again, 2), (better, 3), (behind, 5)):
        event = book.apply(c, 0)
        assert event is not None and [(d.price_ticks, d.lots) for d in event.deltas] == [(c.price_ticks, lots)]
    assert asks.top.price == 101 and asks.empty == 0
    assert len(asks.levels) == len(asks.heap) == 3
    assert book.depth(S) == [(101, 3), (103, 2), (105, 5)]
    sweep = book.apply(f.limit(3, B, 105, 10, stp=StpMode.NONE), 0)
    assert sweep is not None
    assert [(t.price_ticks, t.qty_lots, t.seller_order_id) for t in sweep.trades] == [
        (101, 3, better.order_id),
        (103, 2, again.order_id),
        (105, 1, first[0].order_id),
        (105, 4, behind.order_id),
    ]
    assert book.depth(S) == [] and book.best_ask() is None
