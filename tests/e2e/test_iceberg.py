"""Iceberg orders through the fleet: ``icebergQty`` on LIMIT, the ICEBERG_PARTS filter, a visible slice refilled
from the hidden rest which goes to the back of its level, depth showing only the slice, reports carrying ``F``
and queries ``icebergQty``, and the money invariants after each step."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from spot import admin
from tests.client import Client
from tests.e2e.orders import limit, wait_locked
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

FUNDS = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]


async def _asks(c: Client, expected: list[list[str]], within: float = 10) -> None:
    """Wait until market data's depth shows ``expected`` asks."""
    deadline = time.monotonic() + within
    asks: list[list[str]] = []
    while time.monotonic() < deadline:
        asks = (await c.public("depth", symbol="BTCUSDT"))["asks"]
        if asks == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"asks {asks}, expected {expected}")


async def _iceberg(base: str, settings: Any) -> None:
    users = [await admin.create_user(settings, name, FUNDS) for name in ("iceberg", "behind", "taker")]
    ice, behind, taker = (Client(base, u.api_key, u.secret) for u in users)
    stream = await ice.user_stream()
    try:
        (info,) = (await ice.public("exchangeInfo", symbol="BTCUSDT"))["symbols"]
        assert info["icebergAllowed"] is True
        assert {"filterType": "ICEBERG_PARTS", "limit": 10} in info["filters"]

        # refused as Binance refuses them, before anything is held
        for extra, expected in [
            ({"timeInForce": "IOC", "icebergQty": "0.01"}, (-2010, "Unsupported order combination")),
            ({"icebergQty": "0.001"}, (-1013, "Filter failure: ICEBERG_PARTS")),  # 50 parts
            ({"icebergQty": "0.05"}, (-1013, "Filter failure: ICEBERG_PARTS")),  # not below the quantity
            ({"icebergQty": "0.000001"}, (-1013, "Filter failure: LOT_SIZE")),  # off the step
        ]:
            status, body = await ice.signed("POST", "order", **(limit("SELL", "0.05", "50000") | extra))
            assert (status, (body["code"], body["msg"])) == (400, expected), extra
        status, body = await ice.signed(
            "POST", "order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.05", icebergQty="0.01"
        )
        assert (status, body["code"]) == (400, -1106)

        placed = await ice.order(**limit("SELL", "0.05", "50000", icebergQty="0.02"))
        assert (placed["status"], placed["icebergQty"]) == ("NEW", "0.02000000")
        await behind.order(**limit("SELL", "0.01", "50000"))  # queued behind the iceberg's first slice
        await _asks(ice, [["50000.00000000", "0.03000000"]])  # its slice of 0.02 and the 0.01 behind it
        await wait_locked(ice, "BTC", "0.05000000")  # the whole quantity is held

        # 0.02 from the slice, 0.01 from the order behind it, then 0.01 from the refilled slice at the back
        filled = await taker.order(**limit("BUY", "0.04", "50000"))
        assert filled["status"] == "FILLED"
        assert [f["qty"] for f in filled["fills"]] == ["0.02000000", "0.01000000", "0.01000000"]
        await stream.wait_for(lambda e: e.get("e") == "executionReport" and e["z"] == "0.03000000")
        reports = [e for e in stream.events if e.get("e") == "executionReport" and e["i"] == placed["orderId"]]
        assert [(e["x"], e["l"], e["F"]) for e in reports] == [
            ("NEW", "0.00000000", "0.02000000"),
            ("TRADE", "0.02000000", "0.02000000"),
            ("TRADE", "0.01000000", "0.02000000"),
        ]
        await _asks(ice, [["50000.00000000", "0.01000000"]])  # 0.02 left: 0.01 shown, 0.01 hidden
        await wait_locked(ice, "BTC", "0.02000000")
        status, mine = await behind.signed("GET", "myTrades", symbol="BTCUSDT")
        assert status == 200 and [t["qty"] for t in mine] == ["0.01000000"]
        status, body = await ice.signed("GET", "order", symbol="BTCUSDT", orderId=placed["orderId"])
        assert (body["status"], body["executedQty"], body["icebergQty"]) == (
            "PARTIALLY_FILLED",
            "0.03000000",
            "0.02000000",
        )
        await check_money_at(settings.database_url)

        # the rest fills through one more refill; nothing stays held
        await taker.order(**limit("BUY", "0.02", "50000"))
        await wait_locked(ice, "BTC", "0.00000000")
        status, body = await ice.signed("GET", "order", symbol="BTCUSDT", orderId=placed["orderId"])
        assert (body["status"], body["executedQty"]) == ("FILLED", "0.05000000")
        await _asks(ice, [])
        await check_money_at(settings.database_url)
    finally:
        await stream.close()
        for c in (ice, behind, taker):
            await c.close()


def test_an_iceberg_shows_one_slice_and_refills_behind_the_queue(shared_fleet: Any) -> None:
    asyncio.run(_iceberg(shared_fleet.base, shared_fleet.settings))


async def _with_ccxt(base: str, settings: Any) -> None:
    """The unmodified ccxt passes ``icebergQty`` and ``selfTradePreventionMode`` through its params."""
    from tests.e2e.test_ccxt import _exchange

    ex = await _exchange(base, settings, FUNDS)
    try:
        rested = await ex.create_order("BTC/USDT", "limit", "sell", 0.05, 70_000, params={"icebergQty": "0.01"})
        assert rested["status"] == "open" and rested["info"]["icebergQty"] == "0.01000000"
        taker = await ex.create_order(
            "BTC/USDT", "limit", "buy", 0.02, 70_000, params={"selfTradePreventionMode": "DECREMENT"}
        )
        # 0.01 off the slice, then 0.01 off the refilled slice it meets again: the taker is used up
        assert taker["info"]["status"] == "EXPIRED_IN_MATCH" and taker["info"]["preventedQuantity"] == "0.02000000"
        deadline = time.monotonic() + 10
        while "preventedQuantity" not in (left := (await ex.fetch_open_orders("BTC/USDT"))[0])["info"]:
            assert time.monotonic() < deadline, left  # settlement writes what the iceberg lost
            await asyncio.sleep(0.1)
        assert (left["id"], left["info"]["preventedQuantity"]) == (rested["id"], "0.02000000")
        await ex.cancel_order(rested["id"], "BTC/USDT")
        await _settled_ccxt(ex)
        await check_money_at(settings.database_url)
    finally:
        await ex.close()


async def _settled_ccxt(ex: Any, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while (await ex.fetch_balance())["BTC"]["used"] != 0:
        assert time.monotonic() < deadline, "the canceled iceberg's hold was never released"
        await asyncio.sleep(0.1)


def test_ccxt_places_an_iceberg_and_a_decrement_order(shared_fleet: Any) -> None:
    asyncio.run(_with_ccxt(shared_fleet.base, shared_fleet.settings))
