"""What klines cost with years of trades: the trigger's share of inserting trades, and a chart's requests.

``python -m bench.klines [--years 3] [--per-minute 1] [--database-url URL]`` makes a database of its own on
``URL`` (``DATABASE_URL``; a Postgres the migrating user may create databases on), migrates it, and:

* COPYs ``years`` of trades of one symbol (``per-minute`` a minute, prices walking) in batches of
  ``BATCH`` as settlement does, with the candles trigger on; then the same batches of another symbol with it
  off: the difference is what the candles add to settlement's transaction, per trade;
* asks ``services.gateway.candles.klines`` for 1,000 candles of every interval, the newest and from the middle
  of the history, in UTC and at +05:45 (the zone that rolls up from minutes), best of ``ROUNDS``;
* asks ``services.gateway.trades`` for 1,000 aggregate trades (the newest, from an id and from a time in the
  middle of the history) and 1,000 historical trades from an id, best of ``ROUNDS``: the all-history reads
  through the primary key and the candles, with no index on ``trades`` beyond its key.

Prints a table and writes ``bench/results/klines-<timestamp>.json``; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.gateway import trades
from services.gateway.candles import klines
from services.settlement.accounts import TRADE_COLUMNS
from shared import postgres
from shared.candles import DAY_MS, HOUR_MS, INTERVALS, MINUTE_MS

from .common import RESULTS, loadavg, machine

BATCH = 1_000  # trades a settlement transaction writes under load: hundreds
ROUNDS = 3
ZONES = {"UTC": 0, "+05:45": 5 * HOUR_MS + 45 * MINUTE_MS}


def _batches(symbol: str, start: int, count: int, gap_ms: int, seed: int) -> Iterator[list[tuple[Any, ...]]]:
    """``count`` trades, one every ``gap_ms`` or so, in batches of ``BATCH``: made as they are sent."""
    rng, price = random.Random(seed), 5_000_000
    for first in range(0, count, BATCH):
        batch = []
        for i in range(first, min(count, first + BATCH)):
            price = max(1, price + rng.randint(-300, 300))
            ts = start + i * gap_ms + rng.randint(0, gap_ms - 1)
            batch.append(
                (symbol, i + 1, i + 1, price, rng.randint(1, 10_000), 1, 2, 1, 1, rng.random() < 0.5, 0, 0, ts)
            )
        yield batch


async def _copy(conn: asyncpg.Connection, batches: Iterator[list[tuple[Any, ...]]]) -> float:
    """Seconds spent COPYing the batches, each in its own transaction (as settlement's); making them is not
    counted."""
    spent = 0.0
    for batch in batches:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("trades", columns=TRADE_COLUMNS, records=batch)
        spent += time.perf_counter() - started
    return spent


async def _from_time(conn: asyncpg.Connection, since: int) -> list[Any]:
    """aggTrades with startTime and endTime an hour later, as ccxt's ``fetch_trades(since=...)`` asks."""
    first = await trades.first_at(conn, "HISTUSDT", since)
    return (
        []
        if first is None
        else list(await trades.aggregates_from(conn, "HISTUSDT", first, 1000, since, since + HOUR_MS))
    )


async def run(url: str, years: float, per_minute: int) -> dict[str, Any]:
    name = f"spot_bench_klines_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    head, _, tail = url.partition("?")
    db_url = head.rsplit("/", 1)[0] + "/" + name + (f"?{tail}" if tail else "")
    try:
        await asyncio.to_thread(postgres.migrate, db_url)  # Alembic runs a loop of its own
        conn = await asyncpg.connect(db_url)
        try:
            gap = MINUTE_MS // per_minute
            count = int(years * 365 * DAY_MS / gap)
            now = int(time.time() * 1000)
            start = now - count * gap
            with_trigger = await _copy(conn, _batches("HISTUSDT", start, count, gap, 1))
            await conn.execute("ALTER TABLE trades DISABLE TRIGGER trades_to_klines")
            without = await _copy(conn, _batches("BAREUSDT", start, count, gap, 2))
            await conn.execute("ALTER TABLE trades ENABLE TRIGGER trades_to_klines")
            await conn.execute("ANALYZE klines")
            await conn.execute("ANALYZE trades")  # as autovacuum soon does: before it, a trades read may sort
            stored = {
                int(r[0]): int(r[1]) for r in await conn.fetch("SELECT width_ms, count(*) FROM klines GROUP BY 1")
            }
            reads = []
            for zone, offset in ZONES.items():
                for iv in INTERVALS.values():
                    for label, since in (("newest", None), ("from the middle", (start + now) // 2)):
                        took = []
                        for _ in range(ROUNDS):
                            t0 = time.perf_counter()
                            got = await klines(conn, "HISTUSDT", iv, offset, now=now, start=since, end=None, limit=1000)
                            took.append(time.perf_counter() - t0)
                        reads.append(
                            {
                                "zone": zone,
                                "interval": iv.name,
                                "request": label,
                                "candles": len(got),
                                "best_ms": min(took) * 1000,
                                "median_ms": statistics.median(took) * 1000,
                            }
                        )
            middle_id, middle_ts = count // 2, (start + now) // 2
            asks = {
                "aggTrades newest": lambda: trades.newest_aggregates(conn, "HISTUSDT", 1000),
                "aggTrades fromId": lambda: trades.aggregates_from(conn, "HISTUSDT", middle_id, 1000),
                "aggTrades startTime": lambda: _from_time(conn, middle_ts),
                "historicalTrades fromId": lambda: trades.historical(conn, "HISTUSDT", middle_id, 1000),
            }
            for label, ask in asks.items():
                took = []
                for _ in range(ROUNDS):
                    t0 = time.perf_counter()
                    rows = await ask()
                    took.append(time.perf_counter() - t0)
                reads.append(
                    {
                        "zone": "-",
                        "interval": "-",
                        "request": label,
                        "candles": len(rows),
                        "best_ms": min(took) * 1000,
                        "median_ms": statistics.median(took) * 1000,
                    }
                )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "trades": count,
        "years": years,
        "insert_us_per_trade_with_candles": with_trigger / count * 1e6,
        "insert_us_per_trade_without": without / count * 1e6,
        "stored_candles_by_width_ms": stored,
        "reads": reads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.klines", description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=float, default=3.0)
    ap.add_argument("--per-minute", type=int, default=1, help="trades a minute (default 1)")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = ap.parse_args()
    if not args.database_url:
        ap.error("--database-url or DATABASE_URL is needed")
    mach = machine()
    out = asyncio.run(run(args.database_url, args.years, args.per_minute))
    print(f"{out['trades']:,} trades over {out['years']} years; candles stored: {out['stored_candles_by_width_ms']}")
    print(
        f"COPY per trade: {out['insert_us_per_trade_with_candles']:.1f} us with the candles trigger, "
        f"{out['insert_us_per_trade_without']:.1f} us without"
    )
    print(f"{'zone':7} {'interval':8} {'request':24} {'rows':>7} {'best ms':>8} {'median ms':>9}")
    for r in out["reads"]:
        print(
            f"{r['zone']:7} {r['interval']:8} {r['request']:24} {r['candles']:>7} {r['best_ms']:>8.1f} "
            f"{r['median_ms']:>9.1f}"
        )
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, load average at start {mach['loadavg']}, at end {loadavg()}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"klines-{stamp}.json").write_text(json.dumps({"machine": mach, **out}, indent=2))


if __name__ == "__main__":
    main()
