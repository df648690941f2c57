"""The local broker's memory with the segment ring on and off (``shared.segments``).

For each segment length given (0: off), a broker of its own, the whole fleet, and a paced, open-loop flow
of orders for ``--seconds``; Tansu's RSS is sampled every ``--every`` seconds. Tansu keeps every record in
memory, so with the ring off its RSS grows with the flow; with it on, it should level off once the first
slots are re-created.

    python -m bench.segment_rss --seconds 180 --rate 200 0 10
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from .common import RESULTS, Servers, rss_mb
from .fleet import _loadgen, _Running


def one(segment_s: int, seconds: float, rate: float, every: float) -> dict[str, Any]:
    with Servers() as servers:
        tansu = next(p.pid for name, p in servers.infra.procs if name == "tansu")
        running = _Running(servers, "gateway", f"rss-seg{segment_s}", KAFKA_SEGMENT_S=str(segment_s))
        running.start()
        samples: list[tuple[float, float | None]] = []
        done = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not done.is_set():
                samples.append((round(time.monotonic() - started, 1), rss_mb(tansu)))
                done.wait(every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            flow = _loadgen({**running.common, "mode": "paced", "seconds": seconds, "rate": rate}, seconds + 180)
        finally:
            done.set()
            sampler.join()
            samples.append((round(time.monotonic() - started, 1), rss_mb(tansu)))
            running.stop()
    keep = ("accepted", "rate", "rate_target", "p50_ms", "p99_ms", "errors")
    return {"segment_s": segment_s, "tansu_rss_mb": samples, "flow": {k: flow.get(k) for k in keep if k in flow}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("segments", type=int, nargs="+", help="segment lengths to measure, in seconds (0: off)")
    p.add_argument("--seconds", type=float, default=180)
    p.add_argument("--rate", type=float, default=200, help="orders/s, paced")
    p.add_argument("--every", type=float, default=15, help="seconds between RSS samples")
    args = p.parse_args()
    results = [one(s, args.seconds, args.rate, args.every) for s in args.segments]
    out = RESULTS / f"segment-rss-{int(time.time())}.json"
    out.write_text(json.dumps(results, indent=2))
    for r in results:
        rss = [m for _, m in r["tansu_rss_mb"] if m is not None]
        print(f"segments {r['segment_s'] or 'off'}: tansu RSS {rss[0]} -> {rss[-1]} MB (max {max(rss)}); {r['flow']}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
