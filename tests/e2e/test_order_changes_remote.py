"""Order changes on a fleet of their own: ``INGESTION_IN_GATEWAY=false`` (amends and restricted cancels over the
gateway's signed HTTP hop to the ingestion service) and ``ORDERS_PER_10S=5`` (cancelReplace's
``orderRateLimitExceededMode`` met in a few requests). A module of its own: ``test_order_changes``'s shared fleet
holds the ports while its module runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import RunningFleet, _run
from tests.e2e.test_order_changes import _client, _free_locked, _limit
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e
ORDERS_PER_10S = 5


@pytest.fixture(scope="module")
def remote_fleet(module_env: dict[str, str]) -> Iterator[RunningFleet]:
    yield from _run({**module_env, "INGESTION_IN_GATEWAY": "false", "ORDERS_PER_10S": str(ORDERS_PER_10S)})


def test_amend_and_a_restricted_cancel_through_the_ingestion_service(remote_fleet: RunningFleet) -> None:
    """``INGESTION_IN_GATEWAY=false``: the amend goes over the gateway's signed HTTP hop (``/internal/amends``)
    and a restricted cancel over ``/internal/cancels``, with the same answers."""

    async def flow(base: str, settings: Any) -> None:
        c = await _client(base, settings, "remote")
        try:
            mine = await c.order(**_limit("SELL", "0.05", "55000"))
            status, body = await c.signed(
                "PUT", "order/amend/keepPriority", symbol="BTCUSDT", orderId=mine["orderId"], newQty="0.04"
            )
            assert status == 200 and body["amendedOrder"]["qty"] == "0.04000000", body
            status, body = await c.signed(
                "DELETE", "order", symbol="BTCUSDT", orderId=mine["orderId"], cancelRestrictions="ONLY_PARTIALLY_FILLED"
            )
            assert (status, body["code"]) == (400, -2011)
            status, body = await c.signed("DELETE", "order", symbol="BTCUSDT", orderId=mine["orderId"])
            assert status == 200 and body["origQty"] == "0.04000000"
            assert await _free_locked(c, "BTC") == ("5.00000000", "0.00000000")
            await check_money_at(settings.database_url)
        finally:
            await c.close()

    asyncio.run(flow(remote_fleet.base, remote_fleet.settings))


async def _cancel_replace_rate_limit(base: str, settings: Any) -> None:
    c = await _client(base, settings, "limited")
    try:
        first = await c.order(**_limit("BUY", "0.01", "40000"))
        await asyncio.sleep(10 - time.time() % 10)  # a fresh 10-second window: it stays spent below
        for _ in range(ORDERS_PER_10S + 1):  # refused orders spend the order count too
            status, body = await c.signed("POST", "order", **_limit("BUY", "0.00001", "10"))
        assert (status, body["code"]) == (429, -1015), body
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.02", "41000"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=first["orderId"],
        )
        assert (status, body["code"]) == (429, -1015)  # DO_NOTHING: refused whole, nothing canceled
        status, body = await c.signed("GET", "order", symbol="BTCUSDT", orderId=first["orderId"])
        assert body["status"] == "NEW"
        status, body = await c.signed(
            "POST",
            "order/cancelReplace",
            **_limit("BUY", "0.02", "41000"),
            cancelReplaceMode="STOP_ON_FAILURE",
            cancelOrderId=first["orderId"],
            orderRateLimitExceededMode="CANCEL_ONLY",
        )
        assert (status, body["code"]) == (409, -2021), body
        data = body["data"]
        assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
        assert data["newOrderResponse"]["code"] == -1015
        await check_money_at(settings.database_url)
    finally:
        await c.close()


def test_cancel_replace_over_the_order_count_follows_its_mode(remote_fleet: RunningFleet) -> None:
    asyncio.run(_cancel_replace_rate_limit(remote_fleet.base, remote_fleet.settings))
