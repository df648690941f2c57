"""Bad input: a Binance error with a 4xx, never a 500, and nothing accepted is lost.

Deliberately hostile clients (replays, foreign keys and orders, SQL-like strings, huge or nested bodies,
floods, leaks) have a test each in test_hostile.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from spot import admin
from tests.client import Client
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

SQLISH = "1' OR '1'='1'; DROP TABLE orders; --"


async def _bad_input(base: str, settings: Any) -> None:
    u = await admin.create_user(settings, "alice", [("BTC", 10**8), ("USDT", 10_000 * 10**8)])
    alice = Client(base, u.api_key, u.secret)
    http = httpx.AsyncClient(base_url=base)
    results: list[tuple[str, int, Any]] = []

    async def expect(name: str, status: int, code: int, coro: Any) -> None:
        got_status, body = await coro
        results.append((name, got_status, body))
        assert (got_status, body.get("code")) == (status, code), (name, got_status, body)

    async def raw(
        method: str,
        path: str,
        content: bytes | str = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        r = await http.request(method, path, content=content, headers=headers or {})
        return r.status_code, r.json()

    try:
        kept = await alice.order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.1", price="60000"
        )
        order = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000")
        await expect("no key", 401, -2014, raw("POST", "/api/v3/order", "symbol=BTCUSDT"))
        await expect(
            "unknown key",
            401,
            -2015,
            raw("GET", "/api/v3/account?timestamp=1&signature=00", headers={"X-MBX-APIKEY": "nope"}),
        )
        bad = Client(base, u.api_key, "f" * 64)
        await expect("bad signature", 401, -1022, bad.signed("POST", "order", **order))
        await expect(
            "missing field",
            400,
            -1102,
            alice.signed("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="1", timeInForce="GTC"),
        )
        await expect("extra field", 400, -1104, alice.signed("POST", "order", **order, fooBar="1"))
        await expect("stop on a limit", 400, -1106, alice.signed("POST", "order", **order, stopPrice="1"))
        await expect("negative quantity", 400, -1100, alice.signed("POST", "order", **{**order, "quantity": "-1"}))
        await expect("zero quantity", 400, -1100, alice.signed("POST", "order", **{**order, "quantity": "0"}))
        await expect("price off the tick", 400, -1013, alice.signed("POST", "order", **{**order, "price": "50000.001"}))
        await expect("unknown symbol", 400, -1121, alice.signed("POST", "order", **{**order, "symbol": "DOGEUSDT"}))
        await expect("insufficient balance", 400, -2010, alice.signed("POST", "order", **{**order, "quantity": "1"}))
        # duplicate client order id
        await alice.order(**order, newClientOrderId="dup-1")
        await expect(
            "duplicate client id", 400, -2010, alice.signed("POST", "order", **order, newClientOrderId="dup-1")
        )
        # public endpoints
        for path in (
            "/api/v3/depth?symbol=BTCUSDT&limit=abc",
            "/api/v3/klines?symbol=BTCUSDT&interval=7m",
            "/api/v3/depth",
            "/api/v3/trades?symbol=" + SQLISH,
            "/api/v3/nothing",
        ):
            r = await http.get(path)
            assert 400 <= r.status_code < 500 and "code" in r.json(), (path, r.status_code, r.text)
        # WebSocket garbage
        nested = "[" * 5_000 + "]" * 5_000
        async with websockets.connect(base.replace("http", "ws") + "/ws") as ws:
            for junk in (
                "not json",
                nested,
                json.dumps({"method": "SUBSCRIBE", "params": [SQLISH], "id": 1}),
                json.dumps({"method": "SUBSCRIBE", "params": "x", "id": 2}),
            ):
                await ws.send(junk)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert "error" in reply, reply
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
            assert json.loads(await ws.recv()) == {"result": [], "id": 3}
        # the order accepted first is still there, untouched
        _, still = await alice.signed("GET", "order", symbol="BTCUSDT", orderId=kept["orderId"])
        assert still["status"] == "NEW"
        await check_money_at(settings.database_url)
    finally:
        await http.aclose()
        await alice.close()


def test_bad_input_is_refused_with_binance_errors(shared_fleet: Any) -> None:
    asyncio.run(_bad_input(shared_fleet.base, shared_fleet.settings))


async def _streams(base: str, settings: Any) -> None:
    u = await admin.create_user(settings, "bob", [("BTC", 10**8), ("USDT", 10_000 * 10**8)])
    bob = Client(base, u.api_key, u.secret)
    ws_base = base.replace("http", "ws")
    try:
        status, created = await bob.signed("POST", "userDataStream")  # signature is ignored, key is enough
        assert status == 200 and len(created["listenKey"]) == 64
        listen = created["listenKey"]
        async with (
            websockets.connect(f"{ws_base}/ws/{listen}") as user_ws,
            websockets.connect(f"{ws_base}/stream?streams=btcusdt@trade/btcusdt@depth@100ms") as combined,
            websockets.connect(f"{ws_base}/ws/btcusdt@aggTrade") as raw_ws,
        ):
            await asyncio.sleep(0.3)
            sell = await bob.order(
                symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000"
            )
            await bob.order(
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity="0.01",
                price="50000",
                selfTradePreventionMode="NONE",
            )
            events: list[dict[str, Any]] = []
            while not any(e.get("i") == sell["orderId"] and e.get("x") == "TRADE" for e in events):
                events.append(json.loads(await asyncio.wait_for(user_ws.recv(), 10)))
            assert {e["e"] for e in events} <= {"executionReport", "outboundAccountPosition"}
            wrapped = json.loads(await asyncio.wait_for(combined.recv(), 5))
            assert wrapped["stream"] in ("btcusdt@trade", "btcusdt@depth@100ms") and "data" in wrapped
            agg = json.loads(await asyncio.wait_for(raw_ws.recv(), 5))
            assert agg["e"] == "aggTrade" and agg["p"] == "50000.00000000"
        r = await bob.http.put(f"/api/v3/userDataStream?listenKey={listen}", headers={"X-MBX-APIKEY": u.api_key})
        assert r.status_code == 200 and r.json() == {}
        r = await bob.http.delete(f"/api/v3/userDataStream?listenKey={listen}", headers={"X-MBX-APIKEY": u.api_key})
        assert r.status_code == 200
        r = await bob.http.put(f"/api/v3/userDataStream?listenKey={listen}", headers={"X-MBX-APIKEY": u.api_key})
        assert r.status_code == 400 and r.json()["code"] == -1125
    finally:
        await bob.close()


def test_listen_key_combined_and_raw_streams(shared_fleet: Any) -> None:
    asyncio.run(_streams(shared_fleet.base, shared_fleet.settings))


async def _poison(base: str, settings: Any, metrics_port: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from shared.messages import Topic

    u = await admin.create_user(settings, "poisoned", [("USDT", 10_000 * 10**8)])
    client = Client(base, u.api_key, u.secret)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for junk in (b"not json", b'{"kind":"new","v":1}', b'{"kind":"bogus"}', b"\xff\xfe"):
            await producer.send_and_wait(settings.topic(Topic.ORDER_REQUESTS), junk, key=b"BTCUSDT")
        # the partition keeps flowing: an order behind the poison is decided
        placed = await client.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="40000"
        )
        assert placed["status"] == "NEW"
    finally:
        await producer.stop()
        await client.close()
    consumer = AIOKafkaConsumer(
        settings.topic(Topic.ORDER_REQUESTS.dlq),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        dead: list[Any] = []
        deadline = time.monotonic() + 10
        while len(dead) < 4 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                dead += records
        assert [r.value for r in dead] == [b"not json", b'{"kind":"new","v":1}', b'{"kind":"bogus"}', b"\xff\xfe"]
        assert all(dict(r.headers)["reason"] for r in dead)
    finally:
        await consumer.stop()
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'spot_dlq_messages_total{topic="order-requests"} 4.0' in metrics


def test_poison_messages_go_to_the_dead_letter_topic(shared_fleet: Any) -> None:
    asyncio.run(_poison(shared_fleet.base, shared_fleet.settings, shared_fleet.fleet.port("order-processor")))
