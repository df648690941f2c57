"""Benchmark 6: the ladder. The default fleet, fresh for each rung, under the soak's open-loop load
(``bench/soakload.py``: 50 users with user streams; resting limits, crossing limits and cancels) at each of
``--rates`` requests/s for one minute: ``make bench ARGS="ladder --rates 500,1000,3000"``.

It is the fleet a user starts (``spot up``'s settings, admission by measured backlog included) with one change:
the per-account rate limits are lifted (``ORDERS_PER_10S``, ``REQUEST_WEIGHT_PER_MINUTE``),
since 50 accounts at 1,000 orders/s would otherwise meet Binance's 10 orders/s per account, not the fleet's
capacity. A row per rung: what was offered and sent, orders confirmed per second, the share refused with -1008
(past capacity, the door refuses instead of queueing), other errors, REST ACK and confirmation p50/p99 of the
orders taken, and the whole fleet's CPU per confirmed order (every service, the broker, Redis and Postgres).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import ping_reference
from .common import Row, Servers

LIFTED = {"ORDERS_PER_10S": "100000000", "REQUEST_WEIGHT_PER_MINUTE": "1000000000"}


def rung(res: dict[str, Any]) -> dict[str, Any]:
    """The figures of one rung from the soak's result (one minute of load)."""
    total = res["load"]["total"]
    seconds = 60.0 * res["minutes"]
    errors = dict(total["errors"])
    refused = sum(n for k, n in errors.items() if k.endswith(":-1008"))
    others = {k: n for k, n in errors.items() if not k.endswith(":-1008") and not k.endswith(":-2011")}
    cpu_core_s = sum(sum(row.get("cpu_pct", {}).values()) for row in res["rows"]) / 100 * 60
    confirmed = total["confirmed"]
    return {
        "rate": res["rate"],
        "offered": total["offered"],
        "confirmed_per_s": round(confirmed / seconds, 1),
        "refused_share": round(refused / max(1, total["offered"]), 4),
        "refused": refused,
        "other_errors": others,
        "unconfirmed": res["unconfirmed"],
        "ack_p50_ms": total["ack_p50_ms"],
        "ack_p99_ms": total["ack_p99_ms"],
        "confirm_p50_ms": total["confirm_p50_ms"],
        "confirm_p99_ms": total["confirm_p99_ms"],
        "cpu_ms_per_order": round(1000 * cpu_core_s / confirmed, 2) if confirmed else None,
    }


def run(servers: Servers, rates: list[float], state: Path, port_offset: int) -> list[dict[str, Any]]:
    from . import soak

    out = []
    for rate in rates:
        env = servers.fresh_env(4, LOG_LEVEL="INFO", **LIFTED)
        res = soak.run(env, rate, 1, state, port_offset, reference_s=ping_reference.SECONDS)
        out.append({**rung(res), "ping": res.get("ping"), "soak": {k: v for k, v in res.items() if k != "load"}})
    return out


def rows(rungs: list[dict[str, Any]]) -> list[Row]:
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:,.0f}"

    out = []
    for r in rungs:
        workload = (f"default fleet (per-account limits lifted), {r['rate']:,.0f} requests/s offered open loop "
                    "for 60 s, 50 users with user streams")
        figure = (f"confirmed {r['confirmed_per_s']:,.0f}/s, refused -1008 {100 * r['refused_share']:.1f}%, other "
                  f"errors {r['other_errors'] or 'none'}, unconfirmed {r['unconfirmed']}; ACK p50/p99 "
                  f"{ms(r['ack_p50_ms'])}/{ms(r['ack_p99_ms'])} ms, confirm p50/p99 {ms(r['confirm_p50_ms'])}/"
                  f"{ms(r['confirm_p99_ms'])} ms; fleet CPU {r['cpu_ms_per_order']} ms per order")
        out.append(Row(f"ladder: {r['rate']:,.0f}/s", workload, figure, "confirm p99 <= 100 ms below capacity, "
                       "refusals above it", ping_reference.describe(r.get("ping")),
                       ping_reference.pings_per_order(r["cpu_ms_per_order"], r.get("ping")), r["confirm_p99_ms"],
                       "ms p99", None, r))
    return out
