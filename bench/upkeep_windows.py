"""Which of a soak's slow confirmations were sent while a server did its own upkeep.

A slow minute on a busy machine may be the load or a server's periodic work: an autovacuum round (its ANALYZE
of a large table was once 46% of the slow confirmations in 8% of the time) or a Redis append-only-file rewrite.
Both servers log when that work ran; this module reads those logs into time windows and says, per kind of
upkeep, what share of the run's time the windows cover and what share of the slow confirmations were sent in
them. A kind whose share of the slow confirmations is well above its share of the time is a cause worth
removing; one near its share of the time is not. Pure: the soak hands in the logs' text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

# Postgres (log_line_prefix '%m [%p] '): the line ends the run, its "elapsed" gives the start.
AUTOVACUUM = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\S+) \[\d+\] LOG:  automatic (?:aggressive )?"
    r"(vacuum|analyze) of table \"[^\"]*?\.?(\w+)\"(?:(?!\n\d{4}-).)*?elapsed: ([0-9.]+) s",
    re.MULTILINE | re.DOTALL,
)
# Redis: "pid:M 07 Dec 2026 23:27:38.261 * Background append only file rewriting started by pid 12938", ended by
# "... Background AOF rewrite finished successfully" (or "terminated" on failure).
REDIS_LINE = re.compile(r"^\d+:M (\d\d \w{3} \d{4} \d\d:\d\d:\d\d\.\d+) \* (.*)$", re.MULTILINE)
REWRITE_STARTED = "Background append only file rewriting started"
REWRITE_ENDED = ("Background AOF rewrite finished", "Background AOF rewrite terminated")


class Window(NamedTuple):
    start: float  # wall-clock seconds
    end: float
    kind: str  # "autovacuum orders", "autoanalyze ledger", "aof rewrite"


def autovacuum_windows(log_text: str) -> list[Window]:
    """The autovacuum and autoanalyze runs a Postgres log records (``log_autovacuum_min_duration`` set)."""
    out = []
    for m in AUTOVACUUM.finditer(log_text):
        stamp, zone, what, table, elapsed = m.groups()
        end = _postgres_time(stamp, zone)
        out.append(Window(end - float(elapsed), end, f"auto{what} {table}"))
    return out


def aof_rewrite_windows(log_text: str) -> list[Window]:
    """The append-only-file rewrites a Redis log records, from the fork to the new file in place."""
    out, started = [], None
    for m in REDIS_LINE.finditer(log_text):
        stamp, message = m.groups()
        if message.startswith(REWRITE_STARTED):
            started = _redis_time(stamp)
        elif started is not None and message.startswith(REWRITE_ENDED):
            out.append(Window(started, _redis_time(stamp), "aof rewrite"))
            started = None
    return out


def attribute(sent: Sequence[float], windows: Iterable[Window], span: tuple[float, float],
              after_s: float = 1.0) -> dict[str, dict[str, float]]:
    """Per kind of window: its runs, the share of ``span`` its windows (each extended by ``after_s``, as a
    queue drains after its cause) cover, and the share of ``sent`` (slow confirmations' send times) in them."""
    first, last = span
    length = max(last - first, 1e-9)
    ordered = sorted(sent)
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for w in windows:
        lo, hi = max(w.start, first), min(w.end + after_s, last)
        if hi > lo:
            by_kind.setdefault(w.kind, []).append((lo, hi))
    out = {}
    for kind, spans in sorted(by_kind.items()):
        merged = _merge(spans)
        inside = sum(bisect_right(ordered, hi) - bisect_right(ordered, lo) for lo, hi in merged)
        out[kind] = {"runs": len(spans), "time_pct": round(100 * sum(hi - lo for lo, hi in merged) / length, 1),
                     "slow_pct": round(100 * inside / len(ordered), 1) if ordered else 0.0}
    return out


def by_second_of_minute(sent: Iterable[float]) -> list[int]:
    """Slow confirmations by the wall-clock second of the minute they were sent in: upkeep that runs every
    minute (autovacuum's naptime, a rewrite paced by the load) shows as a pile at the same seconds."""
    counts = [0] * 60
    for t in sent:
        counts[int(t) % 60] += 1
    return counts


def piles(counts: Sequence[int], top: int = 5) -> str:
    """The seconds of the minute with the most slow confirmations against the median second, e.g.
    ``"median 12/s; 43s 120, 44s 98"``."""
    median = sorted(counts)[len(counts) // 2]
    busiest = sorted(range(len(counts)), key=lambda s: -counts[s])[:top]
    return f"median {median}/s; " + ", ".join(f"{s}s {counts[s]}" for s in busiest)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _postgres_time(stamp: str, zone: str) -> float:
    moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
    if zone in ("UTC", "GMT"):
        return moment.replace(tzinfo=UTC).timestamp()
    return moment.timestamp()  # the server's zone, which is this machine's: the bench starts it here


def _redis_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%d %b %Y %H:%M:%S.%f").timestamp()  # Redis logs the local time
