"""The kill switch on the fleet as ``spot up`` starts it (issue 25): mass cancels travel the order path, so the
matcher cancels every open order that matches at one point of the symbol's sequence and settlement frees each
hold once.

- ``spot admin cancel-all --user U --symbol S`` cancels U's orders on S within a second (not U's on another
  symbol, not another user's), each owner hears ``executionReport`` CANCELED; without ``--symbol``, the rest.
- ``spot admin user disable U`` refuses U's keys and cancels U's open orders on every symbol within a second.
- ``DELETE /api/v3/openOrders`` answers Binance's array of canceled orders (-2011 when none is open), and the
  unmodified ccxt's ``cancel_all_orders`` reads it.

The money invariants are checked after each scenario.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import ccxt.pro
import httpx
import orjson
import pytest

from shared import servicekey
from shared.lifecycle import now_ms
from spot import admin
from tests.client import Client
from tests.e2e.conftest import RunningFleet
from tests.e2e.test_ccxt import config
from tests.e2e.test_operator import spot
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

USDT = 10**8  # atoms
BTC = 10**8


async def _rest(c: Client, symbol: str, side: str, price: str, qty: str = "0.01") -> int:
    o = await c.order(symbol=symbol, side=side, type="LIMIT", timeInForce="GTC", quantity=qty, price=price,
                      newOrderRespType="RESULT")  # fmt: skip
    assert o["status"] == "NEW", o
    return int(o["orderId"])


async def _statuses(f: RunningFleet, order_ids: list[int]) -> dict[int, str]:
    db = await asyncpg.connect(f.settings.database_url)
    try:
        rows = await db.fetch("SELECT order_id, status FROM orders WHERE order_id = ANY($1::bigint[])", order_ids)
        return {r["order_id"]: r["status"] for r in rows}
    finally:
        await db.close()


async def _held(f: RunningFleet, user_id: int) -> dict[str, int]:
    db = await asyncpg.connect(f.settings.database_url)
    try:
        rows = await db.fetch("SELECT asset, held FROM balances WHERE user_id = $1", user_id)
        return {r["asset"]: r["held"] for r in rows}
    finally:
        await db.close()


async def _canceled_within(f: RunningFleet, order_ids: list[int], limit_s: float = 1.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 5:
        if set((await _statuses(f, order_ids)).values()) == {"CANCELED"}:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"orders {order_ids} not all canceled after 5 s: {await _statuses(f, order_ids)}")


async def _reports(stream: Any, order_ids: set[int], limit_s: float = 5.0) -> set[int]:
    deadline = time.monotonic() + limit_s
    while True:
        seen = {int(e["i"]) for e in stream.events if e.get("e") == "executionReport" and e.get("X") == "CANCELED"}
        if order_ids <= seen or time.monotonic() > deadline:
            return seen & order_ids
        await asyncio.sleep(0.05)


# --- spot admin cancel-all -----------------------------------------------------------------------------------
async def _cancel_all(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "killed", [("USDT", 10_000 * USDT), ("BTC", BTC)])
    other_u = await admin.create_user(f.settings, "bystander", [("USDT", 10_000 * USDT)])
    c, other = Client(f.base, u.api_key, u.secret), Client(f.base, other_u.api_key, other_u.secret)
    stream = await c.user_stream()
    try:
        btc = [await _rest(c, "BTCUSDT", "BUY", "40000"), await _rest(c, "BTCUSDT", "BUY", "41000"),
               await _rest(c, "BTCUSDT", "SELL", "90000")]  # fmt: skip
        eth = await _rest(c, "ETHUSDT", "BUY", "1000", "0.1")
        theirs = await _rest(other, "BTCUSDT", "BUY", "40000")
        started = time.monotonic()
        code, out, err = await spot("admin", "cancel-all", "--user", str(u.user_id), "--symbol", "BTCUSDT")
        assert code == 0, err
        said = json.loads(out)
        assert (said["canceled"], said["stillOpen"], [r["symbol"] for r in said["requests"]]) == (3, 0, ["BTCUSDT"])
        assert time.monotonic() - started < 1.0 + 3.0  # the command's own start-up (a Python process) is most
        assert await _canceled_within(f, btc) < 1.0
        assert (await _statuses(f, [eth, theirs])) == {eth: "NEW", theirs: "NEW"}
        assert await _reports(stream, set(btc)) == set(btc)  # an executionReport per order, as for any cancel
        assert (await _held(f, u.user_id))["BTC"] == 0  # the sell's hold released
        await check_money_at(f.settings.database_url)

        code, out, err = await spot("admin", "cancel-all", "--user", str(u.user_id))  # every symbol: the rest
        assert code == 0, err
        assert json.loads(out)["canceled"] == 1
        assert (await _statuses(f, [eth, theirs])) == {eth: "CANCELED", theirs: "NEW"}
        assert await _held(f, u.user_id) == {"USDT": 0, "BTC": 0}
        code, out, err = await spot("admin", "cancel-all", "--user", str(u.user_id))  # nothing open: nothing sent
        assert code == 0 and json.loads(out) == {"userId": u.user_id, "requests": [], "canceled": 0, "stillOpen": 0}
        code, _, err = await spot("admin", "cancel-all", "--user", str(u.user_id), "--symbol", "NOPEUSDT")
        assert code == 2 and "no market NOPEUSDT" in err
        await check_money_at(f.settings.database_url)
    finally:
        await stream.close()
        await c.close()
        await other.close()


def test_cancel_all_cancels_one_users_orders_in_sequence_within_a_second(shared_fleet: RunningFleet) -> None:
    asyncio.run(_cancel_all(shared_fleet))


# --- spot admin user disable -----------------------------------------------------------------------------
async def _disable(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "stopped", [("USDT", 10_000 * USDT), ("BTC", BTC)])
    c = Client(f.base, u.api_key, u.secret)
    try:
        mine = [await _rest(c, "BTCUSDT", "SELL", "95000"), await _rest(c, "ETHUSDT", "BUY", "1000", "0.1")]
        code, out, err = await spot("admin", "user", "disable", str(u.user_id))
        assert code == 0, err
        said = json.loads(out)
        assert said["status"] == "DISABLED" and said["canceled"]["canceled"] == 2, said
        assert await _canceled_within(f, mine) < 1.0
        status, body = await c.signed("GET", "account")
        assert (status, body["code"]) == (401, -2015)
        assert await _held(f, u.user_id) == {"USDT": 0, "BTC": 0}
        await check_money_at(f.settings.database_url)
        code, _, err = await spot("admin", "user", "enable", str(u.user_id))
        assert code == 0, err
    finally:
        await c.close()


def test_a_disabled_users_orders_are_canceled_in_sequence(shared_fleet: RunningFleet) -> None:
    asyncio.run(_disable(shared_fleet))


# --- DELETE /api/v3/openOrders -------------------------------------------------------------------------
async def _open_orders_rest(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "rest-cancel-all", [("USDT", 10_000 * USDT)])
    c = Client(f.base, u.api_key, u.secret)
    try:
        ids = [await _rest(c, "BTCUSDT", "BUY", "40000"), await _rest(c, "BTCUSDT", "BUY", "40001")]
        status, body = await c.signed("DELETE", "openOrders", symbol="BTCUSDT")
        assert status == 200, body
        assert [o["orderId"] for o in body] == ids  # in arrival order
        for o in body:
            assert o["status"] == "CANCELED" and o["symbol"] == "BTCUSDT" and o["origClientOrderId"], o
            assert {"price", "origQty", "executedQty", "cummulativeQuoteQty", "timeInForce", "type", "side",
                    "transactTime"} <= set(o)  # fmt: skip
        assert (await _held(f, u.user_id))["USDT"] == 0
        status, body = await c.signed("DELETE", "openOrders", symbol="BTCUSDT")
        assert (status, body) == (400, {"code": -2011, "msg": "Unknown order sent."})
        status, body = await c.signed("DELETE", "openOrders")
        assert status == 400 and body["code"] == -1102, body
        await check_money_at(f.settings.database_url)

        ex = ccxt.pro.binance(config(f.base, u.api_key, u.secret))
        try:
            await ex.load_markets()
            placed = [await ex.create_order("BTC/USDT", "limit", "buy", 0.01, p) for p in (39000, 39500, 39900)]
            canceled = await ex.cancel_all_orders("BTC/USDT")
            assert sorted(o["id"] for o in canceled) == sorted(o["id"] for o in placed)
            assert {o["status"] for o in canceled} == {"canceled"}
            assert await ex.fetch_open_orders("BTC/USDT") == []
        finally:
            await ex.close()
        await check_money_at(f.settings.database_url)
    finally:
        await c.close()


def test_delete_open_orders_answers_the_canceled_orders_and_ccxt_reads_them(shared_fleet: RunningFleet) -> None:
    asyncio.run(_open_orders_rest(shared_fleet))


# --- the ingestion service's own route (a gateway with INGESTION_IN_GATEWAY=false calls it) -----------------
async def _through_ingestion(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "http-cancel-all", [("USDT", 10_000 * USDT)])
    c = Client(f.base, u.api_key, u.secret)
    try:
        ids = [await _rest(c, "BTCUSDT", "BUY", "40000"), await _rest(c, "BTCUSDT", "BUY", "40002")]
        path = "/internal/cancel-all"
        body = orjson.dumps({"userId": u.user_id, "params": {"symbol": "BTCUSDT"}})
        headers = {"Content-Type": "application/json",
                   servicekey.HEADER: servicekey.sign(servicekey.key_of(f.settings), path, body, now_ms())}  # fmt: skip
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{f.fleet.port('ingestion')}", timeout=10) as http:
            r = await http.post(path, content=body, headers=headers)
        assert r.status_code == 200 and r.json()["requestId"] > 0, r.text
        assert await _canceled_within(f, ids) < 1.0
        await check_money_at(f.settings.database_url)
    finally:
        await c.close()


def test_the_ingestion_service_takes_a_signed_cancel_all(shared_fleet: RunningFleet) -> None:
    asyncio.run(_through_ingestion(shared_fleet))
