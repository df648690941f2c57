"""A record that decodes but cannot be applied never loops: it is dead-lettered and its partition flows.

On a running fleet, one record per consumer that each one fails on today (each made the service exit on
its batch, and exit again on every restart, stopping the partition of every BTCUSDT order):

* ``order-requests``: a request whose client order id holds a NUL (ingestion refuses it; a producer writing
  straight to the topic need not): Postgres refuses the text, so the processor's step failed on its batch
  (``DataError``). Its owner is told REJECTED, it holds nothing;
* ``validated-orders``: a resting SELL priced past 64 bits: the matcher applies it, then cannot pack it into
  the Redis book (``OverflowError``);
* ``trade-execution``: a trade whose id is past 64 bits: market-data cannot render it (``TypeError``) and
  the archiver's Parquet file cannot hold it (the whole file failed; now the row is refused).

``matched-events`` is left out: settlement reads it too, and what settlement does with a bad event (it
must never skip money) is not decided here.

Then another user's order on the same symbol trades and settles within seconds, each record is in its
``<topic>.dlq`` with its reason (read with ``spot admin dlq``), no service restarted, and the money
invariants hold.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.matcher.bookstore import BookStore
from services.matcher.pipeline import partition_of
from shared import kafka, segment_fence
from shared import redis as sredis
from shared.domain import OrderType, Side, TimeInForce
from shared.ids import IdBlocks
from shared.lifecycle import now_ms
from shared.messages import AcceptedOrder, NewOrderRequest, Topic, Trade, TradeExecution, encode
from shared.postgres import DEFAULT_MARKETS
from spot import admin
from tests.chaos.test_crash_replay import _quiesce
from tests.client import Client
from tests.e2e.conftest import RunningFleet
from tests.invariants import check_money

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
PAST_64_BITS = 10**20
SETTLED_WITHIN_S = 15.0  # "a few seconds", on a 2-core machine shared by several test runs


async def _book_position(settings: Any) -> tuple[int, int]:
    async with sredis.client(settings) as cache:
        book, _ = await BookStore(cache).load(BTC)
    return book.state.src_partition, book.state.src_offset


async def _inject(settings: Any, db: asyncpg.Pool, victim: int, maker: int) -> None:
    """One unappliable record into each of the three topics."""
    src_partition, src_offset = await _book_position(settings)
    order_id = await IdBlocks(db).next()
    request = NewOrderRequest(
        order_id=order_id,
        user_id=victim,
        symbol=BTC.symbol,
        side=Side.BUY,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price="50000",
        quantity="0.01",
        client_order_id="unappliable-1\x00",  # no Postgres text holds a NUL
        ts=now_ms(),
    )
    unstorable = AcceptedOrder(
        src_partition=src_partition,
        src_offset=src_offset + 1,  # next after the book's position, before the next request's
        order_id=999_000_001,
        user_id=maker,
        symbol=BTC.symbol,
        side=Side.SELL,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price_ticks=PAST_64_BITS,
        qty_lots=1,
        budget=1,
        client_order_id="unstorable",
        ts=now_ms(),
    )
    trade = Trade(PAST_64_BITS, 5_000_000, 1, 1, 2, maker, victim, True, 0, 0, now_ms())
    execution = TradeExecution(symbol=BTC.symbol, seq=10**18, trades=[trade])
    async with kafka.producer(settings) as out, sredis.client(settings) as cache:  # where each topic's readers are
        for topic, record in (
            (Topic.ORDER_REQUESTS, request),
            (Topic.VALIDATED_ORDERS, unstorable),
            (Topic.TRADE_EXECUTION, execution),
        ):
            await segment_fence.send_into_ring(settings, out, cache, topic.value, encode(record), BTC.symbol)


async def _dead_letters(settings: Any, topic: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        shown = await admin.dlq_show(settings, topic)
        if len(shown) >= want or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.5)


async def _status(db: asyncpg.Pool, order_id: int, want: str, within: float) -> None:
    deadline = time.monotonic() + within
    while (status := await db.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)) != want:
        assert time.monotonic() < deadline, f"order {order_id} is {status} after {within}s, wanted {want}"
        await asyncio.sleep(0.1)


async def _scenario(fleet: RunningFleet) -> None:
    settings = fleet.settings
    pids = {name: p.pid for name, p in fleet.fleet.procs.items()}
    maker_user = await admin.create_user(settings, "dlq-maker", [("BTC", 10**8)])
    taker_user = await admin.create_user(settings, "dlq-taker", [("USDT", 100_000 * 10**8)])
    victim_user = await admin.create_user(settings, "dlq-victim", [("USDT", 100_000 * 10**8)])
    maker = Client(fleet.base, maker_user.api_key, maker_user.secret)
    taker = Client(fleet.base, taker_user.api_key, taker_user.secret)
    victim = Client(fleet.base, victim_user.api_key, victim_user.secret)
    stream = await victim.user_stream()
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=2) as db:
        try:
            params = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "50000"}
            sell = await maker.order(side="SELL", **params)
            assert sell["status"] == "NEW"
            await _status(db, sell["orderId"], "NEW", 10)
            for _ in range(100):  # until the matcher has the SELL: the book's position is past it
                if (await _book_position(settings))[1]:
                    break
                await asyncio.sleep(0.1)
            before = await _balances(victim)

            await _inject(settings, db, victim_user.user_id, maker_user.user_id)

            started = time.monotonic()
            buy = await taker.order(side="BUY", **params)
            await _status(db, buy["orderId"], "FILLED", SETTLED_WITHIN_S)
            await _status(db, sell["orderId"], "FILLED", SETTLED_WITHIN_S - (time.monotonic() - started))
            await _traded(taker, buy["orderId"])  # market-data goes on

            refused = await stream.wait_for(
                lambda e: e.get("e") == "executionReport" and e.get("c") == "unappliable-1\x00", within=20
            )
            assert refused["X"] == "REJECTED" and "could not be applied" in refused["r"], refused
            assert await db.fetchval("SELECT count(*) FROM orders WHERE client_order_id LIKE 'unappliable-1%'") == 0
            assert await _balances(victim) == before, "the refused request held nothing"

            (request,) = await _dead_letters(settings, Topic.ORDER_REQUESTS.dlq, 1)
            assert "0x00" in request["reason"], request["reason"]  # Postgres' own words for the NUL
            assert request["consumer"] == "order-processor"
            assert request["source"]["topic"] == Topic.ORDER_REQUESTS and '"unappliable-1' in request["value"]
            (command,) = await _dead_letters(settings, Topic.VALIDATED_ORDERS.dlq, 1)
            assert command["reason"].startswith("OverflowError") and command["consumer"] == "matcher"
            assert command["source"]["partition"] == partition_of(BTC.symbol, settings.kafka_partitions)
            executions = await _dead_letters(settings, Topic.TRADE_EXECUTION.dlq, 2)
            by_consumer = {e["consumer"]: e["reason"] for e in executions}
            assert sorted(by_consumer) == ["market-data", "trade-archiver"], executions
            assert by_consumer["market-data"].startswith("TypeError"), by_consumer
            assert "trade_id 100000000000000000000 is outside int64" in by_consumer["trade-archiver"], by_consumer
            listed = {row["topic"]: row["count"] for row in await admin.dlq_list(settings)}
            assert listed == {
                Topic.ORDER_REQUESTS.dlq: 1,
                Topic.VALIDATED_ORDERS.dlq: 1,
                Topic.MATCHED_EVENTS.dlq: 0,
                Topic.TRADE_EXECUTION.dlq: 2,
            }, listed

            alive = {name: p.pid for name, p in fleet.fleet.procs.items() if p.poll() is None}
            assert alive == pids, f"restarted or gone: {set(pids.items()) ^ set(alive.items())}"
            await _quiesce(settings)
            await check_money(db)
        finally:
            await stream.close()
            for client in (maker, taker, victim):
                await client.close()


async def _balances(client: Client) -> list[dict[str, str]]:
    status, account = await client.signed("GET", "account")
    assert status == 200, account
    return sorted(account["balances"], key=lambda b: b["asset"])


async def _traded(client: Client, order_id: int) -> None:
    """market-data shows the trade of ``order_id`` (it kept consuming trade-execution)."""
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while True:
        trades = await client.public("trades", symbol="BTCUSDT")
        if trades and Decimal(trades[-1]["price"]) == 50000:
            return
        assert time.monotonic() < deadline, f"no trade of order {order_id} in market data: {trades}"
        await asyncio.sleep(0.2)


def test_unappliable_records_are_dead_lettered_and_every_partition_keeps_flowing(fleet: RunningFleet) -> None:
    asyncio.run(_scenario(fleet))
