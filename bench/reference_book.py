"""The reference the benchmark compares against (issue 7): a plain price-time book in a screenful.

Sorted price lists (``bisect``) and one FIFO ``deque`` per level; limit, market and cancel only, no fees,
budgets, self-trade prevention or events: each call returns just the fills it made. It is what a careful
programmer would write first, so the benchmark shows what ``services/matcher/book.py`` costs or saves
over it; ``tests/unit/matcher/test_book.py`` checks both fill alike.

Prices are int ticks, sizes int lots. Known limit: cancel is O(level length) (``deque.remove``).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import NamedTuple

from shared.domain import Side


class Fill(NamedTuple):
    maker_id: int
    taker_id: int
    price_ticks: int
    lots: int


class ReferenceBook:
    def __init__(self) -> None:
        self._prices: dict[Side, list[int]] = {Side.BUY: [], Side.SELL: []}  # ascending on both sides
        self._queues: dict[Side, dict[int, deque[list[int]]]] = {Side.BUY: {}, Side.SELL: {}}  # [id, lots]
        self._where: dict[int, tuple[Side, int]] = {}  # order_id -> (side, price) while it rests

    def best(self, side: Side) -> int | None:
        prices = self._prices[side]
        if not prices:
            return None
        return prices[-1] if side is Side.BUY else prices[0]

    def depth(self, side: Side) -> list[tuple[int, int]]:
        """(price_ticks, lots) best-first."""
        prices = reversed(self._prices[side]) if side is Side.BUY else self._prices[side]
        return [(p, sum(lots for _, lots in self._queues[side][p])) for p in prices]

    def limit(self, order_id: int, side: Side, price: int, lots: int) -> list[Fill]:
        """Take what crosses, rest the remainder (GTC)."""
        fills, left = self._take(order_id, side, lots, price)
        if left:
            queue = self._queues[side].get(price)
            if queue is None:
                queue = self._queues[side][price] = deque()
                insort(self._prices[side], price)
            queue.append([order_id, left])
            self._where[order_id] = (side, price)
        return fills

    def market(self, order_id: int, side: Side, lots: int) -> list[Fill]:
        """Take at any price; what the book cannot fill is dropped (IOC)."""
        return self._take(order_id, side, lots, None)[0]

    def cancel(self, order_id: int) -> bool:
        where = self._where.pop(order_id, None)
        if where is None:
            return False
        side, price = where
        queue = self._queues[side][price]
        queue.remove(next(entry for entry in queue if entry[0] == order_id))
        if not queue:
            self._drop_level(side, price)
        return True

    def _take(self, taker_id: int, side: Side, lots: int, limit: int | None) -> tuple[list[Fill], int]:
        maker_side = side.opposite
        fills = []
        while lots:
            price = self.best(maker_side)
            if price is None or (limit is not None and _worse(side, price, limit)):
                break
            queue = self._queues[maker_side][price]
            while lots and queue:
                entry = queue[0]
                n = min(lots, entry[1])
                fills.append(Fill(entry[0], taker_id, price, n))
                lots -= n
                entry[1] -= n
                if not entry[1]:
                    queue.popleft()
                    del self._where[entry[0]]
            if not queue:
                self._drop_level(maker_side, price)
        return fills, lots

    def _drop_level(self, side: Side, price: int) -> None:
        prices = self._prices[side]
        del prices[bisect_left(prices, price)]
        del self._queues[side][price]


def _worse(taker_side: Side, price: int, limit: int) -> bool:
    """A maker price the taker's limit refuses."""
    return price > limit if taker_side is Side.BUY else price < limit
