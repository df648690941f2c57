"""The archive's commit records and the recovery decision taken from them. Pure.

A flush of one Kafka partition's range ``first..last`` (inclusive) goes, in this order:

1. ``intent``: the range and every data file it is about to write;
2. the Kinesis records (at least once: a retried range puts them again, each carries symbol and seq);
3. the Parquet files (each write atomic: temp file + rename locally, one PUT on S3);
4. data files an earlier attempt of the same range wrote but this one did not (deleted);
5. ``manifest``: the commit point, carrying the files, the row count and, per symbol, the highest
   matcher sequence archived so far on this partition;
6. ``latest``, the key of that manifest: recovery lists only the keys after it, so a stale one (a crash
   between 5 and 6) makes that listing longer, never wrong;
7. the intent is removed, and after every partition of the flush, the Kafka offsets are committed.

Recovery of a partition (``plan``) trusts the manifests, not the Kafka offset: consumption restarts
right after the highest committed ``last``. If an intent beyond it is left, the crash came mid-flush, and
exactly that range is cut again: the same records give the same rows, the same (dt, symbol) groups and
so the same file names, which overwrite whatever the crashed attempt wrote. A reader of the data folder
therefore never sees a trade twice, at any moment; a reader that also checks manifests
(``layout.committed``, as ``spot trades query`` does) sees only whole, committed ranges.

Duplicates from upstream (the matcher re-publishing an event after its own crash) are skipped by
``(symbol, seq)``: the manifests carry the high-water sequence per symbol, so the rule survives restarts.

Known limits: the partition count of ``trade-execution`` must not change (a symbol must stay on its
partition for its sequence high-water to be found); one writer per partition is assumed, as Kafka's
group assignment gives it (a revoked partition's flush finishes before the rebalance completes), but a
writer that kept writing after losing its session (no fencing on S3) could commit an overlapping range.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Final

import msgspec

from .layout import Span

MANIFEST_VERSION: Final = 1


class Manifest(msgspec.Struct, kw_only=True, frozen=True):
    v: int = MANIFEST_VERSION
    partition: int
    first: int
    last: int
    files: list[str]
    rows: int
    seqs: dict[str, int]  # symbol -> highest archived seq on this partition, cumulative
    committed_ms: int

    @property
    def span(self) -> Span:
        return Span(self.partition, self.first, self.last)


class Intent(msgspec.Struct, kw_only=True, frozen=True):
    v: int = MANIFEST_VERSION
    partition: int
    first: int
    last: int
    files: list[str]

    @property
    def span(self) -> Span:
        return Span(self.partition, self.first, self.last)


encode = msgspec.json.Encoder().encode
decode_manifest = msgspec.json.Decoder(Manifest).decode
decode_intent = msgspec.json.Decoder(Intent).decode


@dataclass(frozen=True, slots=True)
class Plan:
    """How to resume one partition."""

    start: int | None  # first offset to consume; None: no manifest yet, Kafka's committed offset decides
    seqs: dict[str, int] = field(default_factory=dict)  # dedup high-water to resume with
    redo: Intent | None = None  # a range to cut again exactly (a crash came mid-flush)
    stale_intent: bool = False  # an intent whose range a manifest already commits: remove it


def latest(spans: list[Span]) -> Span | None:
    return max(spans, key=lambda s: s.last, default=None)


def gaps(spans: list[Span]) -> list[tuple[int, int]]:
    """Offsets between consecutive committed spans that no manifest covers (should be none)."""
    ordered = sorted(spans, key=lambda s: s.first)
    return [(a.last + 1, b.first - 1) for a, b in itertools.pairwise(ordered) if b.first > a.last + 1]


def plan(spans: list[Span], head: Manifest | None, intent: Intent | None) -> Plan:
    """Resume after the last committed span; cut a leftover intent's range again, exactly.

    ``head`` is the manifest of ``latest(spans)`` (None when there are no spans).
    """
    top = latest(spans)
    if (top is None) != (head is None) or (head is not None and head.span != top):
        raise ValueError(f"head manifest {head and head.span} is not the latest span {top}")
    seqs = dict(head.seqs) if head else {}
    committed_to = top.last if top else -1
    if intent is not None and intent.last <= committed_to:
        return Plan(committed_to + 1, seqs, stale_intent=True)
    if intent is not None:
        if top is not None and intent.first != committed_to + 1:
            raise ValueError(f"intent {intent.span} does not follow the last committed span {top}")
        return Plan(intent.first, seqs, redo=intent)
    return Plan(committed_to + 1 if top else None, seqs)
