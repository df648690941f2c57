"""The open offset range of one Kafka partition: what has been consumed since its last cut. Pure.

Ranges are contiguous and inclusive: each starts one past the previous one's ``last``, and covers every
offset consumed, including records that were dead-lettered (they are gaps in the records, not in the
range) and records skipped as duplicates. So the manifests of a partition tile its offsets without gaps,
and a range is committed even when it produced no row.

A range being redone after a crash (``redo_until``) is cut at exactly that offset, whatever batches the
records arrive in, so it yields the same files as the attempt that crashed.

One offset may carry several executions (the matcher's envelope: a symbol's executions of one batch, in
order); they arrive together in one batch, so they are taken together, and each is deduplicated by
``(symbol, seq)`` on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.messages import TradeExecution

from .layout import Span
from .parquet import TradeRow

RowsOf = Callable[[TradeExecution, int], list[TradeRow] | None]  # (execution, offset) -> rows; None: refused


@dataclass(frozen=True, slots=True)
class Cut:
    """A closed range: its rows and the dedup high-water after it."""

    span: Span
    rows: list[TradeRow]
    seqs: dict[str, int]
    duplicates: int


class OpenRange:
    def __init__(self, partition: int, first: int, seqs: dict[str, int], redo_until: int | None = None) -> None:
        self.partition = partition
        self.first = first
        self.consumed = first - 1  # highest offset taken into this range (or an earlier one)
        self.seqs = dict(seqs)
        self.redo_until = redo_until
        self.rows: list[TradeRow] = []
        self.duplicates = 0
        self.opened_at: float | None = None  # when the first offset of this range was consumed

    def feed(self, records: Iterable[tuple[int, TradeExecution]], end: int, rows_of: RowsOf, now: float) -> list[Cut]:
        """Take one batch's records of this partition (offset order, an offset repeated for each execution
        it carries); ``end`` is one past the last consumed.

        Offsets at or below ``consumed`` before this batch are ignored (a re-fetch after a seek). Returns
        the ranges a redo boundary closed on the way.
        """
        cuts = []
        taken = self.consumed
        for offset, execution in records:
            if offset <= taken:
                continue
            if self.redo_until is not None and offset > self.redo_until:
                cuts.append(self._cut_at(self.redo_until))
            self._take(offset, execution, rows_of, now)
        last = end - 1
        if self.redo_until is not None and last >= self.redo_until:
            cuts.append(self._cut_at(self.redo_until))
        if last > self.consumed:
            self.consumed = last
            self.opened_at = now if self.opened_at is None else self.opened_at
        return cuts

    def _take(self, offset: int, execution: TradeExecution, rows_of: RowsOf, now: float) -> None:
        self.consumed = offset
        self.opened_at = now if self.opened_at is None else self.opened_at
        if execution.seq <= self.seqs.get(execution.symbol, -1):
            self.duplicates += 1  # the matcher re-published an event already archived
            return
        rows = rows_of(execution, offset)
        if rows is None:  # dead-lettered: in the range, but its seq not taken, so the next one still counts
            return
        self.rows.extend(rows)
        self.seqs[execution.symbol] = execution.seq

    def cut(self) -> Cut | None:
        """Close what has been consumed; None when nothing was, or while a redo awaits its boundary."""
        if self.consumed < self.first or self.redo_until is not None:
            return None
        return self._cut_at(self.consumed)

    def _cut_at(self, last: int) -> Cut:
        cut = Cut(Span(self.partition, self.first, last), self.rows, dict(self.seqs), self.duplicates)
        self.first, self.consumed = last + 1, max(self.consumed, last)
        self.rows, self.duplicates, self.opened_at, self.redo_until = [], 0, None, None
        return cut

    @property
    def pending(self) -> bool:
        return self.consumed >= self.first
