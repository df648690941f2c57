"""Each order's story on its owner's user stream: one NEW first (from the order processor once the hold is
committed, or from the matcher for a LIMIT_MAKER), then what the matcher did, and never a NEW for an order
the matcher refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spot import admin
from tests.client import Client, Stream
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

BTC = dict(symbol="BTCUSDT")


def reports(stream: Stream, order_id: int) -> list[dict[str, Any]]:
    return [e for e in stream.events if e.get("e") == "executionReport" and e["i"] == order_id]


async def _story(stream: Stream, order_id: int, last: str) -> list[str]:
    """The order's execution types, once its ``last`` one arrived (and a moment for any stray repeat)."""
    await stream.wait_for(lambda e: e.get("e") == "executionReport" and e["i"] == order_id and e["x"] == last)
    await asyncio.sleep(0.3)
    return [e["x"] for e in reports(stream, order_id)]


async def _scenario(base: str, settings: Any) -> None:
    maker_u = await admin.create_user(settings, "stream-maker", [("BTC", 10**8), ("USDT", 100_000 * 10**8)])
    taker_u = await admin.create_user(settings, "stream-taker", [("BTC", 10**8), ("USDT", 100_000 * 10**8)])
    maker, taker = Client(base, maker_u.api_key, maker_u.secret), Client(base, taker_u.api_key, taker_u.secret)
    maker_stream, taker_stream = await maker.user_stream(), await taker.user_stream()
    try:
        ask = await maker.order(
            **BTC, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.1", price="50000", newClientOrderId="ask-1"
        )
        assert await _story(maker_stream, ask["orderId"], "NEW") == ["NEW"]
        new = reports(maker_stream, ask["orderId"])[0]
        assert (new["s"], new["c"], new["S"], new["o"], new["f"], new["q"], new["p"], new["X"], new["z"]) == (
            "BTCUSDT",
            "ask-1",
            "SELL",
            "LIMIT",
            "GTC",
            "0.10000000",
            "50000.00000000",
            "NEW",
            "0.00000000",
        )
        assert new["w"] is True and new["t"] == -1 and new["x"] == "NEW"

        # a crossing limit: NEW, then its trade; the resting one hears of the trade only
        bid = await taker.order(**BTC, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.04", price="50010")
        assert await _story(taker_stream, bid["orderId"], "TRADE") == ["NEW", "TRADE"]
        assert await _story(maker_stream, ask["orderId"], "TRADE") == ["NEW", "TRADE"]
        # a market order sized by quote, and an IOC that finds nothing to take
        market = await taker.order(**BTC, side="BUY", type="MARKET", quoteOrderQty="500")
        assert await _story(taker_stream, market["orderId"], "TRADE") == ["NEW", "TRADE"]
        assert reports(taker_stream, market["orderId"])[0]["Q"] == "500.00000000"
        ioc = await taker.order(**BTC, side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.01", price="40000")
        assert await _story(taker_stream, ioc["orderId"], "EXPIRED") == ["NEW", "EXPIRED"]

        # LIMIT_MAKER: refused by the matcher if it would take (no NEW before it), else NEW once, from the matcher
        rest = await taker.order(**BTC, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="45000")
        status, refused = await maker.signed(
            "POST",
            "order",
            **BTC,
            side="SELL",
            type="LIMIT_MAKER",
            quantity="0.01",
            price="44000",
            newClientOrderId="lm",
        )
        assert (status, refused["code"]) == (400, -2010), refused
        making = await maker.order(**BTC, side="SELL", type="LIMIT_MAKER", quantity="0.01", price="60000")
        assert await _story(maker_stream, making["orderId"], "NEW") == ["NEW"]
        assert [e["x"] for e in maker_stream.events if e.get("e") == "executionReport" and e["c"] == "lm"] in (
            [],
            ["REJECTED"],
        )

        for client, order_id in ((taker, rest["orderId"]), (maker, making["orderId"]), (maker, ask["orderId"])):
            status, canceled = await client.signed("DELETE", "order", **BTC, orderId=order_id)
            assert status == 200 and canceled["status"] == "CANCELED", canceled
        assert await _story(maker_stream, making["orderId"], "CANCELED") == ["NEW", "CANCELED"]
        # filled by the limit, then by the market order, then canceled
        assert await _story(maker_stream, ask["orderId"], "CANCELED") == ["NEW", "TRADE", "TRADE", "CANCELED"]
        # the funds each NEW reported held: the owner's position follows on the same stream
        await maker_stream.wait_for(
            lambda e: (
                e.get("e") == "outboundAccountPosition" and {"a": "BTC", "f": "0.90000000", "l": "0.10000000"} in e["B"]
            )
        )
        await check_money_at(settings.database_url)
    finally:
        for s in (maker_stream, taker_stream):
            await s.close()
        await maker.close()
        await taker.close()


def test_each_order_shows_one_new_first_then_what_the_matcher_did(shared_fleet: Any) -> None:
    asyncio.run(_scenario(shared_fleet.base, shared_fleet.settings))
