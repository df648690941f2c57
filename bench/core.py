"""Benchmark 1: the pure matching core, ``services.matcher.book.Book.apply`` on pre-built commands.

Two passes over the same seeded flow, each on a fresh book:

* throughput: a bare loop over ``apply`` (the ``MatchedEvent`` of every command is built, not encoded);
* latency: ``time.perf_counter_ns`` around every single ``apply``. The timer's own cost (measured here,
  typically ~0.1 µs against ~10 µs per event) is reported and not subtracted.

The reference is ``bench/reference_book.py`` on the same events (pre-built argument tuples, same two
passes). Both must make the same number of fills, which the flow generator also counted.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from services.matcher.book import Book
from shared.domain import Market
from shared.messages import AcceptedOrder
from shared.postgres import DEFAULT_MARKETS

from . import flow
from .common import Row, fmt_rate, pct, ratio
from .reference_book import ReferenceBook

TARGET_RATE, TARGET_P99_US = 1_000_000, 20.0


def _timer_overhead_ns(n: int = 200_000) -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        a = clock()
        b = clock()
        samples.append(b - a)
    samples.sort()
    return pct(samples, 50)


def _run_book(market: Market, commands: list[Any], timed: bool) -> tuple[float, list[int], int]:
    book = Book(market)
    apply = book.apply
    ts = 1_700_000_000_000
    trades = 0
    lat: list[int] = []
    gc.collect()
    if not timed:
        t0 = time.perf_counter()
        for c in commands:
            apply(c, ts)
        elapsed = time.perf_counter() - t0
        return elapsed, lat, -1
    clock = time.perf_counter_ns
    append = lat.append
    t0 = time.perf_counter()
    for c in commands:
        a = clock()
        e = apply(c, ts)
        append(clock() - a)
        trades += len(e.trades) if e is not None else 0
    elapsed = time.perf_counter() - t0
    return elapsed, lat, trades


def _run_reference(calls: list[tuple[int, int, Any, int, int]], timed: bool) -> tuple[float, list[int], int]:
    book = ReferenceBook()
    limit, market, cancel = book.limit, book.market, book.cancel
    fills = 0
    lat: list[int] = []
    gc.collect()
    clock = time.perf_counter_ns
    append = lat.append
    t0 = time.perf_counter()
    if not timed:
        for kind, oid, side, price, lots in calls:
            if kind == 0:
                limit(oid, side, price, lots)
            elif kind == 1:
                market(oid, side, lots)
            else:
                cancel(oid)
        return time.perf_counter() - t0, lat, -1
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
    return time.perf_counter() - t0, lat, fills


def run(events: int, seed: int = 7) -> list[Row]:
    market = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
    t = time.perf_counter()
    ops, expected_fills = flow.generate(events, seed=seed, symbols=("BTCUSDT",))
    commands = flow.to_commands(ops)
    calls = [(op.kind, op.order_id, op.side, op.price, op.lots) for op in ops]
    built_s = time.perf_counter() - t
    overhead = _timer_overhead_ns()

    book_s, _, _ = _run_book(market, commands, timed=False)
    book_timed_s, book_lat, book_trades = _run_book(market, commands, timed=True)
    ref_s, _, _ = _run_reference(calls, timed=False)
    ref_timed_s, ref_lat, ref_fills = _run_reference(calls, timed=True)
    book_lat.sort()
    ref_lat.sort()

    rate, ref_rate = events / book_s, events / ref_s
    p50, p99 = pct(book_lat, 50) / 1000, pct(book_lat, 99) / 1000
    rp50, rp99 = pct(ref_lat, 50) / 1000, pct(ref_lat, 99) / 1000
    workload = (f"{events:,} events, seed {seed}: {flow.mix(ops)}, {expected_fills:,} fills; "
                "1 symbol, 1000 users, STP off")
    extra: dict[str, Any] = {
        "events": events, "mix": flow.mix(ops), "fills_expected": expected_fills, "fills_book": book_trades,
        "fills_reference": ref_fills, "fills_agree": book_trades == ref_fills == expected_fills,
        "flow_build_s": round(built_s, 2), "timer_overhead_ns_p50": overhead,
        "book": {"untimed_s": round(book_s, 3), "timed_s": round(book_timed_s, 3), "events_per_s": round(rate),
                 "p50_us": round(p50, 2), "p90_us": round(pct(book_lat, 90) / 1000, 2), "p99_us": round(p99, 2),
                 "p999_us": round(pct(book_lat, 99.9) / 1000, 2), "max_us": round(book_lat[-1] / 1000, 1)},
        "reference": {"untimed_s": round(ref_s, 3), "timed_s": round(ref_timed_s, 3),
                      "events_per_s": round(ref_rate), "p50_us": round(rp50, 2),
                      "p99_us": round(rp99, 2), "p999_us": round(pct(ref_lat, 99.9) / 1000, 2)},
        "latency_method": f"perf_counter_ns around each apply (timer overhead p50 {overhead:.0f} ns, not subtracted)",
        "sample_command": AcceptedOrder.__name__,
    }
    return [
        Row("core: Book.apply", workload, f"{fmt_rate(rate)} (events)", f">= {TARGET_RATE:,}/s",
            f"reference_book {fmt_rate(ref_rate)}", ratio(rate, ref_rate), rate, "events/s", rate >= TARGET_RATE,
            extra),
        Row("core: Book.apply latency", "same flow, per event", f"p50 {p50:.1f} µs, p99 {p99:.1f} µs",
            f"p99 <= {TARGET_P99_US:.0f} µs", f"reference p50 {rp50:.1f} µs, p99 {rp99:.1f} µs",
            ratio(p99, rp99) + " (p99)", p99, "µs p99", p99 <= TARGET_P99_US),
    ]
