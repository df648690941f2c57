"""Depth of one symbol as market data shows it: absolute level totals and the diff since the last push.

Pure. Update ids are the matcher's per-symbol ``seq``; one id sequence serves the REST snapshot
(``lastUpdateId``) and the stream (``U``/``u``), and every pushed diff starts right after the previous one
(``U = previous u + 1``), so a client's local book never sees a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.domain import Side
from shared.messages import LevelDelta


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
    _changed_bids: dict[int, int] = field(default_factory=dict)
    _changed_asks: dict[int, int] = field(default_factory=dict)

    def apply(self, seq: int, deltas: list[LevelDelta]) -> bool:
        """Apply one event's level totals; False if it was seen before."""
        if seq <= self.seq:
            return False
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
        return diff

    def top(self, side: Side, limit: int) -> list[tuple[int, int]]:
        levels = self.bids if side is Side.BUY else self.asks
        return sorted(levels.items(), reverse=side is Side.BUY)[:limit]
