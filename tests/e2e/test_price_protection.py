"""Price protection on the fleet (issue 25), with markets set up live by ``spot admin market``.

- PERCENT_PRICE_BY_SIDE: once a market traded, a LIMIT price beyond its side's band around the 5-minute average
  price is refused with -1013, and a MARKET order in a thin book stops at the band: it takes the levels within
  it and the rest is EXPIRED, instead of sweeping the book; its unused hold comes back.
- The circuit breaker: a trade more than the configured share away from a price traded within the window puts
  the market in BREAK (exchangeInfo, -2010 "Market is closed." for new orders) until an operator resumes it.

The money invariants are checked after each scenario.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from spot import admin
from tests.client import Client
from tests.e2e.conftest import RunningFleet
from tests.e2e.test_markets_live import _status_within
from tests.e2e.test_operator import spot
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

COIN = 10**8  # atoms


def _limit(symbol: str, side: str, price: str, qty: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": "GTC", "price": price, "quantity": qty}


async def _market(f: RunningFleet, symbol: str, base: str, *settings: str) -> tuple[Client, Client, list[int]]:
    """A new market, a seller and a buyer, and one trade at 10.00 so the market has an average price."""
    code, _, err = await spot("admin", "market", "add", symbol, "--base", base, "--quote", "USDT", "--tick-size",
                              "0.01", "--step-size", "0.01", "--min-notional", "1", *settings)  # fmt: skip
    assert code == 0, err
    seller_u = await admin.create_user(f.settings, f"{base}-seller", [(base, 100 * COIN)])
    buyer_u = await admin.create_user(f.settings, f"{base}-buyer", [("USDT", 10_000 * COIN)])
    seller, buyer = Client(f.base, seller_u.api_key, seller_u.secret), Client(f.base, buyer_u.api_key, buyer_u.secret)
    await _status_within(seller, symbol, "TRADING")
    await seller.order(**_limit(symbol, "SELL", "10.00", "1.00"))
    first = await buyer.order(**_limit(symbol, "BUY", "10.00", "1.00"))
    assert first["status"] == "FILLED", first
    return seller, buyer, [seller_u.user_id, buyer_u.user_id]


async def _refused_with(c: Client, params: dict[str, Any], code: int, limit_s: float = 5.0) -> dict[str, Any]:
    """The answer to ``params`` once it is refused with ``code`` (the processor reads the average once a second)."""
    deadline = time.monotonic() + limit_s
    while True:
        status, body = await c.signed("POST", "order", **params)
        if status == 400 and body.get("code") == code:
            return body  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, (status, body)
        if status == 200:
            await c.signed("DELETE", "order", symbol=params["symbol"], orderId=body["orderId"])
        await asyncio.sleep(0.2)


async def _band(f: RunningFleet) -> None:
    seller, buyer, users = await _market(f, "DOTUSDT", "DOT", "--bid-up", "1.05", "--ask-down", "0.95")
    try:
        refused = await _refused_with(buyer, _limit("DOTUSDT", "BUY", "10.51", "1.00"), -1013)
        assert refused == {"code": -1013, "msg": "Filter failure: PERCENT_PRICE_BY_SIDE"}
        for price, qty in (("10.20", "2.00"), ("10.50", "2.00"), ("11.00", "5.00")):  # a thin book
            await seller.order(**_limit("DOTUSDT", "SELL", price, qty))
        swept = await buyer.order(symbol="DOTUSDT", side="BUY", type="MARKET", quantity="9.00")
        assert swept["status"] == "EXPIRED", swept  # stopped at the band: 10.00 * 1.05
        assert [(x["price"], x["qty"]) for x in swept["fills"]] == [("10.20000000", "2.00000000"),
                                                                   ("10.50000000", "2.00000000")]  # fmt: skip
        assert swept["executedQty"] == "4.00000000" and swept["price"] == "0.00000000"
        depth = await buyer.public("depth", symbol="DOTUSDT")
        deadline = time.monotonic() + 5
        while depth["asks"] != [["11.00000000", "5.00000000"]]:  # the level past the band untouched
            assert time.monotonic() < deadline, depth
            await asyncio.sleep(0.1)
            depth = await buyer.public("depth", symbol="DOTUSDT")
        db = await asyncpg.connect(f.settings.database_url)
        try:
            held = await db.fetchval("SELECT held FROM balances WHERE user_id = $1 AND asset = 'USDT'", users[1])
        finally:
            await db.close()
        assert held == 0  # the MARKET order's hold (9 at the band at most) was released when it expired
        info = await buyer.public("exchangeInfo", symbol="DOTUSDT")
        band = next(x for x in info["symbols"][0]["filters"] if x["filterType"] == "PERCENT_PRICE_BY_SIDE")
        assert (band["bidMultiplierUp"], band["askMultiplierDown"], band["avgPriceMins"]) == ("1.05", "0.95", 5)
        await check_money_at(f.settings.database_url)
    finally:
        await seller.close()
        await buyer.close()


def test_a_market_order_in_a_thin_book_stops_at_the_band(shared_fleet: RunningFleet) -> None:
    asyncio.run(_band(shared_fleet))


async def _breaker(f: RunningFleet) -> None:
    seller, buyer, _ = await _market(f, "LINKUSDT", "LINK", "--breaker-pct", "0.1", "--breaker-window-s", "60")
    try:
        await seller.order(**_limit("LINKUSDT", "SELL", "11.50", "1.00"))  # 15 % above the last trade
        jump = await buyer.order(**_limit("LINKUSDT", "BUY", "11.50", "1.00"))
        assert jump["status"] == "FILLED", jump
        assert await _status_within(buyer, "LINKUSDT", "BREAK", limit_s=2.0) < 3.0
        status, body = await buyer.signed("POST", "order", **_limit("LINKUSDT", "BUY", "11.00", "1.00"))
        assert (status, body) == (400, {"code": -2010, "msg": "Market is closed."})
        code, _, err = await spot("admin", "market", "resume", "LINKUSDT")  # an operator looked
        assert code == 0, err
        await _status_within(buyer, "LINKUSDT", "TRADING")
        again = await buyer.order(**_limit("LINKUSDT", "BUY", "11.00", "1.00"))
        assert again["status"] == "NEW", again
        await check_money_at(f.settings.database_url)
    finally:
        await seller.close()
        await buyer.close()


def test_a_jump_beyond_the_breakers_threshold_puts_the_market_in_break(shared_fleet: RunningFleet) -> None:
    asyncio.run(_breaker(shared_fleet))
