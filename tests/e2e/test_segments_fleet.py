"""The whole fleet with the segment ring on (``KAFKA_SEGMENT_S=3``: a segment is published a second before it
starts), orders resting, matching and being cancelled across at least six
segments, and the same with the order processor and then the matcher SIGKILLed as a segment switches.

Afterwards: every acknowledged order was confirmed on its owner's user stream; each symbol's trade ids run
from 1 without a gap and each trade was settled once (its two legs in the ledger); every depth update
follows the one before (``U`` = previous ``u`` + 1); the Parquet archive holds every trade once; the money
invariants hold; and the fleet really went through the segments (Postgres' epoch).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis

from services.trade_archiver.archive import committed_files
from services.trade_archiver.layout import namespace
from services.trade_archiver.sink import LocalStore
from shared import segment_store
from shared.config import Settings
from shared.segments import Schedule
from spot import admin
from spot.fleet import Fleet
from tests.client import Client, Stream
from tests.e2e.conftest import RunningFleet, _run
from tests.invariants import check_money
from tests.unit.trade_archiver.flows import trades_in

pytestmark = pytest.mark.e2e

SEGMENT_S = 3
SEGMENTS = 6  # segments the flow goes through, at least
FLOW_MAX_S = 150.0
USERS = 6
MID = {"BTCUSDT": 50_000, "ETHUSDT": 3_000}
DEPOSITS = [("BTC", 5 * 10**8), ("ETH", 100 * 10**8), ("USDT", 1_000_000 * 10**8)]
Disturb = Callable[[Fleet, Settings], None]


@pytest.fixture
def segment_fleet(fresh_env: dict[str, str]) -> Iterator[RunningFleet]:
    yield from _run({**fresh_env, "KAFKA_SEGMENT_S": str(SEGMENT_S), "ARCHIVE_FLUSH_MS": "500"})


def _params(rng: random.Random, symbol: str) -> dict[str, str]:
    mid = MID[symbol]
    side = rng.choice(("BUY", "SELL"))
    qty = f"{rng.randint(1, 20) / (1000 if symbol == 'BTCUSDT' else 100):.4f}"
    if rng.random() < 0.1:
        return {"symbol": symbol, "side": side, "type": "MARKET", "quantity": qty}
    offset = rng.randint(-8, 8) * (mid // 5000)
    price = mid + (offset if side == "SELL" else -offset)  # mostly rest, often cross
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": qty, "price": str(price)}


class Trader:
    """One user sending orders and cancelling some of its resting ones; what was acknowledged is noted."""

    def __init__(self, client: Client, stream: Stream, seed: int) -> None:
        self.client, self.stream, self.rng = client, stream, random.Random(seed)
        self.acked: set[int] = set()
        self.resting: list[tuple[str, int]] = []
        self.cancelled = 0
        self.unknown = 0  # answered -1007 (status unknown) or 5xx while a service was down

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if self.resting and self.rng.random() < 0.25:
                symbol, order_id = self.resting.pop(self.rng.randrange(len(self.resting)))
                await self._call("DELETE", "order", symbol=symbol, orderId=order_id)
                continue
            params = _params(self.rng, self.rng.choice(tuple(MID)))
            body = await self._call("POST", "order", **params, newClientOrderId=f"c{id(self)}-{n}")
            if body is not None and "orderId" in body:
                self.acked.add(body["orderId"])
                if body.get("status") in ("NEW", "PARTIALLY_FILLED"):
                    self.resting.append((params["symbol"], body["orderId"]))
            await asyncio.sleep(0.05)

    async def _call(self, method: str, path: str, **params: Any) -> dict[str, Any] | None:
        try:
            status, body = await self.client.signed(method, path, **params)
        except httpx.HTTPError:
            self.unknown += 1
            return None
        if status == 200:
            self.cancelled += method == "DELETE"
            return body  # type: ignore[no-any-return]
        if status >= 500 or body.get("code") == -1007:
            self.unknown += 1
        return None


def _schedule(settings: Settings) -> Schedule:
    raw = redis.Redis.from_url(settings.redis_url).get(segment_store.schedule_key(settings))
    return Schedule.from_json(orjson.loads(raw)) if raw else Schedule()


def kill_at_switch(name: str) -> Disturb:
    """SIGKILL ``name`` just after the next segment starts, when the producers seal the segment before it,
    the order processor completes it and the seals travel downstream; then start it again."""

    def disturb(fleet: Fleet, settings: Settings) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            schedule = _schedule(settings)
            start = schedule.start_of(schedule.last) if schedule.last is not None else None
            at = None if start is None else start + 20
            now = time.time() * 1000
            if at is not None and 0 <= at - now <= 2_500:
                time.sleep((at - now) / 1000)
                fleet.procs[name].kill()
                fleet.procs[name].wait(10)
                fleet.start(name)
                fleet.wait_ready([name], 60)
                return
            time.sleep(0.05)
        raise AssertionError(f"no segment switch seen to kill {name} in")

    return disturb


async def _epoch(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT epoch FROM fleet"))


async def _flow(running: RunningFleet, disturbances: list[Disturb]) -> None:
    settings, base = running.settings, running.base
    db = await asyncpg.connect(settings.database_url)
    traders: list[Trader] = []
    tasks: list[asyncio.Task[None]] = []
    watcher = Client(base)
    depth = await watcher.market_stream("btcusdt@depth@100ms", "ethusdt@depth@100ms")
    try:
        for i in range(USERS):
            user = await admin.create_user(settings, f"seg-{i}", DEPOSITS)
            client = Client(base, user.api_key, user.secret)
            traders.append(Trader(client, await client.user_stream(), seed=i))
        first = await _epoch(db)
        stop = asyncio.Event()
        tasks += [asyncio.create_task(t.run(stop)) for t in traders]
        started = time.monotonic()
        for disturb in disturbances:
            await asyncio.to_thread(disturb, running.fleet, settings)
        while await _epoch(db) < first + SEGMENTS:
            assert time.monotonic() - started < FLOW_MAX_S, f"segment {await _epoch(db)} after {FLOW_MAX_S}s"
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)

        acked = sum(len(t.acked) for t in traders)
        assert acked > 200, f"only {acked} orders acknowledged"
        # cancels were taken across the segments too (most resting orders fill before their cancel: -2011)
        assert sum(t.cancelled for t in traders) > 10
        # every acknowledged order confirmed on its owner's stream
        for t in traders:
            deadline = time.monotonic() + 30
            while True:
                told = {e["i"] for e in t.stream.events if e.get("e") == "executionReport"}
                if t.acked <= told:
                    break
                assert time.monotonic() < deadline, f"never told of {sorted(t.acked - told)[:10]}"
                await asyncio.sleep(0.2)

        # settled: each symbol's trade ids from 1 without a gap, each trade's two legs in the ledger once
        await _until_settled(db)
        trades = await db.fetch("SELECT symbol, trade_id FROM trades ORDER BY symbol, trade_id")
        assert len(trades) > 50, f"only {len(trades)} trades"
        for symbol in MID:
            ids = [r["trade_id"] for r in trades if r["symbol"] == symbol]
            assert ids == list(range(1, len(ids) + 1)), f"{symbol} trade ids have a gap"
        legs = await db.fetch("SELECT ref, count(*) AS n FROM ledger WHERE kind = 'trade' GROUP BY ref")
        assert {r["ref"]: r["n"] for r in legs} == {f"trade:{r['symbol']}:{r['trade_id']}": 2 for r in trades}
        await check_money(db)

        # depth updates, per symbol, each following the last; the last one is the book REST shows
        await asyncio.sleep(1.0)
        for symbol in MID:
            updates = [e for e in depth.events if e.get("e") == "depthUpdate" and e["s"] == symbol]
            assert updates, f"no depth update of {symbol}"
            for before, after in itertools.pairwise(updates):
                assert after["U"] == before["u"] + 1, f"{symbol}: depth update {after['U']} after {before['u']}"
            assert updates[-1]["u"] == (await watcher.public("depth", symbol=symbol, limit=5))["lastUpdateId"]

        # the archive: every trade once
        store = LocalStore(Path(running.fleet.env["ARCHIVE_DIR"]) / namespace(settings.topic_suffix))
        expected = Counter((r["symbol"], r["trade_id"]) for r in trades)
        deadline = time.monotonic() + 60
        while (found := trades_in(store, committed_files(store))) != expected:
            assert max(found.values(), default=1) == 1, "a trade archived twice"
            assert time.monotonic() < deadline, f"{sum(found.values())} of {len(expected)} trades archived"
            await asyncio.sleep(1.0)
        assert await _epoch(db) >= first + SEGMENTS
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await depth.close()
        await watcher.close()
        for t in traders:
            await t.stream.close()
            await t.client.close()
        await db.close()


async def _until_settled(db: asyncpg.Connection, within_s: float = 30) -> None:
    """Until settlement's cursor stops moving (the last matched events applied)."""
    deadline, last = time.monotonic() + within_s, None
    while time.monotonic() < deadline:
        now = await db.fetch("SELECT symbol, seq FROM settlement_cursor ORDER BY symbol")
        if now == last:
            return
        last = now
        await asyncio.sleep(1.5)
    raise AssertionError("settlement never caught up")


@pytest.mark.timeout(600)
def test_fleet_trades_across_segments(segment_fleet: RunningFleet) -> None:
    asyncio.run(_flow(segment_fleet, []))


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_fleet_survives_processor_and_matcher_killed_in_a_segment_switch(fresh_env: dict[str, str]) -> None:
    for running in _run({**fresh_env, "KAFKA_SEGMENT_S": str(SEGMENT_S), "ARCHIVE_FLUSH_MS": "500"}):
        asyncio.run(_flow(running, [kill_at_switch("order-processor"), kill_at_switch("matcher")]))
