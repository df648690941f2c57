"""Symbols whose settlement stopped at a record it cannot apply, kept in Postgres (``settlement_halts``).

A matched event that decodes but cannot be applied (an order without a row, a hold that does not cover a
fill, a value Postgres refuses) is not an outage: retrying it changes nothing, and failing the whole batch
would stop every symbol. Its symbol stops there instead: the event and every later one of that symbol wait
(never skipped: money is never lost), the other symbols go on, the offset committed on its partition stays
at the halted record so a restart reads it again, and ``spot_settlement_halted{symbol, reason}`` is 1.

An operator resolves a halt (``spot admin settlement resolve SYMBOL --retry|--skip``): ``retry`` reads the
record again (after fixing the data), ``skip`` records the decision and moves past that one record (by its
position, so the symbol's next events apply as they come). Every replica reads the table every
``REFRESH_S``: it learns of halts another replica recorded, and of resolutions, and then reads the
partition again from the halted record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
from prometheus_client import Gauge

from shared.kafka import Record
from shared.messages import MatchedEvent, encode

log = logging.getLogger(__name__)

REFRESH_S = 1.0  # how soon a resolution (or another replica's halt) is noticed
HALTED = Gauge("spot_settlement_halted", "1 while a symbol's settlement is stopped at a record", ["symbol", "reason"])

Position = tuple[str, int, int, int, int]  # topic, partition, offset, index in the record, log segment

RECORD = """
INSERT INTO settlement_halts
    (symbol, seq, topic, src_partition, src_offset, src_index, kind, reason, record, halted_at, src_epoch)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (symbol) WHERE resolution IS NULL DO NOTHING
"""
COLUMNS = (
    "halt_id, symbol, seq, topic, src_partition, src_offset, src_index, kind, reason, record, halted_at, src_epoch"
)
OPEN = f"SELECT {COLUMNS} FROM settlement_halts WHERE resolution IS NULL ORDER BY symbol"  # noqa: S608 (constant)
OPEN_FOR = f"SELECT {COLUMNS} FROM settlement_halts WHERE resolution IS NULL AND symbol = $1"  # noqa: S608 (constant)
SKIPPED = (
    "SELECT topic, src_partition, src_offset, src_index, src_epoch, symbol, seq FROM settlement_halts "
    "WHERE resolution = 'skip'"
)


@dataclass(frozen=True, slots=True)
class Halt:
    halt_id: int
    symbol: str
    seq: int
    topic: str
    partition: int
    offset: int
    index: int
    kind: str
    reason: str
    record: str
    halted_at: int
    epoch: int  # the log segment the record is in (``shared.segments``): offsets repeat across segments

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> Halt:
        return cls(*(r[c] for c in COLUMNS.split(", ")))


class Halts:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db
        self.open: dict[str, Halt] = {}
        self.skipped: set[Position] = set()
        self.skipped_seqs: set[tuple[str, int]] = set()  # the same records' (symbol, seq): a gap they leave is no loss
        self._refreshed = 0.0

    def waits(self, record: Record[MatchedEvent]) -> bool:
        """Whether ``record`` is not to be applied now: its symbol is halted, or an operator skipped it."""
        return record.value.symbol in self.open or _position(record) in self.skipped

    def held_offsets(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition), the offset its commits must not pass: its earliest halted record."""
        out: dict[tuple[str, int], int] = {}
        for h in self.open.values():
            key = (h.topic, h.partition)
            out[key] = min(out.get(key, h.offset), h.offset)
        return out

    async def stop(self, record: Record[MatchedEvent], error: Exception, now: int) -> Halt:
        """Stop ``record``'s symbol at it, durably, with the reason; returns the symbol's open halt."""
        e = record.value
        kind, reason = type(error).__name__, str(error)[:2000] or type(error).__name__
        async with self.db.acquire() as conn:
            await conn.execute(
                RECORD, e.symbol, e.seq, record.topic, record.partition, record.offset, record.index, kind, reason,
                encode(e).decode(), now, record.epoch,
            )  # fmt: skip
            row = await conn.fetchrow(OPEN_FOR, e.symbol)
        halt = Halt.from_row(row)
        self._opened(halt)
        log.error(
            "settlement of %s halted at %s[%d]@%d #%d (seq %d): %s: %s; its later events wait, the other symbols "
            "go on; see `spot admin settlement halted`, then `spot admin settlement resolve %s --retry|--skip`",
            halt.symbol, halt.topic, halt.partition, halt.offset, halt.index, halt.seq, halt.kind, halt.reason,
            halt.symbol,
        )  # fmt: skip
        return halt

    def due(self) -> bool:
        return time.monotonic() - self._refreshed >= REFRESH_S

    async def refresh(self) -> list[Halt]:
        """Read the table again; returns the halts resolved since the last read (their records are to be read
        again, from their positions)."""
        self._refreshed = time.monotonic()
        async with self.db.acquire() as conn:
            now_open = {r["symbol"]: Halt.from_row(r) for r in await conn.fetch(OPEN)}
            skipped = await conn.fetch(SKIPPED)
        self.skipped = {(r[0], r[1], r[2], r[3], r[4]) for r in skipped}
        self.skipped_seqs = {(r[5], r[6]) for r in skipped}
        resolved = [h for s, h in self.open.items() if now_open.get(s) != h]
        for h in resolved:
            HALTED.remove(h.symbol, h.kind)
            del self.open[h.symbol]
            log.warning(
                "settlement of %s resumes at %s[%d]@%d (seq %d)",
                h.symbol, h.topic, h.partition, h.offset, h.seq,
            )  # fmt: skip
        for halt in now_open.values():
            if halt.symbol not in self.open:
                self._opened(halt)
        return resolved

    def _opened(self, halt: Halt) -> None:
        self.open[halt.symbol] = halt
        HALTED.labels(halt.symbol, halt.kind).set(1)


def _position(record: Record[MatchedEvent]) -> Position:
    return record.topic, record.partition, record.offset, record.index, record.epoch


def by_symbol(records: Iterable[Record[MatchedEvent]]) -> dict[str, list[Record[MatchedEvent]]]:
    out: dict[str, list[Record[MatchedEvent]]] = {}
    for r in records:
        out.setdefault(r.value.symbol, []).append(r)
    return out
