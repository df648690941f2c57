"""MAX_NUM_ORDERS: the processor refuses an order over a user's cap of open orders on its symbol, and
EXCHANGE_MAX_NUM_ORDERS over their cap on all symbols; it counts again as orders end (canceled or filled), which
settlement reports through ``open_order_counts`` (per user and symbol)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import asyncpg
import pytest

from spot import admin
from tests.client import Client
from tests.conftest import make_env
from tests.e2e.conftest import RunningFleet, _run
from tests.invariants import check_money

pytestmark = pytest.mark.e2e

SELL = dict(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01")


@pytest.fixture
def capped_fleet(servers: dict[str, str]) -> Iterator[RunningFleet]:
    env = {**make_env(servers), "OPEN_ORDERS_MAX": "2", "EXCHANGE_OPEN_ORDERS_MAX": "3"}
    with contextlib.contextmanager(_run)(env) as running:
        yield running


async def _ended(db: asyncpg.Connection, order_id: int, status: str) -> None:
    deadline = time.monotonic() + 20
    while await db.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id) != status:
        assert time.monotonic() < deadline, f"order {order_id} never became {status}"
        await asyncio.sleep(0.1)


async def _scenario(fleet: RunningFleet) -> None:
    seller_user = await admin.create_user(fleet.settings, "capped-seller", [("BTC", 10**8), ("USDT", 1_000 * 10**8)])
    buyer_user = await admin.create_user(fleet.settings, "capped-buyer", [("USDT", 10_000 * 10**8)])
    seller = Client(fleet.base, seller_user.api_key, seller_user.secret)
    buyer = Client(fleet.base, buyer_user.api_key, buyer_user.secret)
    db = await asyncpg.connect(fleet.settings.database_url)
    try:
        first = await seller.order(**SELL, price="60000")
        second = await seller.order(**SELL, price="61000")
        assert first["status"] == second["status"] == "NEW"
        status, refused = await seller.signed("POST", "order", **SELL, price="62000")
        assert (status, refused["code"], refused["msg"]) == (400, -2010, "Filter failure: MAX_NUM_ORDERS"), refused
        await check_money(db)

        status, canceled = await seller.signed("DELETE", "order", symbol="BTCUSDT", orderId=first["orderId"])
        assert status == 200, canceled
        await _ended(db, first["orderId"], "CANCELED")
        third = await seller.order(**SELL, price="62000")
        assert third["status"] == "NEW", third

        bought = await buyer.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="61000"
        )
        assert bought["status"] == "FILLED", bought
        await _ended(db, second["orderId"], "FILLED")
        fourth = await seller.order(**SELL, price="63000")
        assert fourth["status"] == "NEW", fourth
        counts = "SELECT symbol, n FROM open_order_counts WHERE user_id = $1 AND n > 0"
        assert dict(await db.fetch(counts, seller_user.user_id)) == {"BTCUSDT": 2}
        assert dict(await db.fetch(counts, buyer_user.user_id)) == {}
        await check_money(db)

        # the cap is per symbol: another symbol takes orders, up to the cap over all symbols
        info = await seller.public("exchangeInfo", symbol="BTCUSDT")
        assert info["exchangeFilters"] == [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 3}]
        assert {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 2} in info["symbols"][0]["filters"]
        eth = dict(symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01")
        other = await seller.order(**eth, price="2000")
        assert other["status"] == "NEW", other
        status, refused = await seller.signed("POST", "order", **eth, price="2001")
        assert (status, refused["code"], refused["msg"]) == (400, -2010, "Filter failure: EXCHANGE_MAX_NUM_ORDERS")
        assert dict(await db.fetch(counts, seller_user.user_id)) == {"BTCUSDT": 2, "ETHUSDT": 1}
        await check_money(db)
    finally:
        await db.close()
        await seller.close()
        await buyer.close()


def test_open_orders_cap(capped_fleet: RunningFleet) -> None:
    asyncio.run(_scenario(capped_fleet))
