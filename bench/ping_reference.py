"""The same machine's reference for the soak and the ladder: ``GET /api/v3/ping`` on the fleet under test.

A few seconds of pings as fast as ``CONCURRENCY`` keep-alive connections allow (``bench/loadgen.py``'s ``ping``
mode), on the fleet just started, before its load. It gives the HTTP ceiling of client and gateway together,
and what one request costs the gateway's process in CPU. This machine's speed changes threefold from day to
day (``core_speed_ms``), so a figure alone cannot be compared across days; its ratio to this reference can:
the fleet's CPU per order divided by the gateway's CPU per ping is how many pings an order costs, whatever
the cores' speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONCURRENCY = 64  # as the fleet bench's ping reference
SECONDS = 5.0


def measure(base: str, gateway_cpu_s: Callable[[], float], state: Path, seconds: float = SECONDS) -> dict[str, Any]:
    """Pings for ``seconds``: their rate, errors, and the gateway's CPU per answered ping in ms (``gateway_cpu_s``:
    the seconds it has spent so far, as the soak reads every process's)."""
    from .common import ROOT

    tag = f"ping-{int(time.time() * 1000)}"
    cfg_path, out = state / f"{tag}.json", state / f"{tag}.out.json"
    cfg_path.write_text(json.dumps({"base": base, "users": [], "symbols": [], "mode": "ping",
                                    "seconds": seconds, "concurrency": CONCURRENCY, "out": str(out)}))
    before = gateway_cpu_s()
    try:  # a reference that fails is reported as such; the run it stands beside goes on
        subprocess.run([sys.executable, "-m", "bench.loadgen", str(cfg_path)], cwd=ROOT, check=True,
                       timeout=60 + seconds)
        result = json.loads(out.read_text())
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    spent = gateway_cpu_s() - before
    answered = int(result["accepted"])
    return {"rate": round(result["rate"], 1), "concurrency": CONCURRENCY, "seconds": seconds,
            "errors": result["errors"], "gateway_cpu_ms": round(1000 * spent / answered, 3) if answered else None}


def describe(ping: dict[str, Any] | None) -> str:
    """The reference as a table cell."""
    if not ping:
        return "-"
    if "error" in ping:
        return f"GET /ping failed ({ping['error']})"
    cpu = ping.get("gateway_cpu_ms")
    return (f"GET /ping {ping['rate']:,.0f}/s on {ping['concurrency']} connections"
            + (f", {cpu:.2f} ms of gateway CPU each" if cpu else ""))


def pings_per_order(cpu_ms_per_order: float | None, ping: dict[str, Any] | None) -> str:
    """The fleet's CPU per order in pings of the gateway's CPU: a figure the machine's speed cancels out of."""
    cpu = (ping or {}).get("gateway_cpu_ms")
    if not cpu_ms_per_order or not cpu:
        return "-"
    return f"an order = {cpu_ms_per_order / cpu:,.1f} pings"
