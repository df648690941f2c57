"""The unmodified ccxt client (pinned 4.5.90, ccxt.pro built in) trades against the fleet.

Only the URLs change (../shared/BINANCE-API-CONTRACT.md section 1). Two users trade; every REST method of
the contract is called; watch_order_book keeps a local book equal to the REST depth, watch_trades sees
every trade once, watch_orders sees each order reach its final state; errors map to ccxt's exceptions.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import pytest

from spot import admin
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e


def config(base: str, api_key: str = "", secret: str = "") -> dict[str, Any]:
    ws = base.replace("http://", "ws://")
    return {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": False,
        "urls": {
            "api": {
                "public": base + "/api/v3",
                "private": base + "/api/v3",
                "v1": base + "/api/v1",
                "ws": {"spot": ws + "/ws", "margin": ws + "/ws", "ws-api": {"spot": ws + "/ws-api/v3"}},
            }
        },
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "adjustForTimeDifference": False,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
    }


def balance_now(balance: dict[str, Any]) -> float:
    return float(balance["BTC"]["total"])


async def _exchange(base: str, settings: Any, deposits: list[tuple[str, int]]) -> Any:
    user = await admin.create_user(settings, "ccxt", deposits)
    ex = ccxt.pro.binance(config(base, user.api_key, user.secret))
    await ex.load_markets()
    return ex


async def _trade_flow(base: str, settings: Any) -> None:
    maker = await _exchange(base, settings, [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)])
    taker = await _exchange(base, settings, [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)])
    watcher = ccxt.pro.binance(config(base))
    try:
        markets = watcher.markets or await watcher.load_markets()
        assert markets["BTC/USDT"]["precision"]["price"] == 0.01 and markets["BTC/USDT"]["active"]
        book_task = asyncio.create_task(watcher.watch_order_book("BTC/USDT"))
        await asyncio.wait_for(asyncio.shield(book_task), 10)
        seen_trades: list[dict[str, Any]] = []
        seen_orders: dict[str, str] = {}

        async def trades_loop() -> None:
            while True:
                seen_trades.extend(await watcher.watch_trades("BTC/USDT"))

        async def orders_loop() -> None:
            while True:
                for o in await maker.watch_orders():
                    seen_orders[o["id"]] = o["status"]

        async def book_loop() -> None:
            while True:
                await watcher.watch_order_book("BTC/USDT")

        my_trades: list[dict[str, Any]] = []
        balances: list[dict[str, Any]] = []
        candles: list[list[Any]] = []

        async def my_trades_loop() -> None:
            while True:
                my_trades.extend(await taker.watch_my_trades())

        async def balance_loop() -> None:
            while True:
                balances.append(await taker.watch_balance())

        async def ohlcv_loop() -> None:
            while True:
                candles.extend(await watcher.watch_ohlcv("BTC/USDT", "1m"))

        loops = [
            asyncio.create_task(f())
            for f in (trades_loop, orders_loop, book_loop, my_trades_loop, balance_loop, ohlcv_loop)
        ]
        await asyncio.sleep(1.0)  # subscriptions in place

        asks = [
            await maker.create_order("BTC/USDT", "limit", "sell", 0.01 * (i + 1), 50_000 + i * 10) for i in range(3)
        ]
        assert all(o["status"] == "open" for o in asks)
        bid = await maker.create_order("BTC/USDT", "limit", "buy", 0.02, 49_000)
        bought = await taker.create_order("BTC/USDT", "market", "buy", 0.015)  # takes 0.01 @ 50000, 0.005 @ 50010
        assert bought["status"] == "closed" and bought["filled"] == 0.015 and len(bought["trades"]) == 2
        by_cost = await taker.create_order("BTC/USDT", "market", "buy", 0.001, 50_020)  # quoteOrderQty = 50.02
        assert by_cost["status"] == "closed" and by_cost["cost"] <= 50.02
        sold = await taker.create_order("BTC/USDT", "market", "sell", 0.005)
        assert sold["status"] == "closed" and sold["average"] == 49_000

        fetched = await maker.fetch_order(asks[0]["id"], "BTC/USDT")
        assert fetched["status"] == "closed" and fetched["filled"] == 0.01
        open_sym = await maker.fetch_open_orders("BTC/USDT")
        open_all = await maker.fetch_open_orders()
        assert {o["id"] for o in open_sym} == {o["id"] for o in open_all} == {asks[1]["id"], asks[2]["id"], bid["id"]}
        canceled = await maker.cancel_order(bid["id"], "BTC/USDT")
        assert canceled["status"] == "canceled" and canceled["filled"] == 0.005

        mine = await taker.fetch_my_trades("BTC/USDT")
        assert len(mine) == 4 and all(t["fee"]["cost"] > 0 for t in mine)
        balance = await maker.fetch_balance()
        assert balance["BTC"]["used"] == pytest.approx(0.044, abs=1e-9)  # 0.06 offered, 0.016 bought
        ticker = await taker.fetch_ticker("BTC/USDT")
        assert ticker["last"] == 49_000 and ticker["ask"] == 50_010
        ohlcv = await taker.fetch_ohlcv("BTC/USDT", "1m")
        assert ohlcv[-1][2] == 50_010 and ohlcv[-1][3] == 49_000
        agg = await taker.fetch_trades("BTC/USDT")
        plain = await taker.fetch_trades("BTC/USDT", params={"fetchTradesMethod": "publicGetTrades"})
        assert [t["id"] for t in agg] == [t["id"] for t in plain] and len(agg) == 4

        await asyncio.sleep(1.0)  # let the streams drain
        rest = await watcher.fetch_order_book("BTC/USDT", 1000)
        local = watcher.orderbooks["BTC/USDT"]
        assert local["nonce"] == rest["nonce"]
        assert [tuple(x[:2]) for x in local["asks"]] == [tuple(x[:2]) for x in rest["asks"]]
        assert [tuple(x[:2]) for x in local["bids"]] == [tuple(x[:2]) for x in rest["bids"]]
        assert sorted(t["id"] for t in seen_trades) == sorted(t["id"] for t in agg), "each trade exactly once"
        assert seen_orders[asks[0]["id"]] == "closed" and seen_orders[bid["id"]] == "canceled"
        assert sorted(t["id"] for t in my_trades) == sorted(t["id"] for t in mine)
        assert balances and balances[-1]["BTC"]["total"] == pytest.approx(balance_now(await taker.fetch_balance()))
        assert candles and candles[-1][4] == 49_000
        for task in loops:
            task.cancel()
        await check_money_at(settings.database_url)
    finally:
        for ex in (maker, taker, watcher):
            await ex.close()


def test_ccxt_trades_and_watches_through_the_fleet(shared_fleet: Any) -> None:
    asyncio.run(_trade_flow(shared_fleet.base, shared_fleet.settings))


async def _errors(base: str, settings: Any) -> None:
    ex = await _exchange(base, settings, [("USDT", 100 * 10**8)])
    bad = ccxt.pro.binance(config(base, ex.apiKey, "0" * 64))
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await bad.fetch_balance()
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order("123456789", "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order("123456789", "BTC/USDT")
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order("BTC/USDT", "limit", "buy", 1, 50_000)
        with pytest.raises(ccxt.InvalidOrder):  # PRICE_FILTER: above maxPrice
            await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 2_000_000)
        with pytest.raises(ccxt.BadRequest):  # NOTIONAL, -1013: ccxt maps it to BadRequest, as against Binance
            await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 10)
        ex.options["timeDifference"] = 120_000  # clock two minutes behind
        with pytest.raises(ccxt.InvalidNonce):
            await ex.fetch_balance()
        ex.options["timeDifference"] = 0
        with pytest.raises(ccxt.BadSymbol):
            await ex.fetch_order_book("XYZ/USDT")
    finally:
        await ex.close()
        await bad.close()


def test_ccxt_errors_map_to_the_right_exceptions(shared_fleet: Any) -> None:
    asyncio.run(_errors(shared_fleet.base, shared_fleet.settings))


async def _test_orders(base: str, settings: Any) -> None:
    """``create_order(..., params={'test': True})`` goes to ``order/test``: the market's filters checked, nothing
    placed or held (as on Binance, the balance is not checked)."""
    ex = await _exchange(base, settings, [("USDT", 1_000 * 10**8)])
    try:
        tried = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 30_000, {"test": True})
        assert tried["id"] is None  # Binance answers {}: nothing was placed, so there is no order id
        with pytest.raises(ccxt.InvalidOrder):  # the market's filters, as a real order meets them: PRICE_FILTER
            await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 2_000_000, {"test": True})
        assert await ex.fetch_open_orders("BTC/USDT") == []
        balance = await ex.fetch_balance()
        assert balance["USDT"]["used"] == 0 and balance["USDT"]["free"] == 1_000  # nothing held
    finally:
        await ex.close()


def test_ccxt_test_orders_are_checked_and_never_placed(shared_fleet: Any) -> None:
    asyncio.run(_test_orders(shared_fleet.base, shared_fleet.settings))


LEGACY = "4.5.5"


def test_ccxt_455_user_stream_uses_the_listen_key(shared_fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """ccxt <= 4.5.5 streams user data over POST /userDataStream and /ws/<listenKey>; run the real 4.5.5."""
    target = tmp_path_factory.getbasetemp() / f"ccxt-{LEGACY}"
    if not (target / "ccxt").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), f"ccxt=={LEGACY}"],
            check=True,
        )
    user = asyncio.run(admin.create_user(shared_fleet.settings, "legacy", [("USDT", 1000 * 10**8)]))
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "tests.e2e.ccxt_legacy_client", shared_fleet.base, user.api_key, user.secret],
        env={**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{root}"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["version"] == LEGACY and result["listenKey"]
    assert (result["orderId"], "open") in [tuple(x) for x in result["seen"]]
    assert result["usdtUsed"] == 40.0 and result["open"] == [result["orderId"]] and result["canceled"] == "canceled"


# last in the module: it spends the shared fleet's request weight for this IP
async def _rate_limit(base: str, settings: Any) -> None:
    ex = await _exchange(base, settings, [])
    try:
        with pytest.raises(ccxt.DDoSProtection) as refused:  # RateLimitExceeded's base: ccxt reads 429 first
            for _ in range(3 * settings.request_weight_per_minute):  # a window may roll over once
                await ex.fetch_time()
        assert "-1003" in str(refused.value)
    finally:
        await ex.close()


def test_ccxt_sees_the_rate_limit(shared_fleet: Any) -> None:
    asyncio.run(_rate_limit(shared_fleet.base, shared_fleet.settings))
