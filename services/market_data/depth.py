"""Depth of one symbol as market data shows it: absolute level totals, the diffs since the last pushes, the top.

Pure. Update ids are the matcher's per-symbol ``seq``; one id sequence serves the REST snapshot
(``lastUpdateId``) and both diff streams (``U``/``u``), and every pushed diff starts right after the previous one
of its stream (``U = previous u + 1``), so a client's local book never sees a gap. Two speeds, as Binance's:
``@depth@100ms`` pushes ``take_diff`` every 100 ms; ``@depth`` (1,000 ms) pushes ``take_slow_diff``, the 100 ms
diffs since its last push folded into one (later totals win), so its ids are exactly those of the fast stream
and of the snapshot. An event that would break the depth raises before it changes anything (market-data
dead-letters it). ``partial`` is the top of the book the ``@depth5/10/20`` streams carry.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from shared.domain import Side
from shared.messages import LevelDelta

ID_MAX = 2**63 - 1  # update ids, prices and totals are int64 wherever a client or a store reads them


@dataclass(slots=True)
class Diff:
    first: int  # U
    last: int  # u
    bids: dict[int, int]
    asks: dict[int, int]


@dataclass(slots=True)
class Depth:
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    seq: int = 0  # last applied update id
    pushed: int = 0  # ``u`` of the last diff pushed (== seq after a flush)
    slow_pushed: int = 0  # ``u`` of the last 1,000 ms diff pushed
    _changed_bids: dict[int, int] = field(default_factory=dict)
    _changed_asks: dict[int, int] = field(default_factory=dict)
    slow_bids: dict[int, int] = field(default_factory=dict)  # the 100 ms diffs since ``slow_pushed``, folded
    slow_asks: dict[int, int] = field(default_factory=dict)

    def apply(self, seq: int, deltas: list[LevelDelta]) -> bool:
        """Apply one event's level totals; False if it was seen before.

        Raises ``ValueError``, changing nothing, for an event that would break the depth: an update id or a
        total past what a client reads (int64), a price not above zero, a negative total."""
        if seq <= self.seq:
            return False
        if seq > ID_MAX:
            raise ValueError(f"update id {seq} is past {ID_MAX}")
        for d in deltas:
            if not 0 < d.price_ticks <= ID_MAX or not 0 <= d.lots <= ID_MAX:
                raise ValueError(f"level {d.price_ticks} with {d.lots} lots is outside (0, {ID_MAX}] x [0, {ID_MAX}]")
        for d in deltas:
            book, changed = (self.bids, self._changed_bids) if d.side is Side.BUY else (self.asks, self._changed_asks)
            if d.lots:
                book[d.price_ticks] = d.lots
            else:
                book.pop(d.price_ticks, None)
            changed[d.price_ticks] = d.lots
        self.seq = seq
        return True

    def take_diff(self) -> Diff | None:
        """The changes since the last push, or None if nothing advanced."""
        if self.seq == self.pushed:
            return None
        diff = Diff(self.pushed + 1, self.seq, self._changed_bids, self._changed_asks)
        self._changed_bids, self._changed_asks = {}, {}
        self.pushed = self.seq
        self.slow_bids.update(diff.bids)
        self.slow_asks.update(diff.asks)
        return diff

    def take_slow_diff(self) -> Diff | None:
        """The 100 ms diffs pushed since the last 1,000 ms one, as one diff; None if none was pushed."""
        if self.pushed == self.slow_pushed:
            return None
        diff = Diff(self.slow_pushed + 1, self.pushed, self.slow_bids, self.slow_asks)
        self.slow_bids, self.slow_asks = {}, {}
        self.slow_pushed = self.pushed
        return diff

    def top(self, side: Side, limit: int) -> list[tuple[int, int]]:
        """The best ``limit`` levels of a side, best first (a heap: the whole side is not sorted)."""
        levels = self.bids if side is Side.BUY else self.asks
        pick = heapq.nlargest if side is Side.BUY else heapq.nsmallest
        return pick(limit, levels.items())

    def partial(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``limit`` bids and asks (at update id ``seq``)."""
        return self.top(Side.BUY, limit), self.top(Side.SELL, limit)
