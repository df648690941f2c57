"""The ingestion Lambda handler, invoked with an API Gateway event, puts the order on order-requests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import urllib.parse
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.config import Settings
from shared.messages import NewOrderRequest, Topic, unpack_requests
from spot import admin, keys


def _event(api_key: str, body: str, source_ip: str = "198.51.100.7") -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /api/v3/order",
        "rawPath": "/api/v3/order",
        "rawQueryString": "",
        "headers": {"x-mbx-apikey": api_key, "content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"http": {"method": "POST", "path": "/api/v3/order", "sourceIp": source_ip}},
        "body": body,
        "isBase64Encoded": False,
    }


async def _published(settings: Settings, order_id: int) -> NewOrderRequest:
    consumer = AIOKafkaConsumer(
        settings.topic(Topic.ORDER_REQUESTS),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    for message, _ in unpack_requests(r.value):
                        if isinstance(message, NewOrderRequest) and message.order_id == order_id:
                            return message
        raise AssertionError(f"order {order_id} never reached order-requests")
    finally:
        await consumer.stop()


def test_lambda_handler_publishes_a_signed_order(fresh_env: dict[str, str]) -> None:
    old = dict(os.environ)
    os.environ.update(fresh_env)
    try:
        settings = Settings()
        asyncio.run(admin.init(settings))
        user = asyncio.run(admin.create_user(settings, "lambda", [("USDT", 1000 * 10**8)]))
        from services.ingestion.lambda_handler import handler

        body = urllib.parse.urlencode(
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.001",
                "price": "50000",
                "newClientOrderId": "lambda-1",
                "timestamp": int(time.time() * 1000),
            }
        )
        signed = body + "&signature=" + hmac.new(user.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        answer = handler(_event(user.api_key, signed), None)
        assert answer["statusCode"] == 200, answer
        ack = json.loads(answer["body"])
        assert ack["clientOrderId"] == "lambda-1"
        message = asyncio.run(_published(settings, ack["orderId"]))
        assert (message.user_id, message.symbol, message.price, message.quantity) == (
            user.user_id,
            "BTCUSDT",
            "50000",
            "0.001",
        )

        refused = handler(_event(user.api_key, body + "&signature=" + "0" * 64), None)
        assert refused["statusCode"] == 401 and json.loads(refused["body"])["code"] == -1022
        again = handler(_event(user.api_key, signed), None)  # the same client order id twice
        assert again["statusCode"] == 400 and json.loads(again["body"])["code"] == -2010

        # restricted keys (issue 20): a read-only key, and a key used from outside its allow-list
        for permissions, allow in ((["USER_DATA"], None), (["TRADE"], ["203.0.113.0/24"])):
            key = asyncio.run(keys.create(settings, user.user_id, permissions, allow))
            other = body.replace("lambda-1", f"lambda-{key.api_key[:6]}")
            sig = hmac.new(key.secret.encode(), other.encode(), hashlib.sha256).hexdigest()
            no = handler(_event(key.api_key, f"{other}&signature={sig}"), None)
            assert no["statusCode"] == 401 and json.loads(no["body"])["code"] == -2015, (permissions, no)
        inside = handler(_event(key.api_key, f"{other}&signature={sig}", "203.0.113.9"), None)
        assert inside["statusCode"] == 200, inside
    finally:
        os.environ.clear()
        os.environ.update(old)
