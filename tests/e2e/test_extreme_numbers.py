"""One request cannot stop the exchange (issue 17): extreme numbers against the real fleet.

Each request of the table gets a 4xx with Binance's code and message; after each, a second user's ordinary
limit order is decided (its NEW on the user stream) within 2 s, and no service has exited or restarted. A
MARKET SELL with ``quoteOrderQty=1000000000000`` used to be answered 200, then fail the processor's batch
(``value out of int64 range``) on every redelivery, and no order was decided any more.

The same numbers written straight to ``order-requests`` (a producer past ingestion) are REJECTED to their
owner by the processor; an id past a BIGINT does not decode and is dead-lettered. The money invariants hold
at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.domain import INT64_MAX
from shared.messages import Topic
from spot import admin
from tests.client import Client, Stream
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

DECIDED_WITHIN_S = 2.0
ILLEGAL = "Illegal characters found in parameter '{}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
INSUFFICIENT = "Account has insufficient balance for requested action."
MARKET = {"symbol": "BTCUSDT", "type": "MARKET"}
LIMIT = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC"}
IOC = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "IOC"}

# (what, request, code, msg): alice holds 1 BTC and 100,000 USDT
TABLE: list[tuple[str, dict[str, str], int, str]] = [
    ("the issue's market sell by quote", {**MARKET, "side": "SELL", "quoteOrderQty": "1000000000000"}, -1013,
     "Filter failure: NOTIONAL"),
    ("a quote-sized market buy", {**MARKET, "side": "BUY", "quoteOrderQty": "1000000000000"}, -1013,
     "Filter failure: NOTIONAL"),
    ("a limit whose notional passes int64", {**LIMIT, "side": "BUY", "price": "1000000",
                                             "quantity": "9223372036854775807"}, -1013, "Filter failure: LOT_SIZE"),
    ("a market sell of 9e10 lots", {**MARKET, "side": "SELL", "quantity": "900000"}, -1013,
     "Filter failure: MARKET_LOT_SIZE"),
    ("a market buy of 9e10 lots", {**MARKET, "side": "BUY", "quantity": "900000"}, -1013,
     "Filter failure: MARKET_LOT_SIZE"),
    ("an IOC of 9e10 lots", {**IOC, "side": "SELL", "price": "50000", "quantity": "900000"}, -1013,
     "Filter failure: LOT_SIZE"),
    ("quoteOrderQty just past maxNotional", {**MARKET, "side": "BUY", "quoteOrderQty": "9000000000.00000001"},
     -1013, "Filter failure: NOTIONAL"),
    ("a price at int64", {**LIMIT, "side": "BUY", "price": str(INT64_MAX), "quantity": "0.001"}, -1013,
     "Filter failure: PRICE_FILTER"),
    ("1e30", {**LIMIT, "side": "BUY", "price": "1" + "0" * 30, "quantity": "0.001"}, -1100, ILLEGAL.format("price")),
    ("a decimal past the precision", {**LIMIT, "side": "BUY", "price": "50000.0000000000000000000000000001",
                                      "quantity": "0.001"}, -1111, "Parameter 'price' has too much precision."),
    ("40 decimals", {**MARKET, "side": "BUY", "quoteOrderQty": "10." + "1" * 40}, -1111,
     "Parameter 'quoteOrderQty' has too much precision."),
    ("an exponent", {**MARKET, "side": "SELL", "quantity": "1e-3"}, -1100, ILLEGAL.format("quantity")),
    ("underscores", {**MARKET, "side": "SELL", "quantity": "0_001"}, -1100, ILLEGAL.format("quantity")),
    ("a sign", {**MARKET, "side": "SELL", "quantity": "+0.001"}, -1100, ILLEGAL.format("quantity")),
    ("Arabic-Indic digits", {**MARKET, "side": "SELL", "quantity": "\u0660.\u0660\u0660\u0661"}, -1100,
     ILLEGAL.format("quantity")),
    ("fullwidth digits", {**MARKET, "side": "SELL", "quantity": "\uff10.\uff10\uff10\uff11"}, -1100,
     ILLEGAL.format("quantity")),
    ("NaN", {**LIMIT, "side": "BUY", "price": "NaN", "quantity": "0.001"}, -1100, ILLEGAL.format("price")),
    ("Infinity", {**MARKET, "side": "BUY", "quoteOrderQty": "Infinity"}, -1100, ILLEGAL.format("quoteOrderQty")),
    ("the most a market sell may sell, from 1 BTC", {**MARKET, "side": "SELL", "quantity": "9000"}, -2010,
     INSUFFICIENT),
    ("the most a market buy may spend, from 100,000 USDT", {**MARKET, "side": "BUY", "quoteOrderQty": "9000000000"},
     -2010, INSUFFICIENT),
]  # fmt: skip

# integer parameters of other endpoints: (method, path, params) -> -1100, never a 500
INTEGERS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "order", {"symbol": "BTCUSDT", "orderId": str(2**63)}),
    ("GET", "order", {"symbol": "BTCUSDT", "orderId": str(INT64_MAX)}),
    ("GET", "order", {"symbol": "BTCUSDT", "orderId": "-1"}),
    ("GET", "allOrders", {"symbol": "BTCUSDT", "limit": "99999999999999999999"}),
    ("GET", "allOrders", {"symbol": "BTCUSDT", "startTime": "\u0661\u0662"}),
    ("GET", "myTrades", {"symbol": "BTCUSDT", "fromId": "1e3"}),
    ("GET", "myTrades", {"symbol": "BTCUSDT", "endTime": "1" * 30}),
    ("DELETE", "order", {"symbol": "BTCUSDT", "orderId": "9" * 40}),
]
PUBLIC: list[str] = [
    "depth?symbol=BTCUSDT&limit=99999999999999999999",
    "trades?symbol=BTCUSDT&limit=-5",
    "aggTrades?symbol=BTCUSDT&fromId=9223372036854775808",
    "aggTrades?symbol=BTCUSDT&startTime=NaN",
    "klines?symbol=BTCUSDT&interval=1m&startTime=" + "9" * 25,
    "klines?symbol=BTCUSDT&interval=1m&limit=%EF%BC%95",  # fullwidth five
]


class Bystander:
    """The second user: an ordinary limit order after each extreme one, decided within 2 s."""

    def __init__(self, client: Client, stream: Stream) -> None:
        self.client, self.stream = client, stream

    async def is_served(self) -> None:
        placed = await self.client.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                         quantity="0.001", price="30000", newOrderRespType="ACK")  # fmt: skip
        started = time.monotonic()
        await self.stream.wait_for(
            lambda e: e.get("e") == "executionReport" and e["i"] == placed["orderId"] and e["X"] == "NEW",
            within=DECIDED_WITHIN_S,
        )
        assert time.monotonic() - started <= DECIDED_WITHIN_S


def _pids(fleet: Any) -> dict[str, int]:
    return {name: p.pid for name, p in fleet.procs.items()}


def _all_running(fleet: Any, pids: dict[str, int]) -> None:
    assert _pids(fleet) == pids, "no service was restarted"
    exited = {name: p.returncode for name, p in fleet.procs.items() if p.poll() is not None}
    assert not exited, f"services exited: {exited}"


async def _produce(settings: Any, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic(Topic.ORDER_REQUESTS), value, key=b"BTCUSDT")
    finally:
        await producer.stop()


def _raw(order_id: int, user_id: int, side: str, type_: str, tif: str, **numbers: str) -> bytes:
    """A request as a producer past ingestion could write it (``NewOrderRequest``'s JSON)."""
    return json.dumps({"kind": "new", "v": 1, "order_id": order_id, "user_id": user_id, "symbol": "BTCUSDT",
                         "side": side, "type": type_, "tif": tif, "client_order_id": f"raw-{order_id}",
                         "ts": int(time.time() * 1000), **numbers}).encode()  # fmt: skip


async def _scenario(fleet: Any, base: str, settings: Any) -> None:
    a = await admin.create_user(settings, "alice", [("BTC", 10**8), ("USDT", 100_000 * 10**8)])
    b = await admin.create_user(settings, "bob", [("USDT", 100_000 * 10**8)])
    alice, bob = Client(base, a.api_key, a.secret), Client(base, b.api_key, b.secret)
    alice_stream, bob_stream = await alice.user_stream(), await bob.user_stream()
    bystander = Bystander(bob, bob_stream)
    pids = _pids(fleet)
    try:
        await bystander.is_served()
        for what, params, code, msg in TABLE:
            status, body = await alice.signed("POST", "order", **params)
            assert (status, body) == (400, {"code": code, "msg": msg}), (what, status, body)
            await bystander.is_served()
            _all_running(fleet, pids)

        for method, path, params in INTEGERS:
            status, body = await alice.signed(method, path, **params)
            assert status == 400 and body["code"] == -1100, (path, params, status, body)
        for path in PUBLIC:
            r = await alice.http.get(f"/api/v3/{path}")
            assert r.status_code == 400 and r.json()["code"] == -1100, (path, r.status_code, r.text)
        now = str(int(time.time() * 1000))
        for timestamp, window in (("9" * 20, "5000"), (now, "9" * 20), ("\uff11" * 13, "5000"), (now, "-1")):
            query = urllib.parse.urlencode({"symbol": "BTCUSDT", "timestamp": timestamp, "recvWindow": window})
            signature = hmac.new(a.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            r = await alice.http.get(f"/api/v3/openOrders?{query}&signature={signature}",
                                     headers={"X-MBX-APIKEY": a.api_key})  # fmt: skip
            assert r.status_code == 400 and r.json()["code"] == -1100, (timestamp, window, r.status_code, r.text)

        # past ingestion: the processor refuses the numbers to their owner, and an id past a BIGINT is poison
        first_raw = 10**15  # far above the ids the fleet hands out
        raws = {
            first_raw: _raw(first_raw, a.user_id, "SELL", "MARKET", "IOC", quote_order_qty="1000000000000"),
            first_raw + 1: _raw(
                first_raw + 1, a.user_id, "BUY", "LIMIT", "GTC", price="1000000", quantity="9223372036854775807"
            ),
            first_raw + 2: _raw(first_raw + 2, a.user_id, "SELL", "MARKET", "IOC", quantity="\u0661"),
            first_raw + 3: _raw(first_raw + 3, a.user_id, "BUY", "LIMIT", "GTC", price="NaN", quantity="1"),
            first_raw + 4: _raw(
                first_raw + 4, a.user_id, "SELL", "MARKET", "IOC", quantity="1", quote_order_qty="5"
            ),
        }
        poison = _raw(first_raw + 5, INT64_MAX + 1, "SELL", "MARKET", "IOC", quantity="1")
        await _produce(settings, [*raws.values(), poison])
        for order_id in raws:
            await alice_stream.wait_for(
                lambda e, i=order_id: e.get("e") == "executionReport" and e["i"] == i and e["X"] == "REJECTED"
            )
        await bystander.is_served()
        _all_running(fleet, pids)

        _, balances = await alice.signed("GET", "account")
        assert {x["asset"]: (x["free"], x["locked"]) for x in balances["balances"]} == {
            "BTC": ("1.00000000", "0.00000000"),
            "USDT": ("100000.00000000", "0.00000000"),
        }, "nothing of alice's was held"
        await check_money_at(settings.database_url)
    finally:
        await alice_stream.close()
        await bob_stream.close()
        await alice.close()
        await bob.close()


def test_extreme_numbers_are_refused_and_the_exchange_goes_on(fleet: Any) -> None:
    asyncio.run(_scenario(fleet.fleet, fleet.base, fleet.settings))
