"""Self-trade prevention's DECREMENT and TRANSFER modes through the fleet: both orders lose the smaller one's
quantity, the smaller expires, the other trades on with what it has left; the reports carry ``v``, ``U``,
``A`` and ``B``, ``myPreventedMatches`` the lots of the match, and the hold of the prevented lots goes back
once (the money invariants after each step)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from spot import admin
from tests.client import Client, Stream
from tests.e2e.orders import limit, wait_locked
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

FUNDS = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]


async def _reports(stream: Stream, order_id: int, count: int) -> list[dict[str, Any]]:
    def mine() -> list[dict[str, Any]]:
        return [e for e in stream.events if e.get("e") == "executionReport" and e["i"] == order_id]

    await stream.wait_for(lambda e: len(mine()) >= count)
    return mine()


async def _decrement(base: str, settings: Any) -> None:
    user = await admin.create_user(settings, "decrementer", FUNDS)
    other_u = await admin.create_user(settings, "counterparty", FUNDS)
    c, other = Client(base, user.api_key, user.secret), Client(base, other_u.api_key, other_u.secret)
    stream = await c.user_stream()
    try:
        info = await c.public("exchangeInfo", symbol="BTCUSDT")
        modes = info["symbols"][0]["allowedSelfTradePreventionModes"]
        assert {"DECREMENT", "TRANSFER"} <= set(modes), modes

        # the taker is the smaller: it expires, the maker loses 0.02 and stays with 0.03
        maker = await c.order(**limit("SELL", "0.05", "50000", selfTradePreventionMode="NONE"))
        taker = await c.order(**limit("BUY", "0.02", "50000", selfTradePreventionMode="DECREMENT"))
        assert (taker["status"], taker["executedQty"], taker["selfTradePreventionMode"]) == (
            "EXPIRED_IN_MATCH",
            "0.00000000",
            "DECREMENT",
        )
        assert taker["preventedQuantity"] == "0.02000000"
        (_, prevented) = await _reports(stream, maker["orderId"], 2)
        assert (prevented["x"], prevented["X"], prevented["U"]) == ("TRADE_PREVENTION", "NEW", taker["orderId"])
        assert (prevented["A"], prevented["B"]) == ("0.02000000", "0.02000000")
        expired = (await _reports(stream, taker["orderId"], 2))[-1]
        assert (expired["x"], expired["X"], expired["A"], expired["B"]) == (
            "TRADE_PREVENTION",
            "EXPIRED_IN_MATCH",
            "0.02000000",
            "0.02000000",
        )
        assert expired["v"] == prevented["v"] and expired["U"] == maker["orderId"] and expired["V"] == "DECREMENT"
        await wait_locked(c, "BTC", "0.03000000")  # the prevented 0.02 went back to free
        await wait_locked(c, "USDT", "0.00000000")
        status, rows = await c.signed("GET", "myPreventedMatches", symbol="BTCUSDT", orderId=taker["orderId"])
        assert status == 200 and [(r["selfTradePreventionMode"], r["makerPreventedQuantity"]) for r in rows] == [
            ("DECREMENT", "0.02000000")
        ]
        deadline = time.monotonic() + 10
        while (asks := (await c.public("depth", symbol="BTCUSDT"))["asks"]) != [["50000.00000000", "0.03000000"]]:
            assert time.monotonic() < deadline, asks  # market data shows the maker's 0.03 left
            await asyncio.sleep(0.1)
        await check_money_at(settings.database_url)

        # what the maker has left trades as usual, to FILLED
        filler = await other.order(**limit("BUY", "0.03", "50000"))
        assert filler["status"] == "FILLED"
        await wait_locked(c, "BTC", "0.00000000")
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", orderId=maker["orderId"])
        assert (body["status"], body["executedQty"], body["preventedQuantity"]) == (
            "FILLED",
            "0.03000000",
            "0.02000000",
        )
        await check_money_at(settings.database_url)

        # the maker is the smaller (TRANSFER within one account is DECREMENT): it expires, the taker rests
        small = await c.order(**limit("SELL", "0.01", "50000", selfTradePreventionMode="NONE"))
        rests = await c.order(**limit("BUY", "0.03", "50000", selfTradePreventionMode="TRANSFER"))
        assert (rests["status"], rests["executedQty"]) == ("NEW", "0.00000000")
        gone = (await _reports(stream, small["orderId"], 2))[-1]
        assert (gone["X"], gone["A"], gone["U"]) == ("EXPIRED_IN_MATCH", "0.01000000", rests["orderId"])
        await wait_locked(c, "BTC", "0.00000000")
        await wait_locked(c, "USDT", "1000.00000000")  # 0.02 left at 50000 held, the prevented 0.01's hold freed
        status, open_orders = await c.signed("GET", "openOrders", symbol="BTCUSDT")
        assert [(o["orderId"], o["origQty"]) for o in open_orders] == [(rests["orderId"], "0.03000000")]
        await check_money_at(settings.database_url)
        # it fills what it has left (0.02) and is then FILLED
        await other.order(**limit("SELL", "0.05", "50000"))
        await wait_locked(c, "USDT", "0.00000000")
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", orderId=rests["orderId"])
        assert (body["status"], body["executedQty"]) == ("FILLED", "0.02000000")
        await check_money_at(settings.database_url)
    finally:
        await stream.close()
        await c.close()
        await other.close()


def test_decrement_and_transfer_shrink_both_orders_and_release_the_prevented_holds(shared_fleet: Any) -> None:
    asyncio.run(_decrement(shared_fleet.base, shared_fleet.settings))
