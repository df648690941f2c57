"""Trading over the WebSocket API (``/ws-api/v3``): a session logged on with an Ed25519 key places, tests,
queries, amends, replaces and cancels orders (one, or all on a symbol) with REST's answers, errors and rate
limits; the unmodified ccxt (HMAC key, a signature per request) uses ``create_order_ws``, ``cancel_order_ws``
and ``fetch_open_orders_ws``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt
import ccxt.pro
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from spot import admin, keys
from tests.client import Client
from tests.e2e.test_access import WsApiConversation, _ed25519_signed
from tests.e2e.test_ccxt import config
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

FUNDS = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]
LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}


def _ts() -> dict[str, Any]:
    return {"timestamp": int(time.time() * 1000)}


async def _session(base: str, settings: Any) -> None:
    user = await admin.create_user(settings, "ws-trader", FUNDS)
    rest = Client(base, user.api_key, user.secret)
    data_only_key, data_only = await _ed25519_key_of(settings, user.user_id, ["USER_DATA"])
    api_key, private = await _ed25519_key_of(settings, user.user_id, ["TRADE", "USER_DATA"])
    try:
        async with websockets.connect(base.replace("http", "ws") + "/ws-api/v3") as ws:
            api = WsApiConversation(ws)
            refused = await api.call("order.place", {**LIMIT, "price": "40000", **_ts()})
            assert (refused["status"], refused["error"]["code"]) == (400, -1102), "no session: apiKey is needed"
            assert (await api.call("session.logon", _ed25519_signed(private, api_key)))["status"] == 200

            placed = await api.call("order.place", {**LIMIT, "price": "40000", "newClientOrderId": "ws-1", **_ts()})
            assert placed["status"] == 200, placed
            order = placed["result"]
            assert (order["status"], order["clientOrderId"], order["origQty"]) == ("NEW", "ws-1", "0.01000000")
            assert order["fills"] == []
            tested = await api.call("order.test", {**LIMIT, "price": "40000", "computeCommissionRates": True, **_ts()})
            assert tested["result"]["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
            bad = await api.call("order.place", {**LIMIT, "price": "0.001", **_ts()})
            assert (bad["status"], bad["error"]["code"]) == (400, -1013), "REST's checks, REST's codes"

            status = await api.call("order.status", {"symbol": "BTCUSDT", "orderId": order["orderId"], **_ts()})
            assert status["result"]["orderId"] == order["orderId"] and status["result"]["status"] == "NEW"
            opened = await api.call("openOrders.status", {"symbol": "BTCUSDT", **_ts()})
            assert [o["orderId"] for o in opened["result"]] == [order["orderId"]]

            amended = await api.call(
                "order.amend.keepPriority",
                {
                    "symbol": "BTCUSDT",
                    "orderId": order["orderId"],
                    "newQty": "0.005",
                    "newClientOrderId": "ws-2",
                    **_ts(),
                },
            )
            assert amended["status"] == 200, amended
            assert (amended["result"]["amendedOrder"]["qty"], amended["result"]["amendedOrder"]["clientOrderId"]) == (
                "0.00500000",
                "ws-2",
            )
            replaced = await api.call(
                "order.cancelReplace",
                {
                    **LIMIT,
                    "price": "41000",
                    "cancelReplaceMode": "STOP_ON_FAILURE",
                    "cancelOrigClientOrderId": "ws-2",
                    **_ts(),
                },
            )
            assert replaced["status"] == 200, replaced
            assert replaced["result"]["cancelResponse"]["origQty"] == "0.00500000"
            new_id = replaced["result"]["newOrderResponse"]["orderId"]
            failed = await api.call(
                "order.cancelReplace",
                {**LIMIT, "price": "41000", "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": 1, **_ts()},
            )
            assert (failed["status"], failed["error"]["code"]) == (400, -2022)
            assert failed["error"]["data"]["newOrderResult"] == "NOT_ATTEMPTED"

            account = await api.call("account.status", _ts())
            usdt = next(b for b in account["result"]["balances"] if b["asset"] == "USDT")
            assert usdt["locked"] == "410.00000000"
            commission = await api.call("account.commission", {"symbol": "BTCUSDT", **_ts()})
            assert commission["result"]["standardCommission"]["taker"] == "0.00100000"
            trades = await api.call("myTrades", {"symbol": "BTCUSDT", **_ts()})
            assert trades["result"] == []

            canceled = await api.call("order.cancel", {"symbol": "BTCUSDT", "orderId": new_id, **_ts()})
            assert canceled["status"] == 200 and canceled["result"]["status"] == "CANCELED"
            again = await api.call("order.cancel", {"symbol": "BTCUSDT", "orderId": new_id, **_ts()})
            assert (again["status"], again["error"]) == (400, {"code": -2011, "msg": "Unknown order sent."})

            # openOrders.cancelAll: every open order of the caller on the symbol, in one step, as REST's DELETE
            placed_ids = []
            for price in ("39000", "39500"):
                one = await api.call("order.place", {**LIMIT, "price": price, **_ts()})
                placed_ids.append(one["result"]["orderId"])
            swept = await api.call("openOrders.cancelAll", {"symbol": "BTCUSDT", **_ts()})
            assert swept["status"] == 200, swept
            assert sorted((o["orderId"], o["status"]) for o in swept["result"]) == [(i, "CANCELED") for i in placed_ids]
            none_left = await api.call("openOrders.cancelAll", {"symbol": "BTCUSDT", **_ts()})
            assert (none_left["status"], none_left["error"]["code"]) == (400, -2011)

            # a request with its own signature is made as its signer: a key without TRADE cannot place
            signed = _ed25519_signed(data_only, data_only_key, **LIMIT, price="40000")
            refused = await api.call("order.place", signed)
            assert (refused["status"], refused["error"]["code"]) == (401, -2015)
            mine = await api.call("openOrders.status", _ed25519_signed(data_only, data_only_key, symbol="BTCUSDT"))
            assert mine["status"] == 200 and mine["result"] == []

            await api.call("session.logout")
            refused = await api.call("account.status", _ts())
            assert refused["error"]["code"] == -1102
        status, body = await rest.signed("GET", "allOrders", symbol="BTCUSDT")
        # the one placed, the one that replaced it, the two the mass cancel took
        assert [o["status"] for o in body] == ["CANCELED"] * 4
        await check_money_at(settings.database_url)
    finally:
        await rest.close()


async def _ed25519_key_of(settings: Any, user_id: int, permissions: list[str]) -> tuple[str, Any]:
    """A new Ed25519 key of the user's: its id and its private key (the exchange holds the public one)."""
    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = await keys.create(settings, user_id, permissions, None, public_pem.decode())
    return key.api_key, private


def test_a_logged_on_session_trades_with_rests_answers(shared_fleet: Any) -> None:
    asyncio.run(_session(shared_fleet.base, shared_fleet.settings))


async def _ccxt_ws(base: str, settings: Any) -> None:
    user = await admin.create_user(settings, "ccxt-ws", FUNDS)
    ex = ccxt.pro.binance(config(base, user.api_key, user.secret))
    try:
        await ex.load_markets()
        placed = await ex.create_order_ws("BTC/USDT", "limit", "buy", 0.01, 40_000)
        assert placed["id"] and placed["status"] == "open" and placed["amount"] == 0.01
        other = await ex.create_order_ws("BTC/USDT", "limit", "buy", 0.02, 39_000)
        opened = await ex.fetch_open_orders_ws("BTC/USDT")
        assert sorted(o["id"] for o in opened) == sorted([placed["id"], other["id"]])
        canceled = await ex.cancel_order_ws(placed["id"], "BTC/USDT")
        assert canceled["id"] == placed["id"] and canceled["status"] == "canceled"
        assert [o["id"] for o in await ex.fetch_open_orders_ws("BTC/USDT")] == [other["id"]]
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order_ws(placed["id"], "BTC/USDT")
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order_ws("BTC/USDT", "limit", "buy", 100, 40_000)
        balance = await ex.fetch_balance()
        assert balance["USDT"]["used"] == pytest.approx(780)  # 0.02 at 39000
        await check_money_at(settings.database_url)
    finally:
        await ex.close()


def test_ccxt_trades_over_the_ws_api(shared_fleet: Any) -> None:
    asyncio.run(_ccxt_ws(shared_fleet.base, shared_fleet.settings))


async def _open_ids(rest: Client) -> list[int]:
    status, body = await rest.signed("GET", "openOrders")
    assert status == 200, body
    return sorted(o["orderId"] for o in body)


async def _cancel_on_disconnect(base: str, settings: Any) -> None:
    user = await admin.create_user(settings, "ws-cod", [*FUNDS, ("ETH", 10 * 10**8)])
    rest = Client(base, user.api_key, user.secret)
    api_key, private = await _ed25519_key_of(settings, user.user_id, ["TRADE", "USER_DATA"])
    ws_url = base.replace("http", "ws") + "/ws-api/v3"
    try:
        # off (the default, or turned off): a dropped connection leaves the orders resting
        async with websockets.connect(ws_url) as ws:
            api = WsApiConversation(ws)
            refused = await api.call("session.cancelOnDisconnect", {"enabled": True})
            assert refused["status"] == 401, "a logged-on session's own"
            assert (await api.call("session.logon", _ed25519_signed(private, api_key)))["status"] == 200
            bad = await api.call("session.cancelOnDisconnect", {"enabled": True, "graceMs": 600_000})
            assert (bad["status"], bad["error"]["code"]) == (400, -1100), bad
            on = await api.call("session.cancelOnDisconnect", {"enabled": True, "graceMs": 500})
            assert on["result"] == {"cancelOnDisconnect": True, "graceMs": 500}, on
            off = await api.call("session.cancelOnDisconnect", {"enabled": False})
            assert off["result"] == {"cancelOnDisconnect": False, "graceMs": 0}
            kept = await api.call("order.place", {**LIMIT, "price": "30000", **_ts()})
            assert kept["status"] == 200, kept
        await asyncio.sleep(1.5)
        assert await _open_ids(rest) == [kept["result"]["orderId"]]

        # on: every open order of the account, on every symbol, once the grace has run out
        async with websockets.connect(ws_url) as ws:
            api = WsApiConversation(ws)
            assert (await api.call("session.logon", _ed25519_signed(private, api_key)))["status"] == 200
            assert (await api.call("session.cancelOnDisconnect", {"enabled": True, "graceMs": 300}))["status"] == 200
            eth = {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1"}
            for params in ({**LIMIT, "price": "31000"}, {**eth, "price": "9000"}):
                assert (await api.call("order.place", {**params, **_ts()}))["status"] == 200
        assert len(await _open_ids(rest)) == 3, "nothing canceled before the grace ran out"
        for _ in range(50):  # within 10 s
            if not await _open_ids(rest):
                break
            await asyncio.sleep(0.2)
        assert await _open_ids(rest) == [], "the REST order too: the account's orders, not the session's"
        await asyncio.sleep(0.5)  # settlement has released the holds
        await check_money_at(settings.database_url)
        account = await rest.signed("GET", "account")
        usdt = next(b for b in account[1]["balances"] if b["asset"] == "USDT")
        assert usdt["locked"] == "0.00000000", usdt
    finally:
        await rest.close()


def test_cancel_on_disconnect_takes_the_accounts_orders_out_after_the_grace(shared_fleet: Any) -> None:
    asyncio.run(_cancel_on_disconnect(shared_fleet.base, shared_fleet.settings))
