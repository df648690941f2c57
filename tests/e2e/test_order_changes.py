"""Changing an order through the fleet: ``order/test``, ``cancelRestrictions``, ``order/cancelReplace``,
``order/amend/keepPriority``, with Binance's answers, the unmodified ccxt's ``edit_order`` and
``create_order(..., params={"test": True})``, and the money invariants after each scenario.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import pytest

from spot import admin
from tests.client import Client
from tests.e2e.test_ccxt import _exchange
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

FUNDS = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]


async def _client(base: str, settings: Any, name: str) -> Client:
    user = await admin.create_user(settings, name, FUNDS)
    return Client(base, user.api_key, user.secret)


def _limit(side: str, qty: str, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "side": side,
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": qty,
        "price": price,
        **extra,
    }


async def _free_locked(c: Client, asset: str) -> tuple[str, str]:
    status, account = await c.signed("GET", "account")
    assert status == 200, account
    row = next(b for b in account["balances"] if b["asset"] == asset)
    return row["free"], row["locked"]


async def _test_orders(base: str, settings: Any) -> None:
    c = await _client(base, settings, "tester")
    try:
        before = await _free_locked(c, "USDT")
        status, body = await c.signed("POST", "order/test", **_limit("BUY", "0.01", "50000"))
        assert (status, body) == (200, {})
        status, body = await c.signed(
            "POST", "order/test", **_limit("BUY", "0.01", "50000"), computeCommissionRates="true"
        )
        assert status == 200 and body["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
        assert body["taxCommissionForOrder"] == {"maker": "0.00000000", "taker": "0.00000000"}
        # the same checks as a real order: filters, mandatory and unread parameters, the symbol
        status, body = await c.signed("POST", "order/test", **_limit("BUY", "0.00001", "10"))
        assert (status, body["code"]) == (400, -1013)
        status, body = await c.signed("POST", "order/test", symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="1")
        assert (status, body["code"]) == (400, -1102)
        status, body = await c.signed("POST", "order/test", **_limit("BUY", "0.01", "50000"), icebergQty="1")
        assert (status, body["code"]) == (400, -1013)  # ICEBERG_PARTS: not below the quantity
        status, body = await c.signed("POST", "order/test", **_limit("BUY", "0.01", "50000", symbol="NOPE"))
        assert (status, body["code"]) == (400, -1121)
        status, body = await c.signed(
            "POST", "order/test", **_limit("BUY", "0.01", "50000"), computeCommissionRates="x"
        )
        assert (status, body["code"]) == (400, -1100)
        # nothing placed, nothing held
        status, open_orders = await c.signed("GET", "openOrders", symbol="BTCUSDT")
        assert (status, open_orders) == (200, [])
        assert await _free_locked(c, "USDT") == before

        ex = await _exchange(base, settings, FUNDS)
        try:
            tested = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000, params={"test": True})
            assert tested["id"] is None  # ccxt's parse of Binance's {}
            assert await ex.fetch_open_orders("BTC/USDT") == []
            with pytest.raises(ccxt.InvalidOrder):  # PRICE_FILTER, as the real order would be refused
                await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 2_000_000, params={"test": True})
        finally:
            await ex.close()
    finally:
        await c.close()


def test_order_test_checks_as_a_real_order_and_places_nothing(shared_fleet: Any) -> None:
    asyncio.run(_test_orders(shared_fleet.base, shared_fleet.settings))


async def _restrictions(base: str, settings: Any) -> None:
    maker, taker = await _client(base, settings, "maker"), await _client(base, settings, "taker")
    try:
        fresh = await maker.order(**_limit("SELL", "0.02", "51000"))
        partly = await maker.order(**_limit("SELL", "0.02", "50000"))
        await taker.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")  # fills half of `partly`
        refused = "Order was not canceled due to cancel restrictions."
        status, body = await maker.signed(
            "DELETE", "order", symbol="BTCUSDT", orderId=fresh["orderId"], cancelRestrictions="ONLY_PARTIALLY_FILLED"
        )
        assert (status, body) == (400, {"code": -2011, "msg": refused})
        status, body = await maker.signed(
            "DELETE", "order", symbol="BTCUSDT", orderId=partly["orderId"], cancelRestrictions="ONLY_NEW"
        )
        assert (status, body) == (400, {"code": -2011, "msg": refused})
        status, body = await maker.signed(
            "DELETE", "order", symbol="BTCUSDT", orderId=partly["orderId"], cancelRestrictions="BOGUS"
        )
        assert (status, body["code"]) == (400, -1100)
        status, body = await maker.signed("GET", "openOrders", symbol="BTCUSDT")
        assert {o["orderId"] for o in body} == {fresh["orderId"], partly["orderId"]}  # both still open
        status, body = await maker.signed(
            "DELETE", "order", symbol="BTCUSDT", orderId=fresh["orderId"], cancelRestrictions="ONLY_NEW"
        )
        assert status == 200 and body["status"] == "CANCELED"
        status, body = await maker.signed(
            "DELETE", "order", symbol="BTCUSDT", orderId=partly["orderId"], cancelRestrictions="ONLY_PARTIALLY_FILLED"
        )
        assert status == 200 and body["status"] == "CANCELED" and body["executedQty"] == "0.01000000"
        assert await _free_locked(maker, "BTC") == ("4.99000000", "0.00000000")
        await check_money_at(settings.database_url)
    finally:
        await maker.close()
        await taker.close()


def test_cancel_restrictions_are_honoured_in_sequence(shared_fleet: Any) -> None:
    asyncio.run(_restrictions(base=shared_fleet.base, settings=shared_fleet.settings))


async def _cancel_replace(base: str, settings: Any) -> None:
    c = await _client(base, settings, "replacer")
    try:
        first = await c.order(**_limit("BUY", "0.01", "40000"))
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.02", "41000"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=first["orderId"],
        )
        assert status == 200, body
        assert (body["cancelResult"], body["newOrderResult"]) == ("SUCCESS", "SUCCESS")
        assert body["cancelResponse"]["orderId"] == first["orderId"] and body["cancelResponse"]["status"] == "CANCELED"
        second = body["newOrderResponse"]
        assert second["status"] == "NEW" and second["origQty"] == "0.02000000" and second["price"] == "41000.00000000"
        assert await _free_locked(c, "USDT") == ("499180.00000000", "820.00000000")

        # STOP_ON_FAILURE: the cancel fails, nothing is placed; 400 -2022 with both halves' results
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.01", "42000"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=first["orderId"],
        )
        assert status == 400 and body == {
            "code": -2022,
            "msg": "Order cancel-replace failed.",
            "data": {
                "cancelResult": "FAILURE",
                "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                "newOrderResponse": None,
            },
        }
        # ALLOW_FAILURE: the cancel fails, the order is placed anyway; 409 -2021
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.01", "42000"),
            cancelReplaceMode="ALLOW_FAILURE",
            cancelOrderId=first["orderId"],
        )
        assert (status, body["code"], body["msg"]) == (409, -2021, "Order cancel-replace partially failed.")
        data = body["data"]
        assert (data["cancelResult"], data["newOrderResult"]) == ("FAILURE", "SUCCESS")
        assert data["cancelResponse"] == {"code": -2011, "msg": "Unknown order sent."}
        third = data["newOrderResponse"]
        assert third["status"] == "NEW"
        # the cancel succeeds, the new order is refused by the processor (funds): 409 -2021
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "100", "50000"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=third["orderId"],
        )
        assert (status, body["code"]) == (409, -2021), body
        data = body["data"]
        assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
        assert data["newOrderResponse"]["code"] == -2010
        # a bad new order cancels nothing: the whole request is refused first
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.00001", "10"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=second["orderId"],
        )
        assert (status, body["code"]) == (400, -1013)
        status, body = await c.signed(
            "POST", "order/cancelReplace", **_limit("BUY", "0.01", "41000"), cancelOrderId=second["orderId"]
        )
        assert (status, body["code"]) == (400, -1102)
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.01", "41000"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=second["orderId"],
            orderRateLimitExceededMode="NEVER",
        )
        assert (status, body["code"]) == (400, -1100)
        status, body = await c.signed("GET", "openOrders", symbol="BTCUSDT")
        assert [o["orderId"] for o in body] == [second["orderId"]]
        await check_money_at(settings.database_url)

        ex = await _exchange(base, settings, FUNDS)
        try:
            placed = await ex.create_order("BTC/USDT", "limit", "sell", 0.01, 60_000)
            edited = await ex.edit_order(placed["id"], "BTC/USDT", "limit", "sell", 0.02, 61_000)
            assert edited["id"] != placed["id"] and edited["status"] == "open"
            assert (edited["amount"], edited["price"]) == (0.02, 61_000)
            assert (await ex.fetch_order(placed["id"], "BTC/USDT"))["status"] == "canceled"
            with pytest.raises(ccxt.ExchangeError, match="-2022"):  # the cancel failed (-2011 inside): nothing placed
                await ex.edit_order(placed["id"], "BTC/USDT", "limit", "sell", 0.03, 62_000)
            assert [o["id"] for o in await ex.fetch_open_orders("BTC/USDT")] == [edited["id"]]
        finally:
            await ex.close()
        await check_money_at(settings.database_url)
    finally:
        await c.close()


def test_cancel_replace_answers_each_outcome_as_binance(shared_fleet: Any) -> None:
    asyncio.run(_cancel_replace(shared_fleet.base, shared_fleet.settings))


async def _amend(base: str, settings: Any) -> None:
    c, other, taker = [await _client(base, settings, n) for n in ("amender", "queued", "amend-taker")]
    try:
        stream = await c.user_stream()
        mine = await c.order(
            **_limit("SELL", "0.05", "55000", newClientOrderId="mine-1", selfTradePreventionMode="EXPIRE_BOTH")
        )
        behind = await other.order(**_limit("SELL", "0.01", "55000"))
        status, body = await c.signed(
            "PUT",
            "order/amend/keepPriority",
            symbol="BTCUSDT",
            orderId=mine["orderId"],
            newQty="0.02",
            newClientOrderId="mine-2",
        )
        assert status == 200, body
        amended = body["amendedOrder"]
        assert body["executionId"] > 0 and body["transactTime"] > 0
        assert (amended["orderId"], amended["origClientOrderId"], amended["clientOrderId"]) == (
            mine["orderId"],
            "mine-1",
            "mine-2",
        )
        assert (amended["qty"], amended["executedQty"], amended["status"]) == ("0.02000000", "0.00000000", "NEW")
        report = await stream.wait_for(lambda e: e.get("e") == "executionReport" and e["x"] == "REPLACED")
        assert report["V"] == amended["selfTradePreventionMode"] == "EXPIRE_BOTH"  # the order's own mode
        assert (report["i"], report["q"], report["X"], report["c"], report["C"]) == (
            mine["orderId"],
            "0.02000000",
            "NEW",
            "mine-2",
            "mine-1",
        )
        assert await _free_locked(c, "BTC") == ("4.98000000", "0.02000000")  # 0.03 released, once
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", origClientOrderId="mine-2")
        assert (status, body["origQty"], body["orderId"]) == (200, "0.02000000", mine["orderId"])

        # it kept its place: a buy of 0.02 takes it all before the order queued behind it (the module's other
        # tests leave a bid at 41000 and an ask at 61000 resting: 55000 is the best ask)
        await taker.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.02")
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", orderId=mine["orderId"])
        assert body["status"] == "FILLED"
        status, body = await other.signed("GET", "order", symbol="BTCUSDT", orderId=behind["orderId"])
        assert body["status"] == "NEW" and body["executedQty"] == "0.00000000"

        # refusals: not smaller, not open, unknown, a client id taken
        status, body = await other.signed(
            "PUT", "order/amend/keepPriority", symbol="BTCUSDT", orderId=behind["orderId"], newQty="0.01"
        )
        assert (status, body["code"]) == (400, -2038)
        status, body = await c.signed(
            "PUT", "order/amend/keepPriority", symbol="BTCUSDT", orderId=mine["orderId"], newQty="0.01"
        )
        assert (status, body) == (400, {"code": -2013, "msg": "Order does not exist."})
        status, body = await c.signed("PUT", "order/amend/keepPriority", symbol="BTCUSDT", orderId=1, newQty="0.01")
        assert (status, body["code"]) == (400, -2013)
        status, body = await c.signed("PUT", "order/amend/keepPriority", symbol="BTCUSDT", orderId=1, newQty="0.000001")
        assert (status, body["code"]) == (400, -1013)
        again = await c.order(**_limit("SELL", "0.02", "56000"))
        status, body = await c.signed(
            "PUT",
            "order/amend/keepPriority",
            symbol="BTCUSDT",
            orderId=again["orderId"],
            newQty="0.01",
            newClientOrderId="mine-2",
        )
        assert (status, body["code"]) == (400, -2010)
        status, body = await c.signed(  # no newClientOrderId: a fresh one, as Binance makes
            "PUT", "order/amend/keepPriority", symbol="BTCUSDT", orderId=again["orderId"], newQty="0.01"
        )
        assert status == 200 and body["amendedOrder"]["clientOrderId"] not in ("", again["clientOrderId"])
        await asyncio.sleep(0.5)  # settled
        await check_money_at(settings.database_url)
    finally:
        for x in (c, other, taker):
            await x.close()


def test_amend_keeps_priority_releases_the_cut_once_and_reports_replaced(shared_fleet: Any) -> None:
    asyncio.run(_amend(shared_fleet.base, shared_fleet.settings))


async def _prevented(base: str, settings: Any) -> None:
    c = await _client(base, settings, "self-trader")
    try:
        maker = await c.order(**_limit("SELL", "0.03", "50000"))  # the best ask of the module's book
        taker = await c.order(**_limit("BUY", "0.01", "50000", selfTradePreventionMode="EXPIRE_TAKER"))
        assert (taker["status"], taker["selfTradePreventionMode"]) == ("EXPIRED_IN_MATCH", "EXPIRE_TAKER")
        await asyncio.sleep(0.5)  # settled
        status, body = await c.signed("GET", "myPreventedMatches", symbol="BTCUSDT", orderId=taker["orderId"])
        assert status == 200, body
        (match,) = body
        assert match == {
            "symbol": "BTCUSDT",
            "preventedMatchId": match["preventedMatchId"],
            "takerOrderId": taker["orderId"],
            "makerSymbol": "BTCUSDT",
            "makerOrderId": maker["orderId"],
            "tradeGroupId": -1,
            "selfTradePreventionMode": "EXPIRE_TAKER",
            "price": "50000.00000000",
            "makerPreventedQuantity": "0.03000000",
            "transactTime": match["transactTime"],
        }
        status, same = await c.signed(
            "GET", "myPreventedMatches", symbol="BTCUSDT", preventedMatchId=match["preventedMatchId"]
        )
        assert (status, same) == (200, [match])
        status, by_maker = await c.signed("GET", "myPreventedMatches", symbol="BTCUSDT", orderId=maker["orderId"])
        assert (status, by_maker) == (200, [match])
        status, body = await c.signed("GET", "myPreventedMatches", symbol="BTCUSDT")
        assert (status, body["code"]) == (400, -1128)
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", orderId=maker["orderId"])
        assert body["status"] == "NEW"  # EXPIRE_TAKER: the maker stays
        status, body = await c.signed("DELETE", "order", symbol="BTCUSDT", orderId=maker["orderId"])
        assert status == 200
        await check_money_at(settings.database_url)
    finally:
        await c.close()


def test_a_prevented_self_trade_is_listed_by_my_prevented_matches(shared_fleet: Any) -> None:
    asyncio.run(_prevented(shared_fleet.base, shared_fleet.settings))
