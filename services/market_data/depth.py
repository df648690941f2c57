"""Depth of one symbol as market data shows it: absolute level totals and the diff since the last push.

Pure. Update ids are the matcher's per-symbol ``seq``; one id sequence serves the REST snapshot
(``lastUpdateId``) and the stream (``U``/``u``), and every pushed diff starts right after the previous one
(``U = previous u + 1``), so a client's local book never sees a gap. An event that would break the depth
raises before it changes anything (market-data dead-letters it).
"""

from __future__ import annotations

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
    _changed_bids: dict[int, int] = field(default_factory=dict)
    _changed_asks: dict[int, int] = field(default_factory=dict)

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
        return diff

    def top(self, side: Side, limit: int) -> list[tuple[int, int]]:
        levels = self.bids if side is Side.BUY else self.asks
        return sorted(levels.items(), reverse=side is Side.BUY)[:limit]
