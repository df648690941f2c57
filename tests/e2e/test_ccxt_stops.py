"""Conditional orders through the unmodified ccxt client (issue 24): ``stopLossPrice``, ``takeProfitPrice``
and ``trailingPercent`` become Binance's STOP_LOSS, TAKE_PROFIT_LIMIT and trailing STOP_LOSS orders; they wait
(not working) until a trade's price meets them, then fill, and ``watch_orders`` and ``fetch_order`` show it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt.pro
import pytest

from tests.e2e.test_ccxt import _exchange, config
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e
SYMBOL = "BTC/USDT"


async def _until(check: Any, within_s: float = 15.0) -> None:
    """Wait until ``check()`` is true (the user stream and settlement follow the matcher asynchronously)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def _stops_flow(base: str, settings: Any) -> None:
    deposits = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]
    maker, taker, owner = [await _exchange(base, settings, deposits) for _ in range(3)]
    seen: list[tuple[str, str, Any]] = []  # (order id, status, trigger price) as watch_orders told them

    async def orders_loop() -> None:
        while True:
            for o in await owner.watch_orders(SYMBOL):
                seen.append((o["id"], o["status"], o["triggerPrice"]))

    watching = asyncio.create_task(orders_loop())
    try:
        await asyncio.sleep(1.0)  # the subscription in place
        await maker.create_order(SYMBOL, "limit", "sell", 0.01, 50_000)
        await taker.create_order(SYMBOL, "market", "buy", 0.01)  # the last price: 50000

        stop = await owner.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": 49_000})
        profit = await owner.create_order(SYMBOL, "limit", "sell", 0.01, 52_500, {"takeProfitPrice": 52_000})
        trailing = await owner.create_order(
            SYMBOL, "market", "sell", 0.02, None, {"trailingPercent": 1, "stopLossOrTakeProfit": "stopLoss"}
        )  # trails 1% (100 BIPS) below the highest price since placement: 50000, so it triggers at 49500
        assert [o["info"]["type"] for o in (stop, profit, trailing)] == ["STOP_LOSS", "TAKE_PROFIT_LIMIT", "STOP_LOSS"]
        assert all(o["status"] == "open" for o in (stop, profit, trailing))
        fetched = await owner.fetch_order(stop["id"], SYMBOL)
        assert fetched["triggerPrice"] == 49_000 and fetched["status"] == "open"
        assert (fetched["info"]["isWorking"], fetched["info"]["workingTime"]) == (False, -1)
        assert (await owner.fetch_order(trailing["id"], SYMBOL))["info"]["trailingDelta"] == 100
        open_ids = {o["id"] for o in await owner.fetch_open_orders(SYMBOL)}
        assert {stop["id"], profit["id"], trailing["id"]} <= open_ids
        with pytest.raises(ccxt.BadRequest):  # TRAILING_DELTA's bounds: 10 to 2000 BIPS
            await owner.create_order(
                SYMBOL, "market", "sell", 0.01, None, {"trailingPercent": 50, "stopLossOrTakeProfit": "stopLoss"}
            )

        await maker.create_order(SYMBOL, "limit", "buy", 0.05, 48_000)  # what the triggered stops sell into
        await taker.create_order(SYMBOL, "limit", "sell", 0.01, 49_400)
        assert (await owner.fetch_order(trailing["id"], SYMBOL))["status"] == "open"  # no trade: nothing moves
        # a trade at 49400 triggers the trailing stop; its fill at 48000 then triggers the stop-loss (<= 49000),
        # in the same step
        await maker.create_order(SYMBOL, "market", "buy", 0.01)

        async def triggered() -> bool:
            return (await owner.fetch_order(stop["id"], SYMBOL))["status"] == "closed"

        await _until(triggered)
        for order, lots in ((trailing, 0.02), (stop, 0.01)):
            done = await owner.fetch_order(order["id"], SYMBOL)
            assert (done["status"], done["filled"], done["average"]) == ("closed", lots, 48_000)
            assert done["info"]["isWorking"] is True and done["info"]["workingTime"] > 0
        canceled = await owner.cancel_order(profit["id"], SYMBOL)  # never triggered: canceled from waiting
        assert canceled["status"] == "canceled"

        async def told() -> bool:
            return {(i, s) for i, s, _ in seen} >= {
                (stop["id"], "open"), (stop["id"], "closed"), (trailing["id"], "closed"), (profit["id"], "canceled")
            }  # fmt: skip

        await _until(told)
        assert (stop["id"], "open", 49_000) in seen
    finally:
        watching.cancel()
        for ex in (maker, taker, owner):
            await ex.close()


def test_ccxt_stop_loss_take_profit_and_trailing_orders_trigger_and_are_seen(shared_fleet: Any) -> None:
    asyncio.run(_stops_flow(shared_fleet.base, shared_fleet.settings))
    asyncio.run(check_money_at(shared_fleet.settings.database_url))


async def _over_ws_api(base: str, settings: Any) -> None:
    """The same orders over the WebSocket API (``create_order_ws``): a waiting stop, seen and canceled there."""
    ex = await _exchange(base, settings, [("USDT", 100_000 * 10**8)])
    try:
        # Binance's own type and stopPrice: ccxt's create_order_ws passes its unified params on as they came
        placed = await ex.create_order_ws(SYMBOL, "STOP_LOSS_LIMIT", "buy", 0.01, 40_000, {"stopPrice": 60_000})
        assert (placed["status"], placed["info"]["type"], placed["info"]["isWorking"]) == (
            "open", "STOP_LOSS_LIMIT", False,
        )  # fmt: skip
        assert [o["id"] for o in await ex.fetch_open_orders_ws(SYMBOL)] == [placed["id"]]
        balance = await ex.fetch_balance()
        assert balance["USDT"]["used"] == pytest.approx(400)  # held from acceptance: 0.01 at its limit 40000
        canceled = await ex.cancel_order_ws(placed["id"], SYMBOL)
        assert canceled["status"] == "canceled" and (await ex.fetch_balance())["USDT"]["used"] == 0
    finally:
        await ex.close()


def test_ccxt_places_and_cancels_a_stop_over_the_websocket_api(shared_fleet: Any) -> None:
    asyncio.run(_over_ws_api(shared_fleet.base, shared_fleet.settings))
    asyncio.run(check_money_at(shared_fleet.settings.database_url))


def test_exchange_info_lists_conditional_types_and_their_filters(shared_fleet: Any) -> None:
    async def read() -> dict[str, Any]:
        ex = ccxt.pro.binance(config(shared_fleet.base))
        try:
            return (await ex.load_markets())[SYMBOL]["info"]
        finally:
            await ex.close()

    info = asyncio.run(read())
    assert {"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"} <= set(info["orderTypes"])
    filters = {f["filterType"]: f for f in info["filters"]}
    assert filters["MAX_NUM_ALGO_ORDERS"]["maxNumAlgoOrders"] == 5
    assert filters["TRAILING_DELTA"]["minTrailingBelowDelta"] == 10
