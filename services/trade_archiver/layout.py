"""Where the archive keeps what: object keys for data files, manifests and intents. Pure.

Keys are relative to the archive root (a local folder, or ``s3://bucket/prefix``)::

    trades/dt=2025-01-31/symbol=BTCUSDT/p1-<first>-<last>.parquet    data (the Glue table)
    manifests/p1/<first>-<last>.json                                 commit of p1's offsets first..last
    manifests/p1/intent.json                                         p1's flush in progress
    manifests/p1/latest                                              key of p1's newest manifest
    manifests/p1/newest                                              key of the newest manifest of Kafka
                                                                     partition 1 over its log segments

with ``first`` and ``last`` zero-padded to 19 digits (``p1-0000000000000000100-0000000000000000199``).

A data file is named by its (dt, symbol) partition and by the source partition and inclusive offset range
it was cut from: the source partition is ``shared.identity.source_partition(epoch, partition)``, the Kafka
partition itself in log segment 0 (and always with segments off), a label of its own in every later segment
(``shared.segments``: each segment's offsets start at 0 again). So rewriting a range after a crash writes
the very same names (an overwrite, never a second copy). A data file is committed exactly when a manifest
of its partition and range exists; ``committed`` applies that rule to two listings, without reading any
manifest.

Tests and other isolated runs suffix their topics (``TOPIC_SUFFIX``); the archive root follows the suffix
(``namespace``), so their offsets and files never mix with those of another run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

TRADES: Final = "trades/"
MANIFESTS: Final = "manifests/"
OFFSET_DIGITS: Final = 19  # every int64 offset, zero-padded: key order is offset order (recovery lists after a key)
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATA = re.compile(r"(?:.*/)?p(\d+)-(\d+)-(\d+)\.parquet")
_MANIFEST = re.compile(r"(?:.*/)?p(\d+)/(\d+)-(\d+)\.json")


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """An inclusive Kafka offset range of one source partition (a Kafka partition in one log segment)."""

    partition: int
    first: int
    last: int


def data_key(dt: str, symbol: str, span: Span) -> str:
    if not _DATE.fullmatch(dt):
        raise ValueError(f"dt must be YYYY-MM-DD, got {dt!r}")
    if not _SAFE.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} is not safe in an object key")
    return f"{TRADES}dt={dt}/symbol={symbol}/p{span.partition}-{_range(span)}.parquet"


def manifest_prefix(partition: int) -> str:
    return f"{MANIFESTS}p{partition}/"


def manifest_key(span: Span) -> str:
    return f"{manifest_prefix(span.partition)}{_range(span)}.json"


def intent_key(partition: int) -> str:
    return f"{manifest_prefix(partition)}intent.json"


def latest_key(partition: int) -> str:
    """Names the partition's newest manifest, so recovery lists only what came after it (not a commit)."""
    return f"{manifest_prefix(partition)}latest"


def newest_key(kafka_partition: int) -> str:
    """Names the newest manifest of a Kafka partition over its log segments (written past segment 0), so a
    segment with no manifest yet starts with the sequence high-water its partition reached (not a commit)."""
    return f"{manifest_prefix(kafka_partition)}newest"


def _range(span: Span) -> str:
    return f"{span.first:0{OFFSET_DIGITS}d}-{span.last:0{OFFSET_DIGITS}d}"


def manifest_span(key: str) -> Span | None:
    """The span a manifest key commits; None for anything else (the intent, stray files)."""
    m = _MANIFEST.fullmatch(key)
    return Span(int(m[1]), int(m[2]), int(m[3])) if m else None


def data_span(key: str) -> Span | None:
    m = _DATA.fullmatch(key)
    return Span(int(m[1]), int(m[2]), int(m[3])) if m else None


def committed(data_keys: list[str], manifest_keys: list[str]) -> list[str]:
    """The data files some manifest commits, sorted; a file of an unfinished flush is left out."""
    spans = {s for s in map(manifest_span, manifest_keys) if s is not None}
    return sorted(k for k in data_keys if data_span(k) in spans)


def namespace(topic_suffix: str) -> str:
    """The sub-root of a run whose topics carry a suffix ('' for the unsuffixed, production topics)."""
    name = topic_suffix.lstrip(".")
    if not name:
        return ""
    if not _SAFE.fullmatch(name):
        raise ValueError(f"topic suffix {topic_suffix!r} is not safe in an object key")
    return f"{name}/"
