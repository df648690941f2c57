"""Benchmark 7: the idle fleet. What the default fleet costs with nothing to do, per process.

``make bench ARGS=idle``: the fleet as ``spot up`` starts it, on fresh state, left alone for ``WARM_S``
(start-up, first assignments), then the CPU every service, the broker, Redis and Postgres spend over
``--seconds`` (default 30) of quiet. A developer's ``make dev`` spends this for as long as it runs, and under
load it is the floor every order's share sits on: most of it is the consumers' fetches polling the broker
(each waits at most ``KAFKA_FETCH_MAX_WAIT_MS``, the order processor's ``KAFKA_REQUEST_FETCH_MAX_WAIT_MS``,
and the local broker answers a waiting fetch only when that wait is over). The reference beside it is one
core: the figure is the share of one core the whole fleet keeps busy.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from .common import Row

WARM_S = 20.0


def run(env: dict[str, str], seconds: float, state: Path, port_offset: int) -> dict[str, Any]:
    from spot.fleet import SERVICES, Fleet

    from .common import settings_for
    from .soak import _postgres_facts, cpu_seconds, cpu_share, server_pids

    pg = asyncio.run(_postgres_facts(settings_for(env).database_url))
    state.mkdir(parents=True, exist_ok=True)
    with open(state / f"idle-fleet-{int(time.time())}.log", "w") as log:
        fleet = Fleet(env, port_offset=port_offset, log=log)
        try:
            fleet.start_all(SERVICES)
            fleet.wait_ready(timeout=120)
            time.sleep(WARM_S)
            servers = server_pids(env, pg["data_directory"])
            procs = {name: p.pid for name, p in fleet.procs.items()}
            before, began = cpu_seconds(procs, servers), time.monotonic()
            time.sleep(seconds)
            after = cpu_seconds(procs, {**servers, **server_pids(env, pg["data_directory"])})
            share = cpu_share(before, after, time.monotonic() - began)
        finally:
            fleet.stop()
    return {"seconds": seconds, "cpu_pct": dict(sorted(share.items(), key=lambda kv: -kv[1]))}


def rows(res: dict[str, Any]) -> list[Row]:
    share = res["cpu_pct"]
    total = sum(share.values())
    by_process = ", ".join(f"{name} {pct}%" for name, pct in share.items())
    return [
        Row(
            "idle fleet: CPU",
            f"the default fleet, no load, {res['seconds']:.0f} s after a {WARM_S:.0f} s "
            f"warm-up; by process (% of a core): {by_process}",
            f"{total}% of a core",
            "as low as the polling allows",
            "one core",
            f"{total / 100:.2f}x",
            float(total),
            "% of a core",
            None,
            res,
        )
    ]
