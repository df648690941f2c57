"""The hour soak's verdict in the terms of its issue (27), from the soak's per-minute rows. Pure.

- **Latency:** confirm p99 within ``CONFIRM_P99_MS`` in *every* one-minute window, not only over the run: a
  run's p99 hides a bad minute among fifty good ones, and a minute that confirmed nothing of what it ACKed is
  not a good one.
- **Memory:** after the warm-up, each process (every service, the broker, Redis, Postgres) grows by at most
  ``GROWTH_MAX_PCT`` of what it held at the warm-up's end, rather than a rate in MB per minute, which says
  nothing without the size it grows from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

CONFIRM_P99_MS = 100.0
GROWTH_MAX_PCT = 10.0


class Minutes(NamedTuple):
    within: int  # minutes whose confirm p99 was within the bound
    counted: int  # minutes of load
    worst_minute: int | None  # 1-based, as the rows print it; None without any minute
    worst_p99_ms: float | None  # its p99; None when it confirmed nothing


def minutes_within(rows: Sequence[Mapping[str, Any]], bound_ms: float = CONFIRM_P99_MS) -> Minutes:
    """How many minutes had their confirm p99 within ``bound_ms``, and the worst of them. A minute that ACKed
    orders but confirmed none counts as over the bound (its p99 is None, and it is the worst)."""
    within, worst, worst_rank = 0, None, -1.0
    for row in rows:
        p99 = row.get("confirm_p99_ms")
        if p99 is None:  # nothing confirmed: fine only if nothing was ACKed either
            ok, rank = not row.get("acked"), float("inf") if row.get("acked") else 0.0
        else:
            ok, rank = p99 <= bound_ms, float(p99)
        within += ok
        if rank > worst_rank:
            worst, worst_rank = int(row["minute"]) + 1, rank
    return Minutes(within, len(rows), worst, None if worst_rank in (float("inf"), -1.0) else worst_rank)


class Growth(NamedTuple):
    process: str
    pct: float
    after_warm_up_mb: float
    end_mb: float


def growth_pct(growth: Mapping[str, Mapping[str, float | None]]) -> list[Growth]:
    """Each process's growth from the warm-up's end to the run's, in percent, largest first. A process with no
    reading at either end (it had exited: the soak reports that on its own) is left out."""
    out = []
    for name, g in growth.items():
        a, b = g.get("after_warm_up"), g.get("end")
        if not a or b is None:
            continue
        out.append(Growth(name, round(100 * (b - a) / a, 1), a, b))
    return sorted(out, key=lambda x: x.pct, reverse=True)


def memory_flat(growth: Mapping[str, Mapping[str, float | None]], limit_pct: float = GROWTH_MAX_PCT) -> bool:
    """Every process within ``limit_pct`` of its size after the warm-up (an empty reading is no proof)."""
    grown = growth_pct(growth)
    return bool(grown) and all(g.pct <= limit_pct for g in grown)
