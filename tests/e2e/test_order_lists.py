"""Order lists through the fleet (issue 24): OCO, OTO, OTOCO and the older ``order/oco``, placed over REST and
answered in Binance's list shape; an OCO holds its quantity once, the leg that acts cancels the other in the same
step (a fill of the limit leg, or a trade that triggers the stop leg), a leg's cancel takes its list, the user
stream tells ``listStatus`` beside each leg's ``executionReport`` (``g`` the list's id), queries show the caller's
lists only, and the money invariants hold after every step."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from shared.rediskeys import pending_key
from spot import admin
from tests.client import Client
from tests.e2e.orders import limit, wait_locked
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

FUNDS = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]


def oco(side: str, qty: str, above: dict[str, str], below: dict[str, str], **extra: Any) -> dict[str, Any]:
    params = {"symbol": "BTCUSDT", "side": side, "quantity": qty}
    params |= {f"above{k}": v for k, v in above.items()} | {f"below{k}": v for k, v in below.items()}
    return params | extra


TP = {"Type": "LIMIT_MAKER", "Price": "55000"}
SL = {"Type": "STOP_LOSS_LIMIT", "StopPrice": "45000", "Price": "44900", "TimeInForce": "GTC"}


async def _list_status(c: Client, list_id: int, expected: str, within: float = 10) -> dict[str, Any]:
    """Wait until ``GET orderList`` shows ``expected`` as its ``listOrderStatus``."""
    deadline = time.monotonic() + within
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = await c.signed("GET", "orderList", orderListId=list_id)
        assert status == 200, body
        if body["listOrderStatus"] == expected:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"list {list_id}: {body}, expected {expected}")


async def _order_status(c: Client, order_id: int, expected: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", orderId=order_id)
        if status == 200 and body["status"] == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id}: {body}, expected {expected}")


async def _oco_flow(base: str, settings: Any) -> None:
    users = [await admin.create_user(settings, name, FUNDS) for name in ("oco", "counter", "other")]
    owner, counter, other = (Client(base, u.api_key, u.secret) for u in users)
    stream = await owner.user_stream()
    try:
        (info,) = (await owner.public("exchangeInfo", symbol="BTCUSDT"))["symbols"]
        assert (info["ocoAllowed"], info["otoAllowed"]) == (True, True)
        await counter.order(**limit("BUY", "0.01", "50000"))  # a last price of 50000
        await owner.order(**limit("SELL", "0.01", "50000"))
        await wait_locked(counter, "USDT", "0.00000000")

        # refused whole, as Binance refuses it: the prices the wrong way round, a stop the last price meets
        status, body = await owner.signed("POST", "orderList/oco", **oco("SELL", "0.1", SL, TP))
        assert (status, body["code"]) == (400, -2010), body
        status, body = await owner.signed(
            "POST", "orderList/oco", **oco("SELL", "0.1", TP, SL | {"StopPrice": "51000", "Price": "50900"})
        )
        assert (status, body["code"], body["msg"]) == (400, -2010, "Order would trigger immediately."), body
        await wait_locked(owner, "BTC", "0.00000000")

        # an OCO: its quantity held once; listed, open, and the user stream's listStatus
        status, placed = await owner.signed(
            "POST", "orderList/oco", **oco("SELL", "0.1", TP, SL, listClientOrderId="L1")
        )
        assert status == 200, placed
        list_id = placed["orderListId"]
        assert (placed["contingencyType"], placed["listStatusType"], placed["listOrderStatus"]) == (
            "OCO",
            "EXEC_STARTED",
            "EXECUTING",
        )
        assert placed["listClientOrderId"] == "L1" and len(placed["orders"]) == 2
        below, above = placed["orders"]
        assert [(r["type"], r["status"], r["orderListId"]) for r in placed["orderReports"]] == [
            ("STOP_LOSS_LIMIT", "NEW", list_id),
            ("LIMIT_MAKER", "NEW", list_id),
        ]
        await wait_locked(owner, "BTC", "0.10000000")  # not 0.2: the pair shares one hold
        started = await stream.wait_for(lambda e: e.get("e") == "listStatus" and e["g"] == list_id)
        assert (started["c"], started["l"], started["L"], started["C"]) == ("OCO", "EXEC_STARTED", "EXECUTING", "L1")
        assert [o["i"] for o in started["O"]] == [below["orderId"], above["orderId"]]
        reports = [e for e in stream.events if e.get("e") == "executionReport" and e["g"] == list_id]
        assert {(e["i"], e["X"]) for e in reports} == {(below["orderId"], "NEW"), (above["orderId"], "NEW")}
        assert (await _list_status(owner, list_id, "EXECUTING"))["orders"] == placed["orders"]
        status, by_client = await owner.signed("GET", "orderList", origClientOrderId="L1")
        assert status == 200 and by_client["orderListId"] == list_id
        status, listed = await owner.signed("GET", "openOrderList")
        assert status == 200 and [x["orderListId"] for x in listed] == [list_id]
        status, body = await other.signed("GET", "orderList", orderListId=list_id)  # not theirs
        assert (status, body["code"]) == (400, -2013)
        status, body = await other.signed("DELETE", "orderList", symbol="BTCUSDT", orderListId=list_id)
        assert (status, body["code"]) == (400, -2011)
        await check_money_at(settings.database_url)

        # the limit leg fills in part: the stop leg is canceled in the same step, the list is done
        await counter.order(**limit("BUY", "0.04", "55000"))
        done = await _list_status(owner, list_id, "ALL_DONE")
        assert done["listStatusType"] == "ALL_DONE"
        await stream.wait_for(lambda e: e.get("e") == "listStatus" and e["g"] == list_id and e["L"] == "ALL_DONE")
        await _order_status(owner, below["orderId"], "CANCELED")
        await _order_status(owner, above["orderId"], "PARTIALLY_FILLED")
        await wait_locked(owner, "BTC", "0.06000000")  # what the limit leg has left
        status, listed = await owner.signed("GET", "openOrderList")
        assert status == 200 and listed == []
        await check_money_at(settings.database_url)

        # DELETE orderList cancels both legs, and so does DELETE order of one leg
        status, second = await owner.signed("POST", "orderList/oco", **oco("SELL", "0.2", TP, SL))
        assert status == 200, second
        await wait_locked(owner, "BTC", "0.26000000")
        status, canceled = await owner.signed(
            "DELETE", "orderList", symbol="BTCUSDT", orderListId=second["orderListId"]
        )
        assert status == 200, canceled
        assert (canceled["listStatusType"], canceled["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE")
        assert sorted(r["status"] for r in canceled["orderReports"]) == ["CANCELED", "CANCELED"]
        await wait_locked(owner, "BTC", "0.06000000")
        status, third = await owner.signed("POST", "order/oco", symbol="BTCUSDT", side="SELL", quantity="0.1",
                                           price="56000", stopPrice="44000", stopLimitPrice="43900",
                                           stopLimitTimeInForce="GTC")  # fmt: skip
        assert status == 200 and [r["type"] for r in third["orderReports"]] == ["STOP_LOSS_LIMIT", "LIMIT_MAKER"]
        status, body = await owner.signed("DELETE", "order", symbol="BTCUSDT", orderId=third["orders"][1]["orderId"])
        assert status == 200 and body["status"] == "CANCELED", body
        await _list_status(owner, third["orderListId"], "ALL_DONE")
        await _order_status(owner, third["orders"][0]["orderId"], "CANCELED")
        await wait_locked(owner, "BTC", "0.06000000")
        await check_money_at(settings.database_url)

        # a trade at the stop triggers the stop leg, which cancels the limit leg in the same step
        status, fourth = await owner.signed("POST", "orderList/oco", **oco("SELL", "0.1", TP, SL))
        assert status == 200, fourth
        await counter.order(**limit("BUY", "0.01", "45000"))
        await other.order(**limit("SELL", "0.01", "45000"))  # the last price reaches the stop
        await _list_status(owner, fourth["orderListId"], "ALL_DONE")
        await _order_status(owner, fourth["orders"][1]["orderId"], "CANCELED")
        status, stop_leg = await owner.signed("GET", "order", symbol="BTCUSDT", orderId=fourth["orders"][0]["orderId"])
        assert status == 200 and stop_leg["isWorking"] is True and stop_leg["orderListId"] == fourth["orderListId"]
        status, all_lists = await owner.signed("GET", "allOrderList")
        assert status == 200
        assert [x["orderListId"] for x in all_lists] == [
            list_id,
            second["orderListId"],
            third["orderListId"],
            fourth["orderListId"],
        ]
        await check_money_at(settings.database_url)
        with redis.Redis.from_url(settings.redis_url) as cache:  # every list decided: none left pending
            assert cache.hlen(pending_key("BTCUSDT")) == 0
    finally:
        await stream.close()
        for c in (owner, counter, other):
            await c.close()


def test_an_oco_holds_once_and_its_first_leg_to_act_cancels_the_other(shared_fleet: Any) -> None:
    asyncio.run(_oco_flow(shared_fleet.base, shared_fleet.settings))


async def _oto_flow(base: str, settings: Any) -> None:
    users = [await admin.create_user(settings, name, FUNDS) for name in ("oto", "oto-counter")]
    owner, counter = (Client(base, u.api_key, u.secret) for u in users)
    try:
        working = {"workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "40000", "workingQuantity": "0.05",
                   "workingTimeInForce": "GTC"}  # fmt: skip
        pending = {"pendingType": "LIMIT_MAKER", "pendingSide": "SELL", "pendingPrice": "60000",
                   "pendingQuantity": "0.05"}  # fmt: skip
        status, placed = await owner.signed("POST", "orderList/oto", symbol="BTCUSDT", **working, **pending)
        assert status == 200, placed
        assert placed["contingencyType"] == "OTO"
        work, wait = placed["orders"]
        await _order_status(owner, wait["orderId"], "PENDING_NEW")  # held, not on the book yet
        await wait_locked(owner, "USDT", "2000.00000000")
        await wait_locked(owner, "BTC", "0.05000000")  # the pending order is held from acceptance too
        await counter.order(**limit("SELL", "0.05", "40000"))  # the working order fills: the pending one is placed
        await _order_status(owner, work["orderId"], "FILLED")
        await _list_status(owner, placed["orderListId"], "ALL_DONE")
        deadline = time.monotonic() + 10
        while ["60000.00000000", "0.05000000"] not in (await owner.public("depth", symbol="BTCUSDT"))["asks"]:
            assert time.monotonic() < deadline, "the pending order never reached the book"
            await asyncio.sleep(0.1)
        await _order_status(owner, wait["orderId"], "NEW")
        await check_money_at(settings.database_url)

        # OTOCO: the working order canceled takes its pending pair with it
        status, otoco = await owner.signed(
            "POST",
            "orderList/otoco",
            symbol="BTCUSDT",
            **working,
            pendingSide="SELL",
            pendingQuantity="0.05",
            pendingAboveType="LIMIT_MAKER",
            pendingAbovePrice="65000",
            pendingBelowType="STOP_LOSS",
            pendingBelowStopPrice="30000",
        )
        assert status == 200 and otoco["contingencyType"] == "OTOCO" and len(otoco["orders"]) == 3, otoco
        status, body = await owner.signed("DELETE", "orderList", symbol="BTCUSDT", orderListId=otoco["orderListId"])
        assert status == 200 and sorted(r["status"] for r in body["orderReports"]) == ["CANCELED"] * 3, body
        await _list_status(owner, otoco["orderListId"], "ALL_DONE")
        await check_money_at(settings.database_url)
    finally:
        for c in (owner, counter):
            await c.close()


def test_an_oto_places_its_pending_order_once_the_working_order_fills(shared_fleet: Any) -> None:
    asyncio.run(_oto_flow(shared_fleet.base, shared_fleet.settings))


async def _ws_lists(base: str, settings: Any) -> None:
    """The WebSocket API's order-list methods run REST's functions: place, status, open, all, cancel."""
    import websockets

    from tests.e2e.test_access import WsApiConversation, _ed25519_signed
    from tests.e2e.test_ws_trading import _ed25519_key_of

    user = await admin.create_user(settings, "ws-lists", FUNDS)
    rest = Client(base, user.api_key, user.secret)
    api_key, private = await _ed25519_key_of(settings, user.user_id, ["TRADE", "USER_DATA"])

    def ts() -> dict[str, Any]:
        return {"timestamp": int(time.time() * 1000)}

    try:
        async with websockets.connect(base.replace("http", "ws") + "/ws-api/v3") as ws:
            api = WsApiConversation(ws)
            assert (await api.call("session.logon", _ed25519_signed(private, api_key)))["status"] == 200
            far_tp, far_sl = TP | {"Price": "90000"}, SL | {"StopPrice": "20000", "Price": "19900"}  # any last price
            placed = await api.call("orderList.place.oco", {**oco("SELL", "0.1", far_tp, far_sl), **ts()})
            assert placed["status"] == 200, placed
            list_id = placed["result"]["orderListId"]
            assert placed["result"]["contingencyType"] == "OCO"
            status = await api.call("orderList.status", {"orderListId": list_id, **ts()})
            assert status["status"] == 200 and status["result"]["listOrderStatus"] == "EXECUTING", status
            opened = await api.call("openOrderLists.status", ts())
            assert [x["orderListId"] for x in opened["result"]] == [list_id]
            canceled = await api.call("orderList.cancel", {"symbol": "BTCUSDT", "orderListId": list_id, **ts()})
            assert canceled["status"] == 200 and canceled["result"]["listOrderStatus"] == "ALL_DONE", canceled
            listed = await api.call("allOrderLists", ts())
            assert [x["orderListId"] for x in listed["result"]] == [list_id]
            old = await api.call(
                "orderList.place",
                {
                    "symbol": "BTCUSDT",
                    "side": "SELL",
                    "quantity": "0.1",
                    "price": "91000",
                    "stopPrice": "21000",
                    **ts(),
                },
            )
            assert old["status"] == 200 and [r["type"] for r in old["result"]["orderReports"]] == [
                "STOP_LOSS",
                "LIMIT_MAKER",
            ], old
        await wait_locked(rest, "BTC", "0.10000000")
        await check_money_at(settings.database_url)
    finally:
        await rest.close()


def test_the_ws_api_places_queries_and_cancels_order_lists(shared_fleet: Any) -> None:
    asyncio.run(_ws_lists(shared_fleet.base, shared_fleet.settings))


async def _ccxt_lists(base: str, settings: Any) -> None:
    """The unmodified ccxt reaches the order-list endpoints through its implicit API (``create_order`` sends no
    list): it fills in every client id (``listClientOrderId``, ``aboveClientOrderId``, ...), signs, and reads
    the answers; ``fetch_open_orders`` then shows both legs with their ``orderListId``, and ``watch_orders`` sees
    each leg open, then canceled with its list, carrying the list's id (``g``)."""
    from tests.e2e.test_ccxt import _exchange

    ex = await _exchange(base, settings, FUNDS)
    seen: list[tuple[str, str, int]] = []  # (order id, status, orderListId) as watch_orders told them

    async def orders_loop() -> None:
        while True:
            for o in await ex.watch_orders("BTC/USDT"):
                seen.append((o["id"], o["status"], int(o["info"].get("g", -1))))

    watching = asyncio.create_task(orders_loop())
    try:
        await asyncio.sleep(1.0)  # the subscription in place
        placed = await ex.private_post_orderlist_oco(
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "quantity": "0.02",
                "aboveType": "LIMIT_MAKER",
                "abovePrice": "95000",
                "belowType": "STOP_LOSS_LIMIT",
                "belowStopPrice": "15000",
                "belowPrice": "14900",
                "belowTimeInForce": "GTC",
            }
        )
        list_id = int(placed["orderListId"])
        assert placed["listClientOrderId"] and placed["listStatusType"] == "EXEC_STARTED"
        assert len({o["clientOrderId"] for o in placed["orders"]}) == 2  # ccxt's own ids, one a leg
        shown = await ex.private_get_orderlist({"orderListId": list_id})
        assert shown["listOrderStatus"] == "EXECUTING"
        deadline = time.monotonic() + 10
        while len(open_orders := await ex.fetch_open_orders("BTC/USDT")) < 2:
            assert time.monotonic() < deadline, open_orders
            await asyncio.sleep(0.1)
        assert {int(o["info"]["orderListId"]) for o in open_orders} == {list_id}
        old = await ex.private_post_order_oco(
            {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.02", "price": "96000", "stopPrice": "14000"}
        )
        assert [r["type"] for r in old["orderReports"]] == ["STOP_LOSS", "LIMIT_MAKER"]
        canceled = await ex.private_delete_orderlist({"symbol": "BTCUSDT", "orderListId": list_id})
        assert canceled["listOrderStatus"] == "ALL_DONE"
        await ex.private_delete_orderlist({"symbol": "BTCUSDT", "orderListId": old["orderListId"]})
        while (await ex.fetch_balance())["BTC"]["used"] != 0:
            assert time.monotonic() < deadline + 10, "the canceled lists' hold was never released"
            await asyncio.sleep(0.1)
        legs = {str(o["orderId"]) for o in placed["orders"]}
        while {i for i, status, _ in seen if i in legs and status == "canceled"} != legs:
            assert time.monotonic() < deadline + 20, seen
            await asyncio.sleep(0.1)
        for leg in legs:  # watch_orders saw each leg open, then canceled, with its list's id
            told = [(status, g) for i, status, g in seen if i == leg]
            assert told[0] == ("open", list_id) and told[-1] == ("canceled", list_id), told
        await check_money_at(settings.database_url)
    finally:
        watching.cancel()
        await ex.close()


def test_ccxt_places_and_cancels_order_lists_through_its_implicit_api(shared_fleet: Any) -> None:
    asyncio.run(_ccxt_lists(shared_fleet.base, shared_fleet.settings))
