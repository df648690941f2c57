"""Benchmark 1: the pure matching core, ``services.matcher.book.Book.apply`` on pre-built commands.

Two passes over the same seeded flow, each on a fresh book:

* throughput: a bare loop over ``apply`` (the ``MatchedEvent`` of every command is built, not encoded).
  Wall-clock events/s is the figure; the pass's CPU time (``time.process_time``) is recorded beside it,
  because the machine is shared and preemption by other work lands in the wall clock only;
* latency: ``time.perf_counter_ns`` around every single ``apply``: every event, no sampling, no batching.
  The timer's own cost (measured here, ~40 ns against ~2 µs per event) is reported and not subtracted.
  Percentiles are given overall and per kind of event (limit, market, cancel).

Which core ran is part of the figure: ``book.py`` compiled by mypyc (``setup.py``, the normal install) or
pure Python (``SPOT_PURE_PYTHON=1``, or no C compiler at install time); the row's workload and the JSON
(``core_compiled``, ``core_module``) say which.

The reference is ``bench/reference_book.py`` on the same events (pre-built argument tuples, same two
passes). Both must make the same number of fills, which the flow generator also counted. The reference
does less per event (no output events, fees, budgets or self-trade prevention), but its cancel is
O(level length), which a flow that builds deep levels (thousands of orders at a price) punishes: the
per-kind figures show where the ratio comes from.

Before the passes the pre-built workload (~3M objects: ops, commands, argument tuples) is moved out of
the garbage collector's reach (``gc.freeze``): it is the harness's input, which a matcher never holds, and
a full collection walking it would be charged to whichever pass happened to trigger it. What the books
allocate is collected as usual.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

from services.matcher import book as book_module
from services.matcher.book import COMPILED, Book
from shared.domain import Market
from shared.messages import AcceptedOrder
from shared.postgres import DEFAULT_MARKETS

from . import flow
from .common import Row, fmt_rate, pct, ratio
from .reference_book import ReferenceBook

TARGET_RATE, TARGET_P99_US = 1_000_000, 20.0
KIND_NAMES = {flow.LIMIT: "limit", flow.MARKET: "market", flow.CANCEL: "cancel"}


class Pass:
    """One pass over the flow: wall and CPU seconds, and per-event latencies (ns) if timed."""

    def __init__(self, wall_s: float, cpu_s: float, lat: list[int], fills: int) -> None:
        self.wall_s, self.cpu_s, self.lat, self.fills = wall_s, cpu_s, lat, fills


def _timer_overhead_ns(n: int = 200_000) -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        a = clock()
        b = clock()
        samples.append(b - a)
    samples.sort()
    return pct(samples, 50)


def _run_book(market: Market, commands: list[Any], timed: bool) -> Pass:
    book = Book(market)
    apply = book.apply
    ts = 1_700_000_000_000
    trades = 0
    lat: list[int] = []
    gc.collect()
    if not timed:
        t0, c0 = time.perf_counter(), time.process_time()
        for c in commands:
            apply(c, ts)
        return Pass(time.perf_counter() - t0, time.process_time() - c0, lat, -1)
    clock = time.perf_counter_ns
    append = lat.append
    t0, c0 = time.perf_counter(), time.process_time()
    for c in commands:
        a = clock()
        e = apply(c, ts)
        append(clock() - a)
        trades += len(e.trades) if e is not None else 0
    return Pass(time.perf_counter() - t0, time.process_time() - c0, lat, trades)


def _run_reference(calls: list[tuple[int, int, Any, int, int]], timed: bool) -> Pass:
    book = ReferenceBook()
    limit, market, cancel = book.limit, book.market, book.cancel
    fills = 0
    lat: list[int] = []
    gc.collect()
    clock = time.perf_counter_ns
    append = lat.append
    t0, c0 = time.perf_counter(), time.process_time()
    if not timed:
        for kind, oid, side, price, lots in calls:
            if kind == 0:
                limit(oid, side, price, lots)
            elif kind == 1:
                market(oid, side, lots)
            else:
                cancel(oid)
        return Pass(time.perf_counter() - t0, time.process_time() - c0, lat, -1)
    for kind, oid, side, price, lots in calls:
        a = clock()
        if kind == 0:
            r = limit(oid, side, price, lots)
        elif kind == 1:
            r = market(oid, side, lots)
        else:
            cancel(oid)
            r = []
        append(clock() - a)
        fills += len(r)
    return Pass(time.perf_counter() - t0, time.process_time() - c0, lat, fills)


def _latency(lat: Sequence[int], kinds: Sequence[int]) -> dict[str, Any]:
    """Percentiles in µs, overall and per kind of event."""

    def summary(values: list[int]) -> dict[str, float]:
        values.sort()
        return {"n": len(values), "mean_us": round(sum(values) / len(values) / 1000, 2),
                **{f"p{q:g}_us".replace(".", ""): round(pct(values, q) / 1000, 2) for q in (50, 90, 99, 99.9)},
                "max_us": round(values[-1] / 1000, 1)}

    out = {"all": summary(list(lat))}
    for kind, name in KIND_NAMES.items():
        values = [v for v, k in zip(lat, kinds, strict=True) if k == kind]
        if values:
            out[name] = summary(values)
    return out


def _figures(p: Pass, timed: Pass, events: int, kinds: Sequence[int]) -> dict[str, Any]:
    return {"untimed_s": round(p.wall_s, 3), "untimed_cpu_s": round(p.cpu_s, 3),
            "events_per_s": round(events / p.wall_s), "events_per_cpu_s": round(events / p.cpu_s),
            "timed_s": round(timed.wall_s, 3), "timed_cpu_s": round(timed.cpu_s, 3),
            "latency": _latency(timed.lat, kinds)}


def run(events: int, seed: int = 7) -> list[Row]:
    market = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
    t = time.perf_counter()
    ops, expected_fills = flow.generate(events, seed=seed, symbols=("BTCUSDT",))
    commands = flow.to_commands(ops)
    calls = [(op.kind, op.order_id, op.side, op.price, op.lots) for op in ops]
    kinds = [op.kind for op in ops]
    built_s = time.perf_counter() - t
    overhead = _timer_overhead_ns()
    gc.collect()
    gc.freeze()  # the workload is input, not the books' own memory: see the module docstring
    try:
        book = _run_book(market, commands, timed=False)
        book_timed = _run_book(market, commands, timed=True)
        ref = _run_reference(calls, timed=False)
        ref_timed = _run_reference(calls, timed=True)
    finally:
        gc.unfreeze()

    rate, ref_rate = events / book.wall_s, events / ref.wall_s
    cpu_rate, ref_cpu_rate = events / book.cpu_s, events / ref.cpu_s
    book_fig, ref_fig = _figures(book, book_timed, events, kinds), _figures(ref, ref_timed, events, kinds)
    lat, rlat = book_fig["latency"]["all"], ref_fig["latency"]["all"]
    p50, p99, rp50, rp99 = lat["p50_us"], lat["p99_us"], rlat["p50_us"], rlat["p99_us"]
    core = "compiled (mypyc)" if COMPILED else "pure Python"
    workload = (f"{events:,} events, seed {seed}: {flow.mix(ops)}, {expected_fills:,} fills; "
                f"1 symbol, 1000 users, STP off; core {core}")
    extra: dict[str, Any] = {
        "core_compiled": COMPILED, "core_module": book_module.__file__,
        "events": events, "mix": flow.mix(ops), "fills_expected": expected_fills, "fills_book": book_timed.fills,
        "fills_reference": ref_timed.fills, "fills_agree": book_timed.fills == ref_timed.fills == expected_fills,
        "flow_build_s": round(built_s, 2), "timer_overhead_ns_p50": overhead,
        "book": book_fig, "reference": ref_fig,
        "ratio_wall": round(rate / ref_rate, 2), "ratio_cpu": round(cpu_rate / ref_cpu_rate, 2),
        "ratio_by_kind_mean": {k: round(ref_fig["latency"][k]["mean_us"] / book_fig["latency"][k]["mean_us"], 2)
                               for k in KIND_NAMES.values() if k in book_fig["latency"]},
        "latency_method": (f"perf_counter_ns around each apply, every event (timer overhead p50 {overhead:.0f} ns, "
                           "not subtracted); the workload is gc.freeze()d, the books are collected as usual"),
        "sample_command": AcceptedOrder.__name__,
    }
    return [
        Row("core: Book.apply", workload, f"{fmt_rate(rate)} (events; {fmt_rate(cpu_rate)} of CPU time)",
            f">= {TARGET_RATE:,}/s", f"reference_book {fmt_rate(ref_rate)} ({fmt_rate(ref_cpu_rate)} of CPU time)",
            ratio(rate, ref_rate), rate, "events/s", rate >= TARGET_RATE, extra),
        Row("core: Book.apply latency", "same flow, per event (every event timed)",
            f"p50 {p50:.1f} µs, p99 {p99:.1f} µs", f"p99 <= {TARGET_P99_US:.0f} µs",
            f"reference p50 {rp50:.1f} µs, p99 {rp99:.1f} µs",
            ratio(p99, rp99) + " (p99)", p99, "µs p99", p99 <= TARGET_P99_US),
    ]
