"""Duplicates the order processor sees for itself.

A client order id already taken, when Redis no longer remembers the claim (it expired or Redis lost it):
the processor refuses the order as Binance does (-2010 "Duplicate order sent."), the order that holds the
id keeps it, and the fleet goes on. The refused order has no row of its own, as the id is unique per user;
before, writing it failed the processor's whole batch, on every redelivery.

A request written twice to ``order-requests`` (a producer's retry): one order, one hold, one NEW.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared import errors
from shared.lifecycle import now_ms
from shared.messages import Topic, encode
from shared.order_request import parse_new_order
from shared.rediskeys import client_id_key
from spot import admin
from tests.client import Client, Stream
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

ORDER = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="40000")


async def _cancel_all(client: Client, stream: Stream, settings: Any, *order_ids: int) -> None:
    """Cancel the user's orders; all 10,000 USDT free again, and the money invariants hold."""
    for order_id in order_ids:
        status, canceled = await client.signed("DELETE", "order", symbol="BTCUSDT", orderId=order_id)
        assert status == 200 and canceled["status"] == "CANCELED", canceled
    freed = {"a": "USDT", "f": "10000.00000000", "l": "0.00000000"}
    await stream.wait_for(lambda e: e.get("e") == "outboundAccountPosition" and freed in e["B"])
    await check_money_at(settings.database_url)


async def _scenario(base: str, settings: Any) -> None:
    user = await admin.create_user(settings, "dup-past-redis", [("USDT", 10_000 * 10**8)])
    client = Client(base, user.api_key, user.secret)
    stream = await client.user_stream()
    cache = aioredis.Redis.from_url(settings.redis_url)
    try:
        first = await client.order(**ORDER, newClientOrderId="kept")
        await stream.wait_for(lambda e: e.get("e") == "executionReport" and e["i"] == first["orderId"])

        assert await cache.delete(client_id_key(user.user_id, "kept")) == 1  # Redis forgets the claim
        status, refused = await client.signed("POST", "order", **ORDER, newClientOrderId="kept")
        assert (status, refused) == (400, {"code": -2010, "msg": errors.DUPLICATE_ORDER_MSG}), refused
        rejected = await stream.wait_for(
            lambda e: e.get("e") == "executionReport" and e["c"] == "kept" and e["x"] == "REJECTED"
        )
        assert rejected["i"] != first["orderId"] and rejected["r"] == errors.DUPLICATE_ORDER_MSG, rejected

        # the id still names the first order, which is untouched and open
        status, kept = await client.signed("GET", "order", symbol="BTCUSDT", origClientOrderId="kept")
        assert status == 200 and (kept["orderId"], kept["status"]) == (first["orderId"], "NEW"), kept
        status, missing = await client.signed("GET", "order", symbol="BTCUSDT", orderId=rejected["i"])
        assert (status, missing["code"]) == (400, -2013), missing

        # the processor and settlement went on: the next order is decided and settled as usual
        after = await client.order(**ORDER, newClientOrderId="after")
        await stream.wait_for(lambda e: e.get("e") == "executionReport" and e["i"] == after["orderId"])
        await _cancel_all(client, stream, settings, first["orderId"], after["orderId"])
    finally:
        await stream.close()
        await client.close()
        await cache.aclose()


def test_a_duplicate_client_order_id_past_redis_is_refused_and_the_fleet_goes_on(shared_fleet: Any) -> None:
    asyncio.run(_scenario(shared_fleet.base, shared_fleet.settings))


async def _written_twice(base: str, settings: Any) -> None:
    user = await admin.create_user(settings, "written-twice", [("USDT", 10_000 * 10**8)])
    client = Client(base, user.api_key, user.secret)
    stream = await client.user_stream()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        order_id = 9_000_000_000_000 + user.user_id  # far above the ids ingestion hands out
        params = {**ORDER, "newClientOrderId": "twice"}
        request = parse_new_order(params, user_id=user.user_id, order_id=order_id, ts=now_ms(), symbols={"BTCUSDT"})
        topic, record = settings.topic(Topic.ORDER_REQUESTS), encode(request)
        copies = [await producer.send(topic, record, key=b"BTCUSDT") for _ in range(2)]  # most likely one batch
        await asyncio.gather(*copies)

        await stream.wait_for(lambda e: e.get("e") == "executionReport" and e["i"] == order_id)
        await asyncio.sleep(0.5)  # time for a second report, if one were coming
        told = [e["x"] for e in stream.events if e.get("e") == "executionReport" and e["i"] == order_id]
        assert told == ["NEW"], told
        status, order = await client.signed("GET", "order", symbol="BTCUSDT", orderId=order_id)
        assert status == 200 and order["status"] == "NEW", order
        status, account = await client.signed("GET", "account")
        usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
        assert (usdt["free"], usdt["locked"]) == ("9600.00000000", "400.00000000"), usdt  # held once

        await _cancel_all(client, stream, settings, order_id)
    finally:
        await producer.stop()
        await stream.close()
        await client.close()


def test_a_request_written_twice_is_one_order_held_and_told_once(shared_fleet: Any) -> None:
    asyncio.run(_written_twice(shared_fleet.base, shared_fleet.settings))
