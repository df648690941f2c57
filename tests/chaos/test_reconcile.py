"""Aurora first: an order row written just before a crash reaches the book through the reconciler.

The order processor is killed; a request is then taken exactly as the processor's Postgres step takes it
(order row and hold committed) and goes no further, which is the state a crash between the Postgres
write and the Redis write leaves. ``spot admin reconcile`` reports the order, re-sends it, and it trades;
when the processor comes back its redelivery of the same request changes nothing. Stale hot-book entries
are removed. The money invariants hold and a second run finds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from services.order_processor.holds import Holds, Located
from shared import kafka, postgres
from shared import redis as sredis
from shared.ids import IdBlocks
from shared.lifecycle import now_ms
from shared.messages import Topic, encode, source_position
from shared.order_request import parse_new_order
from shared.rediskeys import hot_key
from spot import admin, reconcile
from tests.chaos.test_crash_replay import _quiesce
from tests.client import Client
from tests.conftest import make_env
from tests.e2e.conftest import RunningFleet, _run
from tests.invariants import check_money

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


@pytest.fixture
def fleet(servers: dict[str, str]) -> Iterator[RunningFleet]:
    env = {**make_env(servers), "ORDER_RESULT_TIMEOUT_MS": "2000"}
    with contextlib.contextmanager(_run)(env) as running:
        yield running


async def _in_sync(settings: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        reports = await reconcile.run(settings, repair=False)
        if all(r["inSync"] for r in reports) or time.monotonic() > deadline:
            return reports
        await asyncio.sleep(0.2)


async def _half_taken_order(settings: Any, user_id: int) -> int:
    """A buy that got its row and hold in Postgres, then the processor 'crashed'."""
    async with postgres.pool(settings, max_size=2) as db, kafka.producer(settings) as out:
        order_id = await IdBlocks(db).next()
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
        request = parse_new_order(
            {**params, "quantity": "0.01", "price": "50000"},
            user_id=user_id,
            order_id=order_id,
            ts=now_ms(),
            symbols={"BTCUSDT", "ETHUSDT"},
        )
        partition, offset = await out.send_now(Topic.ORDER_REQUESTS, encode(request), key=request.symbol)
        decisions, _, _ = await Holds(db, await postgres.load_markets(db), 200).take(
            [Located(partition, source_position(offset, 0), request)], now_ms()
        )
        assert decisions[0].order_id == order_id and type(decisions[0]).__name__ == "AcceptedOrder"
    return order_id


async def _status(db: asyncpg.Pool, order_id: int, want: str) -> None:
    deadline = time.monotonic() + 30
    while (status := await db.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)) != want:
        assert time.monotonic() < deadline, f"order {order_id} is {status}, wanted {want}"
        await asyncio.sleep(0.2)


async def _scenario(fleet: RunningFleet) -> None:
    settings = fleet.settings
    seller_user = await admin.create_user(settings, "rec-seller", [("BTC", 10**8)])
    buyer_user = await admin.create_user(settings, "rec-buyer", [("USDT", 10_000 * 10**8)])
    seller = Client(fleet.base, seller_user.api_key, seller_user.secret)
    try:
        sell = await seller.order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000"
        )
        assert sell["status"] == "NEW"
    finally:
        await seller.close()

    await asyncio.to_thread(fleet.fleet.kill, "order-processor")
    order_id = await _half_taken_order(settings, buyer_user.user_id)

    found = await _in_sync(settings)
    btc = next(r for r in found if r["symbol"] == "BTCUSDT")
    assert btc["inSync"] and btc["resent"] == [order_id] and not btc["conflicts"], btc

    repaired = await reconcile.run(settings)
    assert next(r for r in repaired if r["symbol"] == "BTCUSDT")["resent"] == [order_id]
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=2) as db:
        await _status(db, order_id, "FILLED")
        await _status(db, sell["orderId"], "FILLED")

        async with sredis.client(settings) as cache:  # a hot entry left behind for an order that ended
            await cache.hset(hot_key("BTCUSDT"), str(sell["orderId"]), b"stale")
        stale = await reconcile.run(settings)
        assert next(r for r in stale if r["symbol"] == "BTCUSDT")["staleHotEntries"] == [sell["orderId"]]

        await asyncio.to_thread(fleet.fleet.start, "order-processor")  # redelivers the same request
        await asyncio.to_thread(fleet.fleet.wait_ready, ["order-processor"], 60)
        await _quiesce(settings)
        assert await db.fetchval("SELECT count(*) FROM trades") == 1, "the redelivery doubled nothing"
        await check_money(db)
    again = await _in_sync(settings)
    assert all(r["inSync"] and not (r["resent"] or r["staleHotEntries"] or r["conflicts"]) for r in again), again


def test_reconciler_completes_an_order_a_crash_left_in_postgres_only(fleet: RunningFleet) -> None:
    asyncio.run(_scenario(fleet))
