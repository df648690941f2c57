"""Klines as a charting client sees them, on one fleet: the unmodified ccxt (4.5.90) over REST and streams.

* History: ETHUSDT holds two and a half years of trades, written to ``trades`` as settlement writes them (the
  trigger of migration 0012 makes their candles). ``fetch_ohlcv`` with ``since``/``limit`` pages back to the
  first trade at several intervals, and every page is the candles rebuilt from those trades alone
  (``tests/candle_model.py``), gaps filled at the previous close; ``timeZone`` lays days out on another clock;
  ``uiKlines`` answers the same.
* Live: two users trade BTCUSDT through the fleet; every interval's newest candles over REST are the model's
  candles of the trades settlement stored; ``watch_ohlcv`` at 1m, 5m and 1h and the raw ``@kline_1d@+08:00``
  stream show the same candle as REST.
* Every parameter refused with Binance's code (never a 500).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import ccxt.pro
import httpx
import pytest
import websockets

from services.settlement.accounts import TRADE_COLUMNS
from shared.binance import kline_row
from shared.candles import (
    DAY_MS,
    HOUR_MS,
    INTERVALS,
    MINUTE_MS,
    SECONDS_KEPT_MS,
    Candle,
    bucket_open,
    next_open,
)
from shared.postgres import DEFAULT_MARKETS
from shared.tickers import window_open as window_start
from spot import admin
from tests.candle_model import ModelTrade, candles_at, every_open
from tests.client import Client
from tests.e2e.conftest import RunningFleet
from tests.e2e.test_ccxt import config

pytestmark = pytest.mark.e2e

BTC, ETH = (next(m for m in DEFAULT_MARKETS if m.symbol == s) for s in ("BTCUSDT", "ETHUSDT"))
HISTORY_DAYS = 900  # under 1,000 daily candles: one page of 1d from the first trade


def _history(now: int) -> list[ModelTrade]:
    """Trades of ETHUSDT from ``HISTORY_DAYS`` ago to an hour ago: bursts, quiet weeks, a price that walks."""
    rng = random.Random(23)
    ts, price, out = now - HISTORY_DAYS * DAY_MS + 4_321, 200_000, []
    trade_id = 1
    while ts < now - HOUR_MS:
        price = max(100, price + rng.randint(-500, 500))
        out.append((trade_id, price, rng.randint(1, 50_000), rng.random() < 0.5, ts))
        trade_id += 1
        ts += rng.choice([0, 7, 999, 1_000, 45_000, MINUTE_MS, 17 * MINUTE_MS, 3 * HOUR_MS, DAY_MS, 9 * DAY_MS])
    return out


async def _store(url: str, symbol: str, trades: list[ModelTrade]) -> None:
    conn = await asyncpg.connect(url)
    try:
        records = [(symbol, t[0], t[0], t[1], t[2], 1, 2, 1, 1, t[3], 0, 0, t[4]) for t in trades]
        for i in range(0, len(records), 500):  # as settlement does: COPY a batch at a time
            await conn.copy_records_to_table("trades", columns=TRADE_COLUMNS, records=records[i : i + 500])
    finally:
        await conn.close()


async def _stored(url: str, symbol: str) -> list[ModelTrade]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT trade_id, price_ticks, qty_lots, buyer_is_maker, ts FROM trades WHERE symbol = $1", symbol
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]
    finally:
        await conn.close()


def _ccxt_rows(m: Any, candles: list[Candle]) -> list[list[float]]:
    """What ccxt makes of our rows: [open time, o, h, l, c, volume] as floats of the decimal strings."""
    return [[c.open_time, *(float(x) for x in kline_row(m, c)[1:6])] for c in candles]


@pytest.fixture(scope="module")
def history(shared_fleet: RunningFleet) -> Iterator[list[ModelTrade]]:
    trades = _history(int(time.time() * 1000))
    asyncio.run(_store(shared_fleet.settings.database_url, "ETHUSDT", trades))
    yield trades


def test_fetch_ohlcv_pages_back_to_the_first_trade(shared_fleet: RunningFleet, history: list[ModelTrade]) -> None:
    async def run() -> None:
        ex = ccxt.pro.binance(config(shared_fleet.base))
        try:
            await ex.load_markets()
            for tf in ("1h", "8h", "1d", "3d", "1w", "1M"):
                iv, pages, since = INTERVALS[tf], [], 0
                before = int(time.time() * 1000)
                while True:
                    page = await ex.fetch_ohlcv("ETH/USDT", tf, since, 1000)
                    pages += page
                    if len(page) < 1000:
                        break
                    since = page[-1][0] + 1
                last = pages[-1][0]
                assert last >= bucket_open(before, iv), f"{tf}: the newest candle is now's"
                want = candles_at(history, iv, 0, every_open(history, iv, 0, last))
                assert pages == _ccxt_rows(ETH, want), tf
            # a window of minutes, three pages; and seconds from the first trade within their retention
            kept = int(time.time() * 1000) - SECONDS_KEPT_MS + MINUTE_MS
            first_kept = next(t[4] for t in history if t[4] >= kept)
            for tf, since, n in (("1m", history[-1][4] - 3_500 * MINUTE_MS, 3), ("1s", first_kept, 1)):
                iv, rows = INTERVALS[tf], []
                for _ in range(n):
                    page = await ex.fetch_ohlcv("ETH/USDT", tf, since, 1000)
                    assert len(page) == 1000
                    rows += page
                    since = page[-1][0] + 1
                opens = [r[0] for r in rows]
                assert rows == _ccxt_rows(ETH, candles_at(history, iv, 0, opens)), tf
                assert all(next_open(a, iv) == b for a, b in itertools.pairwise(opens)), f"{tf}: no candle skipped"
        finally:
            await ex.close()

    asyncio.run(run())


def test_time_zones_and_ui_klines(shared_fleet: RunningFleet, history: list[ModelTrade]) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:
            for zone, offset in (("8", 8 * HOUR_MS), ("-5:00", -5 * HOUR_MS), ("05:45", 5 * HOUR_MS + 45 * MINUTE_MS)):
                for tf in ("1d", "4h", "1M"):
                    params = {"symbol": "ETHUSDT", "interval": tf, "timeZone": zone, "startTime": 0, "limit": 1000}
                    r = await http.get("/klines", params=params)
                    assert r.status_code == 200, r.text
                    rows = r.json()
                    iv = INTERVALS[tf]
                    opens = [row[0] for row in rows]
                    assert opens[0] == bucket_open(history[0][4], iv, offset), (tf, zone)
                    assert rows == [kline_row(ETH, c) for c in candles_at(history, iv, offset, opens)], (tf, zone)
                    ui = await http.get("/uiKlines", params=params)
                    assert ui.json() == rows
            newest = await http.get("/klines", params={"symbol": "ETHUSDT", "interval": "1w", "limit": 3})
            assert len(newest.json()) == 3 and newest.json()[-1][0] == bucket_open(
                int(time.time() * 1000), INTERVALS["1w"]
            )

    asyncio.run(run())


BAD = [
    ({"symbol": "ETHUSDT"}, -1102),
    ({"symbol": "ETHUSDT", "interval": "7m"}, -1120),
    ({"symbol": "ETHUSDT", "interval": "1mo"}, -1120),
    ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
    ({"symbol": "ETHUSDT", "interval": "1m", "limit": "0"}, -1100),
    ({"symbol": "ETHUSDT", "interval": "1m", "limit": "1001"}, -1100),
    ({"symbol": "ETHUSDT", "interval": "1m", "timeZone": "15"}, -1100),
    ({"symbol": "ETHUSDT", "interval": "1m", "timeZone": "+8h"}, -1100),
    ({"symbol": "ETHUSDT", "interval": "1m", "timeZone": "-12:30"}, -1100),
    ({"symbol": "ETHUSDT", "interval": "1m", "startTime": "-1"}, -1100),
    ({"symbol": "ETHUSDT", "interval": "1m", "endTime": "1e9"}, -1100),
]


def test_every_bad_parameter_gets_binances_code(shared_fleet: RunningFleet) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:
            for path in ("/klines", "/uiKlines"):
                for params, code in BAD:
                    r = await http.get(path, params=params)
                    assert r.status_code == 400 and r.json()["code"] == code, (path, params, r.text)

    asyncio.run(run())


class Live:
    """BTCUSDT traded through the fleet while ccxt watched its klines: the trades, and what the streams said."""

    def __init__(self) -> None:
        self.trades: list[ModelTrade] = []
        self.seen: dict[str, list[list[float]]] = {"1m": [], "5m": [], "1h": []}
        self.zoned: list[dict[str, Any]] = []
        self.maker: tuple[str, str] = ("", "")  # the maker's API key and secret, to move the book later


async def _trade_and_watch(fleet: RunningFleet) -> Live:
    live = Live()
    deposits = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]
    maker_u, taker_u = [await admin.create_user(fleet.settings, n, deposits) for n in ("maker", "taker")]
    live.maker = (maker_u.api_key, maker_u.secret)
    maker = ccxt.pro.binance(config(fleet.base, maker_u.api_key, maker_u.secret))
    taker = ccxt.pro.binance(config(fleet.base, taker_u.api_key, taker_u.secret))
    watcher = ccxt.pro.binance(config(fleet.base))
    raw = Client(fleet.base)
    zoned = await raw.market_stream("btcusdt@kline_1d@+08:00", "btcusdt@kline_4h@+08:00", "btcusdt@kline_1s")
    try:
        for ex in (maker, taker, watcher):
            await ex.load_markets()

        async def watch(tf: str) -> None:
            while True:
                live.seen[tf] += await watcher.watch_ohlcv("BTC/USDT", tf)

        loops = [asyncio.create_task(watch(tf)) for tf in live.seen]
        await asyncio.sleep(1.0)  # subscriptions in place
        for i in range(3):
            await maker.create_order("BTC/USDT", "limit", "sell", 0.01, 50_000 + 10 * i)
        await taker.create_order("BTC/USDT", "market", "buy", 0.015)
        await asyncio.sleep(1.1)  # the next trades in another second
        await taker.create_order("BTC/USDT", "market", "buy", 0.01)
        await maker.create_order("BTC/USDT", "limit", "buy", 0.01, 49_000)
        await taker.create_order("BTC/USDT", "market", "sell", 0.004)
        # 0.01 @ 50000 + 0.005 @ 50010, then 0.005 @ 50010 + 0.005 @ 50020, then 0.004 @ 49000
        deadline = time.monotonic() + 15
        while len(live.trades) < 5 and time.monotonic() < deadline:
            live.trades = await _stored(fleet.settings.database_url, "BTCUSDT")
            await asyncio.sleep(0.1)
        assert len(live.trades) == 5, live.trades
        await asyncio.sleep(5.0)  # the live candles' next pushes, and a quiet second turning over
        for loop in loops:
            loop.cancel()
        live.zoned = list(zoned.events)
        return live
    finally:
        await zoned.close()
        await raw.close()
        for ex in (maker, taker, watcher):
            await ex.close()


@pytest.fixture(scope="module")
def btc(shared_fleet: RunningFleet) -> Live:
    return asyncio.run(_trade_and_watch(shared_fleet))


def test_a_quiet_candle_closes_and_the_next_opens_at_the_last_price(btc: Live) -> None:
    """The streams turn over without trades, as Binance's (every 2 s): the last trade's second goes out closed,
    then a second with no trade at its close."""
    last = max(btc.trades)
    seconds = [e["k"] for e in btc.zoned if e.get("e") == "kline" and e["k"]["i"] == "1s"]
    closed = [k for k in seconds if k["x"]]
    assert closed and closed[-1]["L"] == last[0] and closed[-1]["t"] == bucket_open(last[4], INTERVALS["1s"])
    quiet = [k for k in seconds if k["n"] == 0]
    assert quiet and quiet[-1]["t"] > closed[-1]["t"], seconds[-3:]
    price = BTC.fmt_price(last[1])
    assert (quiet[-1]["o"], quiet[-1]["h"], quiet[-1]["l"], quiet[-1]["c"], quiet[-1]["v"]) == (
        price,
        price,
        price,
        price,
        "0.00000000",
    )


def test_live_candles_over_rest_and_streams_are_the_trades(shared_fleet: RunningFleet, btc: Live) -> None:
    async def run() -> None:
        watcher = ccxt.pro.binance(config(shared_fleet.base))
        try:
            await watcher.load_markets()
            last = max(btc.trades)
            for tf, iv in INTERVALS.items():
                rows = await watcher.fetch_ohlcv("BTC/USDT", tf, None, 3)
                opens = [r[0] for r in rows]
                assert opens[-1] >= bucket_open(last[4], iv), tf
                assert rows == _ccxt_rows(BTC, candles_at(btc.trades, iv, 0, opens)), tf
            for tf in btc.seen:  # the stream showed the last trade's candle as REST does
                iv = INTERVALS[tf]
                want = _ccxt_rows(BTC, candles_at(btc.trades, iv, 0, [bucket_open(last[4], iv)]))[0]
                assert want in await watcher.fetch_ohlcv("BTC/USDT", tf, want[0], 1)
                assert want in btc.seen[tf], (tf, btc.seen[tf][-3:], want)
        finally:
            await watcher.close()

    asyncio.run(run())
    last = max(btc.trades)
    for tf in ("1d", "4h"):
        iv, offset = INTERVALS[tf], 8 * HOUR_MS
        events = [e for e in btc.zoned if e.get("e") == "kline" and e["k"]["i"] == tf and e["k"]["L"] == last[0]]
        assert events, (tf, btc.zoned[-3:])
        k = events[-1]["k"]
        want = candles_at(btc.trades, iv, offset, [bucket_open(last[4], iv, offset)])[0]
        assert (k["t"], k["T"], k["f"], k["n"]) == (want.open_time, want.close_time, want.first_trade, want.trades)
        assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["q"]) == (
            BTC.fmt_price(want.open),
            BTC.fmt_price(want.high),
            BTC.fmt_price(want.low),
            BTC.fmt_price(want.close),
            BTC.fmt_qty(want.volume),
            BTC.fmt_notional(want.quote_volume),
        )


# -- tickers -------------------------------------------------------------------------------------------------
DAY_KEYS = {
    "e",
    "E",
    "s",
    "p",
    "P",
    "w",
    "x",
    "c",
    "Q",
    "b",
    "B",
    "a",
    "A",
    "o",
    "h",
    "l",
    "v",
    "q",
    "O",
    "C",
    "F",
    "L",
    "n",
}
MINI_KEYS = {"e", "E", "s", "c", "o", "h", "l", "v", "q"}
WINDOW_KEYS = {"e", "E", "s", "p", "P", "o", "h", "l", "c", "w", "v", "q", "O", "C", "F", "L", "n"}
INTS = {"E", "O", "C", "F", "L", "n", "T", "u"}  # every other field of a ticker event is a decimal string


def _event(e: Any, kind: str) -> bool:
    return isinstance(e, dict) and e.get("e") == kind


def _typed_like_binance(event: dict[str, Any], keys: set[str]) -> None:
    assert set(event) == keys, set(event) ^ keys
    for k, v in event.items():
        if k in INTS:
            assert isinstance(v, int), (k, v)
        elif k not in ("e", "s", "i"):
            assert isinstance(v, str) and Decimal(v) == Decimal(v), (k, v)


def _expected(m: Any, trades: list[ModelTrade], open_time: int, close_time: int) -> dict[str, Any]:
    """A window's ticker numbers from the trades alone (the MINI fields, and the change ones)."""
    inside = sorted(t for t in trades if open_time <= t[4] <= close_time)
    before = sorted(t for t in trades if t[4] < open_time)
    prev = before[-1][1] if before else 0
    if not inside:
        out = {"openPrice": prev, "highPrice": prev, "lowPrice": prev, "lastPrice": prev, "firstId": -1, "lastId": -1}
        volume = quote = 0
    else:
        prices = [t[1] for t in inside]
        out = {"openPrice": prices[0], "highPrice": max(prices), "lowPrice": min(prices), "lastPrice": prices[-1]}
        out |= {"firstId": inside[0][0], "lastId": inside[-1][0]}
        volume, quote = sum(t[2] for t in inside), sum(t[1] * t[2] for t in inside)
    expected = {k: m.fmt_price(v) if k.endswith("Price") else v for k, v in out.items()}
    change = (out["lastPrice"] - out["openPrice"]) * m.tick_size
    return expected | {
        "volume": m.fmt_qty(volume),
        "quoteVolume": m.fmt_notional(quote),
        "count": len(inside),
        "priceChange": f"{change:.8f}",
        "prevClosePrice": m.fmt_price(prev),
        "weightedAvgPrice": f"{(quote * m.tick_size / volume).quantize(Decimal('1e-8')) if volume else 0:.8f}",
    }


def _agrees(row: dict[str, Any], want: dict[str, Any]) -> None:
    assert {k: row[k] for k in want if k in row} == {k: v for k, v in want.items() if k in row}, row


def test_rest_tickers_are_the_trades(shared_fleet: RunningFleet, btc: Live, history: list[ModelTrade]) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:

            async def get(path: str, **params: Any) -> Any:
                r = await http.get(path, params=params)
                assert r.status_code == 200, (path, params, r.text)
                return r.json()

            day = await get("/ticker/24hr", symbol="BTCUSDT")
            assert day["closeTime"] - day["openTime"] < DAY_MS + MINUTE_MS and day["openTime"] % MINUTE_MS == 0
            _agrees(day, _expected(BTC, btc.trades, day["openTime"], day["closeTime"]))
            assert (day["bidPrice"], day["bidQty"], day["askPrice"], day["askQty"]) == (
                "49000.00000000",
                "0.00600000",
                "50020.00000000",
                "0.00500000",
            )
            assert day["lastQty"] == "0.00400000"
            both = await get("/ticker/24hr", symbols='["ETHUSDT","BTCUSDT"]', type="MINI")
            assert [t["symbol"] for t in both] == ["ETHUSDT", "BTCUSDT"]
            assert set(both[0]) == set(both[1]) and "priceChange" not in both[1] and "bidPrice" not in both[1]
            _agrees(both[0], _expected(ETH, history, both[0]["openTime"], both[0]["closeTime"]))
            for size, ms in (("7d", 7 * DAY_MS), ("90m", None), ("13h", 13 * HOUR_MS)):
                if ms is None:
                    r = await http.get("/ticker", params={"symbol": "ETHUSDT", "windowSize": size})
                    assert r.status_code == 400 and r.json()["code"] == -1100
                    continue
                rolling = await get("/ticker", symbol="ETHUSDT", windowSize=size)
                assert rolling["openTime"] == window_start(rolling["closeTime"], ms)
                _agrees(rolling, _expected(ETH, history, rolling["openTime"], rolling["closeTime"]))
            today = await get("/ticker/tradingDay", symbol="ETHUSDT", timeZone="8")
            opened = bucket_open(int(time.time() * 1000), INTERVALS["1d"], 8 * HOUR_MS)
            assert (today["openTime"], today["closeTime"]) == (opened, opened + DAY_MS - 1)
            _agrees(today, _expected(ETH, history, today["openTime"], today["closeTime"]))
            avg = await get("/avgPrice", symbol="BTCUSDT")
            quote, lots = sum(t[1] * t[2] for t in btc.trades), sum(t[2] for t in btc.trades)
            assert avg == {
                "mins": 5,
                "price": f"{(quote * BTC.tick_size / lots).quantize(Decimal('1e-8')):.8f}",
                "closeTime": max(btc.trades)[4],
            }
            prices = await get("/ticker/price", symbols='["BTCUSDT","ETHUSDT"]')
            assert prices == [
                {"symbol": "BTCUSDT", "price": "49000.00000000"},
                {"symbol": "ETHUSDT", "price": ETH.fmt_price(max(history)[1])},
            ]
            book = await get("/ticker/bookTicker", symbol="BTCUSDT")
            assert book == {
                "symbol": "BTCUSDT",
                "bidPrice": "49000.00000000",
                "bidQty": "0.00600000",
                "askPrice": "50020.00000000",
                "askQty": "0.00500000",
            }
            for path, params, code in (
                ("/ticker", {}, -1102),
                ("/ticker/24hr", {"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, -1128),
                ("/ticker/24hr", {"symbols": "BTCUSDT"}, -1100),
                ("/ticker/24hr", {"symbols": '["NOPE"]'}, -1121),
                ("/ticker/24hr", {"symbols": '["BTCUSDT","BTCUSDT"]'}, -1101),
                ("/ticker/24hr", {"type": "HUGE"}, -1100),
                ("/ticker/tradingDay", {"symbol": "BTCUSDT", "timeZone": "99"}, -1100),
                ("/avgPrice", {}, -1102),
            ):
                r = await http.get(path, params=params)
                assert r.status_code == 400 and r.json()["code"] == code, (path, params, r.text)
        ex = ccxt.pro.binance(config(shared_fleet.base))
        try:
            await ex.load_markets()
            t = await ex.fetch_ticker("BTC/USDT")
            assert (t["last"], t["bid"], t["ask"], t["high"], t["low"]) == (49_000, 49_000, 50_020, 50_020, 49_000)
            assert t["baseVolume"] == float(BTC.fmt_qty(sum(x[2] for x in btc.trades)))
            both = await ex.fetch_tickers(["BTC/USDT", "ETH/USDT"])
            assert set(both) == {"BTC/USDT", "ETH/USDT"} and both["ETH/USDT"]["last"] == float(
                ETH.fmt_price(max(history)[1])
            )
        finally:
            await ex.close()

    asyncio.run(run())


def test_ticker_streams(shared_fleet: RunningFleet, btc: Live) -> None:
    async def run() -> None:
        raw = Client(shared_fleet.base)
        streams = await raw.market_stream(
            "btcusdt@ticker",
            "btcusdt@miniTicker",
            "btcusdt@ticker_1h",
            "btcusdt@ticker_4h",
            "btcusdt@ticker_1d",
            "btcusdt@avgPrice",
            "btcusdt@bookTicker",
            "!ticker@arr",
            "!miniTicker@arr",
        )
        watcher = ccxt.pro.binance(config(shared_fleet.base))
        maker = ccxt.pro.binance(config(shared_fleet.base, *btc.maker))
        try:
            await watcher.load_markets()
            await maker.load_markets()
            ticker = await asyncio.wait_for(watcher.watch_ticker("BTC/USDT"), 10)
            assert ticker["last"] == 49_000 and ticker["high"] == 50_020
            # ETHUSDT's history went to Postgres behind market-data's back: only BTCUSDT has traded for the streams
            tickers = await asyncio.wait_for(watcher.watch_tickers(["BTC/USDT"], {"name": "ticker"}), 10)
            assert tickers["BTC/USDT"]["last"] == 49_000 and tickers["BTC/USDT"]["previousClose"] == 0
            bids_asks = asyncio.ensure_future(watcher.watch_bids_asks(["BTC/USDT"]))
            await asyncio.sleep(0.5)
            await maker.create_order("BTC/USDT", "limit", "buy", 0.002, 49_500)  # a new best bid
            best = (await asyncio.wait_for(bids_asks, 10))["BTC/USDT"]
            assert (best["bid"], best["bidVolume"], best["ask"]) == (49_500, 0.002, 50_020)

            day = await streams.wait_for(lambda e: _event(e, "24hrTicker") and e["b"] == "49500.00000000")
            _typed_like_binance(day, DAY_KEYS)
            ids = sorted(t[0] for t in btc.trades)
            assert (day["c"], day["Q"], day["n"], day["F"], day["L"]) == (
                "49000.00000000",
                "0.00400000",
                5,
                ids[0],
                ids[-1],
            )
            _typed_like_binance(await streams.wait_for(lambda e: _event(e, "24hrMiniTicker")), MINI_KEYS)
            for window in ("1h", "4h", "1d"):
                event = await streams.wait_for(lambda e, w=window: _event(e, f"{w}Ticker"))
                _typed_like_binance(event, WINDOW_KEYS)
                assert (event["c"], event["n"]) == ("49000.00000000", 5)
            avg = await streams.wait_for(lambda e: _event(e, "avgPrice"))
            _typed_like_binance(avg, {"e", "E", "s", "i", "w", "T"})
            assert avg["i"] == "5m" and avg["T"] == max(btc.trades)[4]
            book = await streams.wait_for(lambda e: isinstance(e, dict) and "u" in e and e.get("b") == "49500.00000000")
            _typed_like_binance(book, {"u", "s", "b", "B", "a", "A"})
            # the arrays carry the tickers that changed: a trade changes both
            taker_u = await admin.create_user(shared_fleet.settings, "late taker", [("USDT", 1_000 * 10**8)])
            taker = ccxt.pro.binance(config(shared_fleet.base, taker_u.api_key, taker_u.secret))
            try:
                await taker.load_markets()
                await taker.create_order("BTC/USDT", "market", "buy", 0.001)  # at the 50020 ask
            finally:
                await taker.close()
            for kind, keys in (("24hrTicker", DAY_KEYS), ("24hrMiniTicker", MINI_KEYS)):
                arrays = await streams.wait_for(
                    lambda e, k=kind: (
                        isinstance(e, list) and any(_event(t, k) and t["c"] == "50020.00000000" for t in e)
                    )
                )
                assert {t["s"] for t in arrays} <= {"BTCUSDT", "ETHUSDT"}
                for t in arrays:
                    _typed_like_binance(t, keys)
        finally:
            await streams.close()
            await raw.close()
            await watcher.close()
            await maker.close()

    asyncio.run(run())


def test_the_websocket_api_answers_as_rest(shared_fleet: RunningFleet, btc: Live, history: list[ModelTrade]) -> None:
    """``klines``, ``uiKlines``, ``avgPrice`` and the ``ticker.*`` methods on ``/ws-api/v3`` answer what REST does;
    ccxt's ``fetch_ohlcv_ws`` reads them."""

    async def run() -> None:
        ex = ccxt.pro.binance(config(shared_fleet.base))
        ws = await websockets.connect(shared_fleet.base.replace("http://", "ws://") + "/ws-api/v3")
        try:
            await ex.load_markets()
            first = min(t[4] for t in btc.trades)
            assert await ex.fetch_ohlcv_ws("ETH/USDT", "1d", 0, 50) == await ex.fetch_ohlcv("ETH/USDT", "1d", 0, 50)
            async with httpx.AsyncClient(base_url=shared_fleet.base + "/api/v3", timeout=15) as http:
                for i, (method, path, params) in enumerate(
                    (
                        ("klines", "/klines", {"symbol": "ETHUSDT", "interval": "1w", "startTime": 0, "limit": 20}),
                        (
                            "uiKlines",
                            "/uiKlines",
                            {"symbol": "BTCUSDT", "interval": "1s", "startTime": first, "limit": 5},
                        ),
                        ("ticker.price", "/ticker/price", {"symbols": ["BTCUSDT", "ETHUSDT"]}),
                        ("ticker.book", "/ticker/bookTicker", {"symbol": "BTCUSDT"}),
                        ("avgPrice", "/avgPrice", {"symbol": "BTCUSDT"}),
                        ("ticker.24hr", "/ticker/24hr", {"symbol": "ETHUSDT", "type": "MINI"}),
                        ("ticker", "/ticker", {"symbol": "ETHUSDT", "windowSize": "7d"}),
                        ("ticker.tradingDay", "/ticker/tradingDay", {"symbols": ["ETHUSDT"], "timeZone": "-5:00"}),
                    )
                ):
                    await asyncio.sleep(0.25)  # a connection sends at most 5 messages a second
                    await ws.send(json.dumps({"id": str(i), "method": method, "params": params}))
                    reply = json.loads(await ws.recv())
                    query = {
                        k: json.dumps(v, separators=(",", ":")) if isinstance(v, list) else v for k, v in params.items()
                    }
                    rest = (await http.get(path, params=query)).json()
                    if method in ("ticker.24hr", "ticker"):  # a rolling window closes at the request's time
                        reply["result"].pop("closeTime")
                        rest.pop("closeTime")
                    assert reply["id"] == str(i) and reply["status"] == 200 and reply["result"] == rest, method
                await asyncio.sleep(0.25)
                await ws.send(
                    json.dumps({"id": "x", "method": "klines", "params": {"symbol": "ETHUSDT", "interval": "2w"}})
                )
                assert json.loads(await ws.recv())["error"]["code"] == -1120
        finally:
            await ws.close()
            await ex.close()

    asyncio.run(run())
