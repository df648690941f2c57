"""Markets changed while the fleet runs (issue 25), through ``spot admin market`` as an operator runs it.

- A market added while every service runs (market-data included, started long before its first event) is in
  exchangeInfo within a second or two, trades at once, and its trade and depth streams and REST depth show it.
- A halt refuses new orders with Binance's -2010 "Market is closed." (exchangeInfo says HALT) while cancels
  still go; resume accepts again.
- A halt with ``--cancel-resting`` cancels every owner's resting orders in sequence and frees every hold.

The money invariants are checked after each scenario.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from shared import servicekey
from shared.lifecycle import now_ms
from spot import admin
from tests.client import Client
from tests.e2e.conftest import RunningFleet
from tests.e2e.test_operator import spot
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

COIN = 10**8  # atoms


async def _status_within(c: Client, symbol: str, status: str | None, limit_s: float = 2.0) -> float:
    """Seconds until exchangeInfo lists ``symbol`` with ``status``."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s + 3:
        info = await c.public("exchangeInfo")
        found = {s["symbol"]: s["status"] for s in info["symbols"]}
        if found.get(symbol) == status:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"exchangeInfo does not show {symbol} {status} after {limit_s + 3} s")


async def _held(f: RunningFleet, user_ids: list[int]) -> int:
    db = await asyncpg.connect(f.settings.database_url)
    try:
        return int(await db.fetchval("SELECT coalesce(sum(held), 0) FROM balances WHERE user_id = ANY($1)", user_ids))
    finally:
        await db.close()


def _limit(symbol: str, side: str, price: str, qty: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": "GTC", "price": price, "quantity": qty}


async def _added_market_trades_and_streams(f: RunningFleet) -> None:
    code, out, err = await spot("admin", "market", "add", "SOLUSDT", "--base", "SOL", "--quote", "USDT",
                                "--tick-size", "0.01", "--step-size", "0.001", "--min-notional", "1")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "TRADING"
    public = Client(f.base)
    seller_u = await admin.create_user(f.settings, "sol-seller", [("SOL", 10 * COIN)])
    buyer_u = await admin.create_user(f.settings, "sol-buyer", [("USDT", 10_000 * COIN)])
    seller, buyer = Client(f.base, seller_u.api_key, seller_u.secret), Client(f.base, buyer_u.api_key, buyer_u.secret)
    try:
        assert await _status_within(public, "SOLUSDT", "TRADING") < 2.0
        stream = await public.market_stream("solusdt@trade", "solusdt@depth@100ms")
        try:
            await seller.order(**_limit("SOLUSDT", "SELL", "150.00", "2.000"))
            await seller.order(**_limit("SOLUSDT", "SELL", "151.00", "1.000"))
            bought = await buyer.order(**_limit("SOLUSDT", "BUY", "150.00", "0.500"))
            assert bought["status"] == "FILLED", bought
            trade = await stream.wait_for(lambda e: e.get("e") == "trade")
            assert (trade["s"], trade["p"], trade["q"]) == ("SOLUSDT", "150.00000000", "0.50000000"), trade
            await stream.wait_for(lambda e: e.get("e") == "depthUpdate" and e.get("s") == "SOLUSDT")
        finally:
            await stream.close()
        deadline = time.monotonic() + 5
        while True:  # every level, none passed over: market-data applied the new symbol's first events too
            depth = await public.public("depth", symbol="SOLUSDT")
            if depth["asks"] == [["150.00000000", "1.50000000"], ["151.00000000", "1.00000000"]]:
                break
            assert time.monotonic() < deadline, depth
            await asyncio.sleep(0.1)
        await check_money_at(f.settings.database_url)
        code, out, err = await spot("admin", "audit", "--wait", "10")  # the new market's book agrees everywhere
        assert code == 0, (out, err)
        assert "SOLUSDT" in {b["symbol"] for b in json.loads(out)["books"]}, out
    finally:
        await public.close()
        await seller.close()
        await buyer.close()


def test_a_market_added_while_the_fleet_runs_trades_and_streams_at_once(shared_fleet: RunningFleet) -> None:
    asyncio.run(_added_market_trades_and_streams(shared_fleet))


async def _halt_and_resume(f: RunningFleet) -> None:
    code, _, err = await spot("admin", "market", "add", "ADAUSDT", "--base", "ADA", "--quote", "USDT",
                              "--tick-size", "0.0001", "--step-size", "1", "--min-notional", "1")  # fmt: skip
    assert code == 0, err
    u = await admin.create_user(f.settings, "halted", [("USDT", 10_000 * COIN)])
    c = Client(f.base, u.api_key, u.secret)
    try:
        await _status_within(c, "ADAUSDT", "TRADING")
        resting = await c.order(**_limit("ADAUSDT", "BUY", "0.5000", "100"))
        code, out, err = await spot("admin", "market", "halt", "ADAUSDT")
        assert code == 0, err
        assert json.loads(out)["status"] == "HALT"
        assert await _status_within(c, "ADAUSDT", "HALT") < 1.0
        status, body = await c.signed("POST", "order", **_limit("ADAUSDT", "BUY", "0.5000", "100"))
        assert (status, body) == (400, {"code": -2010, "msg": "Market is closed."})
        status, body = await c.signed("DELETE", "order", symbol="ADAUSDT", orderId=resting["orderId"])
        assert status == 200 and body["status"] == "CANCELED", body  # a halt closes the door, not the exit
        code, _, err = await spot("admin", "market", "resume", "ADAUSDT")
        assert code == 0, err
        await _status_within(c, "ADAUSDT", "TRADING")
        again = await c.order(**_limit("ADAUSDT", "BUY", "0.5000", "100"))
        assert again["status"] == "NEW", again
        code, _, err = await spot("admin", "market", "update", "ADAUSDT", "--tick-size", "0.001")
        assert code == 2 and "cannot change" in err
        await check_money_at(f.settings.database_url)
    finally:
        await c.close()


def test_a_halt_refuses_new_orders_and_resume_accepts_them(shared_fleet: RunningFleet) -> None:
    asyncio.run(_halt_and_resume(shared_fleet))


async def _halt_cancel_resting(f: RunningFleet) -> None:
    users = [await admin.create_user(f.settings, f"book-{i}", [("USDT", 10_000 * COIN), ("BTC", COIN)])
             for i in range(3)]  # fmt: skip
    clients = [Client(f.base, u.api_key, u.secret) for u in users]
    try:
        for i, c in enumerate(clients):
            await c.order(**_limit("ETHUSDT", "BUY", f"{1000 + i}", "0.1"))
            await c.order(**_limit("BTCUSDT", "SELL", f"{99000 + i}", "0.01"))  # another market: left alone
        ids = [u.user_id for u in users]
        assert await _held(f, ids) > 0
        code, out, err = await spot("admin", "market", "halt", "ETHUSDT", "--cancel-resting")
        assert code == 0, err
        said = json.loads(out)
        assert said["status"] == "HALT" and said["canceled"]["stillOpen"] == 0, said
        assert said["canceled"]["canceled"] >= 3, said
        for c in clients:
            status, body = await c.signed("GET", "openOrders", symbol="ETHUSDT")
            assert (status, body) == (200, [])
            status, body = await c.signed("GET", "openOrders", symbol="BTCUSDT")
            assert status == 200 and len(body) == 1, body
        db = await asyncpg.connect(f.settings.database_url)
        try:
            usdt_held = await db.fetchval(
                "SELECT coalesce(sum(held), 0) FROM balances WHERE user_id = ANY($1) AND asset = 'USDT'", ids
            )
        finally:
            await db.close()
        assert usdt_held == 0  # every ETHUSDT buy's hold freed, once
        await check_money_at(f.settings.database_url)
    finally:
        code, _, err = await spot("admin", "market", "resume", "ETHUSDT")
        assert code == 0, err
        for c in clients:
            await c.close()


def test_a_halt_with_cancel_resting_frees_every_hold(shared_fleet: RunningFleet) -> None:
    asyncio.run(_halt_cancel_resting(shared_fleet))


async def _ingestion_learns(f: RunningFleet) -> None:
    """The ingestion service (the entry of the Lambda, and of a gateway with INGESTION_IN_GATEWAY=false) has no
    notice of a market change: it reads the rows again at a symbol it does not know."""
    code, _, err = await spot("admin", "market", "add", "XRPUSDT", "--base", "XRP", "--quote", "USDT",
                              "--tick-size", "0.0001", "--step-size", "1", "--min-notional", "1")  # fmt: skip
    assert code == 0, err
    u = await admin.create_user(f.settings, "xrp-buyer", [("USDT", 1_000 * COIN)])
    path = "/internal/orders"
    body = orjson.dumps({"userId": u.user_id, "params": _limit("XRPUSDT", "BUY", "0.5000", "100")})
    headers = {"Content-Type": "application/json",
               servicekey.HEADER: servicekey.sign(servicekey.key_of(f.settings), path, body, now_ms())}  # fmt: skip
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{f.fleet.port('ingestion')}", timeout=10) as http:
        r = await http.post(path, content=body, headers=headers)
    assert r.status_code == 200 and r.json()["symbol"] == "XRPUSDT", r.text
    await check_money_at(f.settings.database_url)


def test_the_ingestion_service_takes_orders_for_a_market_added_live(shared_fleet: RunningFleet) -> None:
    asyncio.run(_ingestion_learns(shared_fleet))
