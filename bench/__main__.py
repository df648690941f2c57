"""``python -m bench [core|matcher|processor|fleet|scaleout|soak|ladder|idle|produce|all] [--events N] ...``.

Prints a table (subject, workload, figure, target, reference figure, ratio, machine) and writes the full
results as JSON to ``bench/results/<timestamp>.json``. ``all`` runs the four benchmarks (core, matcher,
processor, fleet); ``scaleout`` (one vs two matcher replicas on four symbols) and ``soak`` (the default fleet
for ``--minutes`` at ``--rate``, a row per minute: ``bench/soak.py``) and ``ladder`` (the default fleet a minute
at each of ``--rates``: ``bench/ladder.py``) and ``idle`` (what the default fleet spends with nothing to do:
``bench/idle.py``) and ``produce`` (a record's cost through the fleet's producer and through aiokafka's:
``bench/produce.py``) run only when named.
Servers (Tansu, embedded Postgres, Redis) are started on ports of their own and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from .common import RESULTS, Row, Servers, loadavg, machine

CHOICES = ("core", "matcher", "processor", "fleet", "scaleout", "soak", "ladder", "idle", "produce", "all")
SOAK_RATE = 300


def _table(rows: list[Row], mach: dict[str, Any]) -> str:
    head = ("subject", "workload", "figure", "target", "reference", "ratio", "met")
    body = [(r.subject, r.workload, r.figure, r.target, r.reference, r.ratio,
             "-" if r.met is None else ("yes" if r.met else "NO")) for r in rows]
    wrap = 70
    widths = [max(len(h), *(min(wrap, len(b[i])) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    for b in body:
        cells = [[c[i:i + wrap] for i in range(0, max(1, len(c)), wrap)] for c in b]
        for k in range(max(len(c) for c in cells)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)))
    lines.append(f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']} "
                 f"({mach['implementation']}), a reference loop {mach['core_speed_ms']} ms (core_speed_ms), "
                 f"load average at start {mach['loadavg']}, at end {loadavg()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="?", default="all", choices=CHOICES)
    ap.add_argument("--events", type=int, default=1_000_000, help="events of the pure-core flow (default 1,000,000)")
    ap.add_argument("--messages", type=int, default=0,
                    help="messages pre-produced for matcher/processor/scaleout (default 100,000 / 50,000 / 400,000)")
    ap.add_argument("--seconds", type=float, default=0,
                    help="fleet: seconds of each load phase (default 60); idle: seconds measured (default 30); "
                         "produce: seconds per client (default 20)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the service under test (matcher, processor; fleet: see --profile-service)")
    ap.add_argument("--profile-service", default="gateway", help="fleet: which service py-spy samples")
    ap.add_argument("--profile-phase", choices=("saturate", "paced"), default="saturate",
                    help="fleet: sample the saturation phase or the paced one (with the user streams)")
    ap.add_argument("--rate", type=float, default=0,
                    help="fleet: paced rate of the latency phase (default 1,000/s, or 80%% of the sustained rate); "
                         f"soak, produce: requests/s (default {SOAK_RATE})")
    ap.add_argument("--minutes", type=int, default=10, help="soak: minutes of load (default 10)")
    ap.add_argument("--ingestion", choices=("gateway", "service"), default="gateway",
                    help="fleet: orders reach Kafka from the gateway itself (INGESTION_IN_GATEWAY, the default "
                         "here) or through the ingestion service's HTTP hop")
    ap.add_argument("--replicas", default="1,2", help="scaleout: replica counts (default 1,2)")
    ap.add_argument("--rates", default="500,1000,3000",
                    help="ladder: requests/s offered, a minute each on a fresh default fleet (default 500,1000,3000)")
    args = ap.parse_args(argv)

    mach = machine()
    started = datetime.now(UTC)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    which = args.which
    t0 = time.perf_counter()
    try:
        if which in ("core", "all"):
            from . import core

            print(f"core: {args.events:,} events ...", file=sys.stderr, flush=True)
            rows += core.run(args.events)
        if which in ("matcher", "processor", "fleet", "scaleout", "soak", "ladder", "idle", "produce", "all"):
            from . import services

            with Servers() as servers:
                if which in ("matcher", "all"):
                    n = args.messages or 100_000
                    print(f"matcher: {n:,} messages ...", file=sys.stderr, flush=True)
                    res = services.run_matcher(servers, n, profile=args.profile)
                    rows += services.matcher_rows(res)
                if which in ("processor", "all"):
                    n = args.messages or 50_000
                    print(f"order-processor: {n:,} messages ...", file=sys.stderr, flush=True)
                    res = services.run_processor(servers, n, profile=args.profile)
                    rows += services.processor_rows(res)
                if which in ("fleet", "all"):
                    from . import fleet

                    seconds = args.seconds or 60
                    print(f"fleet: {seconds:.0f} s per phase ...", file=sys.stderr, flush=True)
                    res = fleet.run(servers, seconds, args.profile_service if args.profile else None,
                                    args.rate or None, args.ingestion, args.profile_phase)
                    rows += fleet.rows(res)
                if which == "soak":
                    from . import ping_reference, soak
                    from .common import PORT_OFFSET, STATE

                    env = servers.fresh_env(4, LOG_LEVEL="INFO")  # the defaults `spot up` runs with
                    res = soak.run(env, args.rate or SOAK_RATE, args.minutes, STATE, PORT_OFFSET,
                                   reference_s=ping_reference.SECONDS)
                    raw["soak"] = res
                    rows += soak.rows_for_table(res)
                if which == "ladder":
                    from . import ladder
                    from .common import PORT_OFFSET, STATE

                    rungs = ladder.run(servers, [float(x) for x in args.rates.split(",")], STATE, PORT_OFFSET)
                    raw["ladder"] = rungs
                    rows += ladder.rows(rungs)
                if which == "idle":
                    from . import idle
                    from .common import PORT_OFFSET, STATE

                    env = servers.fresh_env(4)  # the defaults `spot up` runs with
                    res = idle.run(env, args.seconds or 30.0, STATE, PORT_OFFSET)
                    raw["idle"] = res
                    rows += idle.rows(res)
                if which == "produce":
                    from . import produce

                    res = produce.run(servers.env, args.rate or SOAK_RATE, args.seconds or 20.0)
                    raw["produce"] = res
                    rows += produce.rows(res)
                if which == "scaleout":
                    n = args.messages or 400_000  # two replicas finish 100k in under a second: too short to sample
                    reps = tuple(int(x) for x in args.replicas.split(","))
                    print(f"scaleout: {n:,} messages, replicas {reps} ...", file=sys.stderr, flush=True)
                    rows += services.scaleout_rows(services.run_scaleout(servers, n, reps))
    finally:
        mach["loadavg_end"] = loadavg()
        mach["wall_s"] = round(time.perf_counter() - t0, 1)
        if rows:
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{which}.json"
            path.write_text(json.dumps({"started": started.isoformat(), "which": which, "args": vars(args),
                                        "machine": mach, "rows": [r.as_json() for r in rows], **raw},
                                       indent=2, default=str))
            print(_table(rows, mach))
            print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
