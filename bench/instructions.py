"""Instructions per event of the matching core, under callgrind: a figure the machine's load cannot move.

``python -m bench.instructions [--events N]`` (needs ``valgrind``: ``apt-get install valgrind``) builds the
first N events of the core benchmark's flow (``bench.flow``, seed 7), then runs ``Book.apply`` over none
of them and over all N, each under ``valgrind --tool=callgrind`` with the hash seed fixed, both holding all
N commands ``gc.freeze()``d as ``bench/core.py`` does. The difference, divided by N, is what one event
costs: interpreter start-up, imports, the flow's decoding and the collector's walk over it cancel out.
Wall-clock figures on a shared 2-core machine swing by a third between runs; this one moves by a few
instructions.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from itertools import islice
from pathlib import Path

import msgspec

from shared.messages import AcceptedOrder, CancelOrder
from shared.postgres import DEFAULT_MARKETS

TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def drive(flow_file: Path, events: int) -> None:
    """Apply the first ``events`` commands of ``flow_file`` to a fresh book (run under callgrind)."""
    from services.matcher.book import Book

    # every run decodes, collects and freezes the whole flow, then applies only its first ``events``: the
    # collector's walk over the commands is then the same in both runs and cancels out
    commands = msgspec.msgpack.decode(flow_file.read_bytes(), type=list[AcceptedOrder | CancelOrder])
    book = Book(next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT"))
    gc.collect()
    gc.freeze()  # the workload is input, as in bench/core.py
    apply = book.apply
    for c in islice(commands, events):
        apply(c, 1_700_000_000_000)


def _instructions(flow_file: Path, events: int, out: Path) -> int:
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "bench.instructions",
         "--drive", str(flow_file), "--events", str(events)],
        check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},  # dict layouts: run to run alike
    )
    found = TOTALS.search(out.read_bytes())
    if found is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--drive", type=Path, help=argparse.SUPPRESS)  # the process callgrind runs
    args = ap.parse_args()
    if args.drive:
        drive(args.drive, args.events)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    from services.matcher.book import COMPILED

    from . import flow

    with tempfile.TemporaryDirectory() as tmp:
        flow_file = Path(tmp) / "flow.msgpack"
        ops, _ = flow.generate(args.events, seed=7)
        flow_file.write_bytes(msgspec.msgpack.encode(flow.to_commands(ops)))
        base = _instructions(flow_file, 0, Path(tmp) / "base.out")
        total = _instructions(flow_file, args.events, Path(tmp) / "run.out")
    core = "compiled (mypyc)" if COMPILED else "pure Python"
    print(f"core {core}: {(total - base) / args.events:,.0f} instructions per event over the first "
          f"{args.events:,} events of bench.flow (seed 7)")


if __name__ == "__main__":
    main()
