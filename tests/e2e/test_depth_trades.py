"""Depth and trades as a charting client sees them, on one fleet: the unmodified ccxt (4.5.x) and raw streams.

* Depth: ``watch_order_book`` with limit 5, 10 and 20 ends where REST ``depth`` is; ``fetch_order_book`` costs
  Binance's weight by limit; ``@depth`` pushes once a second and ``@depth@100ms`` faster, each gap-free;
  ``@depth5/10/20`` (and ``@100ms``) carry the top of the book REST shows at the same ``lastUpdateId``.
* Trades: a taker sweeping several makers at one price is one aggregate trade over REST (``aggTrades``), the
  ``@aggTrade`` stream and ccxt's ``fetch_trades``, which pages back to the first trade with ``fromId``;
  ``historicalTrades`` pages back the same way over every trade.
* The WebSocket API's ``depth``, ``trades.recent``, ``trades.historical`` and ``trades.aggregate`` answer what REST
  does.
* Every payload has Binance's keys and types (the stream contract).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import ccxt.pro
import httpx
import pytest
import websockets

from shared.aggtrades import AggTrade, Fill, aggregate, taker_order
from shared.postgres import DEFAULT_MARKETS
from spot import admin
from tests.conftest import drop_env, make_env
from tests.e2e.conftest import RunningFleet
from tests.e2e.test_ccxt import config

pytestmark = pytest.mark.e2e

BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
STREAMS = [
    "btcusdt@depth",
    "btcusdt@depth@100ms",
    "btcusdt@depth5",
    "btcusdt@depth10@100ms",
    "btcusdt@depth20",
    "btcusdt@aggTrade",
    "btcusdt@trade",
]
SWEEPS = 12  # taker orders, each taking two makers at one price
DEPTH_KEYS = {"e": str, "E": int, "s": str, "U": int, "u": int, "b": list, "a": list}
AGG_KEYS = {
    "e": str,
    "E": int,
    "s": str,
    "a": int,
    "p": str,
    "q": str,
    "f": int,
    "l": int,
    "T": int,
    "m": bool,
    "M": bool,
}
TRADE_KEYS = {"e": str, "E": int, "s": str, "t": int, "p": str, "q": str, "T": int, "m": bool, "M": bool}
PARTIAL_KEYS = {"lastUpdateId": int, "bids": list, "asks": list}
AGG_ROW_KEYS = {k: v for k, v in AGG_KEYS.items() if k not in ("e", "E", "s")}
TRADE_ROW_KEYS = {
    "id": int,
    "price": str,
    "qty": str,
    "quoteQty": str,
    "time": int,
    "isBuyerMaker": bool,
    "isBestMatch": bool,
}


def typed_like_binance(payload: dict[str, Any], keys: dict[str, type]) -> None:
    """Binance's keys, each of its type; decimal strings are decimals; levels are [price, qty] string pairs."""
    assert set(payload) == set(keys), set(payload) ^ set(keys)
    for k, kind in keys.items():
        v = payload[k]
        assert type(v) is kind, (k, v)
        if kind is str and k not in ("e", "s"):
            Decimal(v)
        if kind is list:
            for level in v:
                assert len(level) == 2 and all(isinstance(x, str) and Decimal(x) >= 0 for x in level), (k, level)


@pytest.fixture(scope="module")
def module_env(servers: dict[str, str]) -> Iterator[dict[str, str]]:
    """This module's fleet weighs requests at Binance's 6,000 a minute (the tests' 600 is less than a 5,000-level
    book and the pages that follow cost within one minute)."""
    env = make_env(servers) | {"REQUEST_WEIGHT_PER_MINUTE": "6000"}
    yield env
    drop_env(servers, env)


class Seen:
    """What the fleet did: the streams' events by stream name, the aggregates the stored trades make."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {s: [] for s in STREAMS}
        self.aggregates: list[AggTrade] = []
        self.trade_ids: list[int] = []
        self.maker: tuple[str, str] = ("", "")


async def _stored(url: str) -> list[Fill]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT trade_id, price_ticks, qty_lots, buyer_order_id, seller_order_id, buyer_is_maker, ts FROM trades "
            "WHERE symbol = 'BTCUSDT' ORDER BY trade_id"
        )
        return [Fill(r[0], r[1], r[2], taker_order(r[3], r[4], r[5]), r[5], r[6]) for r in rows]
    finally:
        await conn.close()


async def _trade(fleet: RunningFleet) -> Seen:
    seen = Seen()
    deposits = [("BTC", 10 * 10**8), ("USDT", 2_000_000 * 10**8)]
    maker_u, taker_u = [await admin.create_user(fleet.settings, n, deposits) for n in ("maker", "taker")]
    seen.maker = (maker_u.api_key, maker_u.secret)
    maker = ccxt.pro.binance(config(fleet.base, maker_u.api_key, maker_u.secret))
    taker = ccxt.pro.binance(config(fleet.base, taker_u.api_key, taker_u.secret))
    ws = await websockets.connect(fleet.base.replace("http://", "ws://") + "/stream?streams=" + "/".join(STREAMS))

    async def listen() -> None:
        async for raw in ws:
            msg = json.loads(raw)
            seen.events[msg["stream"]].append(msg["data"])

    reader = asyncio.create_task(listen())
    try:
        await maker.load_markets()
        await taker.load_markets()
        for i in range(25):  # a book deeper than the widest partial stream
            await maker.create_order("BTC/USDT", "limit", "buy", 0.001, 40_000 - 10 * i)
        for i in range(SWEEPS):
            price = 50_000 + 10 * i
            for _ in range(2):
                await maker.create_order("BTC/USDT", "limit", "sell", 0.002, price)
            await taker.create_order("BTC/USDT", "market", "buy", 0.004)  # two fills at one price: one aggregate
        await maker.create_order("BTC/USDT", "limit", "sell", 0.002, 60_000)  # two aggregates of one taker:
        await maker.create_order("BTC/USDT", "limit", "sell", 0.002, 60_010)  # its fills at two prices
        await taker.create_order("BTC/USDT", "market", "buy", 0.004)
        deadline = time.monotonic() + 15
        fills: list[Fill] = []
        while len(fills) < 2 * SWEEPS + 2 and time.monotonic() < deadline:
            fills = await _stored(fleet.settings.database_url)
            await asyncio.sleep(0.1)
        assert len(fills) == 2 * SWEEPS + 2
        seen.aggregates = aggregate(fills)
        assert len(seen.aggregates) == SWEEPS + 2 and all(a.last_id == a.first_id + 1 for a in seen.aggregates[:SWEEPS])
        seen.trade_ids = [f.trade_id for f in fills]
        await asyncio.sleep(2.5)  # the last 1,000 ms pushes
        return seen
    finally:
        reader.cancel()
        await ws.close()
        await maker.close()
        await taker.close()


@pytest.fixture(scope="module")
def seen(shared_fleet: RunningFleet) -> Seen:
    return asyncio.run(_trade(shared_fleet))


def _ccxt_trade(a: AggTrade) -> tuple[int, float, float, int, str]:
    return (
        a.agg_id,
        float(BTC.fmt_price(a.price_ticks)),
        float(BTC.fmt_qty(a.qty_lots)),
        a.ts,
        "sell" if a.buyer_is_maker else "buy",
    )


def test_aggregates_over_rest_the_stream_and_ccxt_paging_back(shared_fleet: RunningFleet, seen: Seen) -> None:
    stream = [(e["a"], e["f"], e["l"]) for e in seen.events["btcusdt@aggTrade"]]
    assert stream == [(a.agg_id, a.first_id, a.last_id) for a in seen.aggregates]
    for e in seen.events["btcusdt@aggTrade"]:
        typed_like_binance(e, AGG_KEYS)
    assert [e["t"] for e in seen.events["btcusdt@trade"]] == seen.trade_ids
    for e in seen.events["btcusdt@trade"]:
        typed_like_binance(e, TRADE_KEYS)

    async def run() -> None:
        ex = ccxt.pro.binance(config(shared_fleet.base))
        try:
            await ex.load_markets()
            page = await ex.fetch_trades("BTC/USDT", None, 5)
            got = {int(t["id"]): t for t in page}
            first = seen.aggregates[0].agg_id
            while min(got) > first:  # back, as with Binance: fromId one page below the oldest id seen
                older = await ex.fetch_trades("BTC/USDT", None, 5, {"fromId": max(first, min(got) - 5)})
                assert older and min(int(t["id"]) for t in older) < min(got)
                got |= {int(t["id"]): t for t in older}
            mine = [(int(t["id"]), t["price"], t["amount"], t["timestamp"], t["side"]) for _, t in sorted(got.items())]
            assert mine == [_ccxt_trade(a) for a in seen.aggregates]
            # startTime/endTime as ccxt sends them with ``since``: the hour from it
            since = seen.aggregates[3].ts
            timed = await ex.fetch_trades("BTC/USDT", since, 1000)
            assert [int(t["id"]) for t in timed] == [a.agg_id for a in seen.aggregates if a.ts >= since]
            # every trade, paged back with historicalTrades
            historical = config(shared_fleet.base)
            historical["options"]["fetchTradesMethod"] = "publicGetHistoricalTrades"
            historical["apiKey"] = seen.maker[0]  # ccxt sends a key to historicalTrades (Binance no longer needs it)
            history = ccxt.pro.binance(historical)
            try:
                await history.load_markets()
                ids = [int(t["id"]) for t in await history.fetch_trades("BTC/USDT", None, 7)]
                while ids[0] > seen.trade_ids[0]:
                    older = await history.fetch_trades("BTC/USDT", None, 7, {"fromId": max(1, ids[0] - 7)})
                    ids = sorted(set(ids) | {int(t["id"]) for t in older})
                assert ids == seen.trade_ids
            finally:
                await history.close()
        finally:
            await ex.close()
        async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:
            rows = (await http.get("/aggTrades", params={"symbol": "BTCUSDT", "fromId": first})).json()
            assert [(r["a"], r["f"], r["l"]) for r in rows] == [
                (a.agg_id, a.first_id, a.last_id) for a in seen.aggregates
            ]
            for r in rows:
                typed_like_binance(r, AGG_ROW_KEYS)
            for r in (await http.get("/historicalTrades", params={"symbol": "BTCUSDT", "limit": 3})).json():
                typed_like_binance(r, TRADE_ROW_KEYS)
            for params, code in (
                ({"symbol": "BTCUSDT", "fromId": 1, "startTime": 0}, -1128),
                ({"symbol": "BTCUSDT", "startTime": 0, "endTime": 3_600_001}, -1127),
                ({"symbol": "BTCUSDT", "limit": 1001}, -1100),
                ({"symbol": "NOPEUSDT"}, -1121),
            ):
                r = await http.get("/aggTrades", params=params)
                assert r.status_code == 400 and r.json()["code"] == code, (params, r.text)
            r = await http.get("/historicalTrades", params={"symbol": "BTCUSDT", "fromId": "-1"})
            assert r.status_code == 400 and r.json()["code"] == -1100

    asyncio.run(run())


def test_depth_streams_at_both_speeds_and_the_partial_books(shared_fleet: RunningFleet, seen: Seen) -> None:
    for name in ("btcusdt@depth", "btcusdt@depth@100ms"):
        events = seen.events[name]
        assert events, name
        for e in events:
            typed_like_binance(e, DEPTH_KEYS)
        assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(events)), f"{name}: a gap"
    slow, fast = seen.events["btcusdt@depth"], seen.events["btcusdt@depth@100ms"]
    assert all(b["E"] - a["E"] >= 900 for a, b in itertools.pairwise(slow)), [e["E"] for e in slow]
    assert len(fast) > len(slow) and min(b["E"] - a["E"] for a, b in itertools.pairwise(fast)) < 900
    assert slow[-1]["u"] == fast[-1]["u"], "both end at the same update id"
    for name in ("btcusdt@depth5", "btcusdt@depth10@100ms", "btcusdt@depth20"):
        for e in seen.events[name]:
            typed_like_binance(e, PARTIAL_KEYS)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:
            for name, levels in (("btcusdt@depth5", 5), ("btcusdt@depth10@100ms", 10), ("btcusdt@depth20", 20)):
                rest = (await http.get("/depth", params={"symbol": "BTCUSDT", "limit": levels})).json()
                pushed = [e for e in seen.events[name] if e["lastUpdateId"] == rest["lastUpdateId"]]
                assert pushed and pushed[-1] == rest, (name, rest, seen.events[name][-1:])
                assert len(rest["bids"]) == levels

    asyncio.run(run())


def test_watch_order_book_with_limits_and_depth_weights(shared_fleet: RunningFleet, seen: Seen) -> None:
    async def run() -> None:
        maker = ccxt.pro.binance(config(shared_fleet.base, *seen.maker))
        watchers = {n: ccxt.pro.binance(config(shared_fleet.base)) for n in (5, 10, 20)}
        try:
            await maker.load_markets()
            for limit, ex in watchers.items():
                await ex.load_markets()
                book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT", limit), 10)
                assert len(book["bids"]) == limit
            for i in range(3):  # new best bids: each watcher's book follows the diffs
                await maker.create_order("BTC/USDT", "limit", "buy", 0.001 * (i + 1), 45_000 + i)
            await asyncio.sleep(1.0)
            for limit, ex in watchers.items():
                rest = await ex.fetch_order_book("BTC/USDT", limit)
                for _ in range(200):  # the diffs the watcher has by now (the book is quiet: no watch would return)
                    if ex.orderbooks["BTC/USDT"]["nonce"] >= rest["nonce"]:
                        break
                    await asyncio.sleep(0.05)
                book = ex.orderbooks["BTC/USDT"].limit()
                assert book["nonce"] == rest["nonce"]
                assert (book["bids"][:limit], book["asks"][:limit]) == (rest["bids"], rest["asks"]), limit
                assert book["bids"][0] == [45_002.0, 0.003]
            ex = watchers[5]
            used = []
            for limit, weight in ((5, 5), (100, 5), (101, 25), (500, 25), (1000, 50), (5000, 250)):
                await ex.fetch_order_book("BTC/USDT", limit)
                used.append(
                    (int({k.lower(): v for k, v in ex.last_response_headers.items()}["x-mbx-used-weight-1m"]), weight)
                )
            for (before, _), (after, weight) in itertools.pairwise(used):
                assert after - before == weight or after == weight, used  # or a new minute began
        finally:
            await maker.close()
            for ex in watchers.values():
                await ex.close()

    asyncio.run(run())


def test_the_websocket_api_answers_depth_and_trades_as_rest(shared_fleet: RunningFleet, seen: Seen) -> None:
    async def run() -> None:
        ws = await websockets.connect(shared_fleet.base.replace("http://", "ws://") + "/ws-api/v3")
        try:
            async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:
                first = seen.aggregates[0]
                for i, (method, path, params) in enumerate(
                    (
                        ("depth", "/depth", {"symbol": "BTCUSDT", "limit": 7}),
                        ("trades.recent", "/trades", {"symbol": "BTCUSDT", "limit": 4}),
                        ("trades.historical", "/historicalTrades", {"symbol": "BTCUSDT", "fromId": 3, "limit": 5}),
                        ("trades.aggregate", "/aggTrades", {"symbol": "BTCUSDT", "fromId": first.agg_id, "limit": 6}),
                        ("trades.aggregate", "/aggTrades", {"symbol": "BTCUSDT", "startTime": first.ts}),
                        ("ticker.price", "/ticker/price", {"symbol": "BTCUSDT"}),
                    )
                ):
                    await asyncio.sleep(0.25)  # a connection sends at most 5 messages a second
                    await ws.send(json.dumps({"id": str(i), "method": method, "params": params}))
                    reply = json.loads(await ws.recv())
                    rest = (await http.get(path, params=params)).json()
                    assert reply["id"] == str(i) and reply["status"] == 200 and reply["result"] == rest, method
                await asyncio.sleep(0.25)
                await ws.send(
                    json.dumps({"id": "x", "method": "depth", "params": {"symbol": "BTCUSDT", "limit": 5001}})
                )
                assert json.loads(await ws.recv())["error"]["code"] == -1100
        finally:
            await ws.close()

    asyncio.run(run())
