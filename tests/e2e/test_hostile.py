"""Hostile clients, one case per test: each is refused with Binance's code and a 4xx, and nothing leaks.

Replays outside the window, timestamps from the future, signatures with another user's secret, other
users' orders, SQL-like strings in every field, huge and deeply nested bodies, floods past the rate limit,
inputs that once reached a 500. After every test no service has logged a stack trace, and no response or
log line holds a user's secret (the services log warnings and errors, with their tracebacks).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
import pytest_asyncio

from spot import admin
from spot.admin import NewUser
from tests.conftest import make_env
from tests.invariants import check_money

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

SQLISH = "1' OR '1'='1'; DROP TABLE orders; --"
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "1000"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TRACES = ("Traceback", 'File "')


def now_ms() -> int:
    return int(time.time() * 1000)


def signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, params: dict[str, Any], *, timestamp: int | None = None, recv_window: int = 5000) -> str:
    """A signed query or form body, as Binance clients build it (timestamp first, signature last)."""
    payload = urlencode(
        {"timestamp": now_ms() if timestamp is None else timestamp, **params, "recvWindow": recv_window}
    )
    return f"{payload}&signature={signature(secret, payload)}"


@dataclass
class World:
    """The module's fleet, two users, alice's resting order, and every response body seen."""

    fleet: Any
    http: httpx.AsyncClient
    alice: NewUser
    mallory: NewUser
    resting: dict[str, Any]
    seen: list[str] = field(default_factory=list)

    async def get(self, path: str, user: NewUser | None = None, /, **params: Any) -> httpx.Response:
        """A GET signed by ``user`` (unsigned without one)."""
        if user is None:
            return await self.http.get(path, params=params)
        return await self.http.get(f"{path}?{sign(user.secret, params)}", headers={"X-MBX-APIKEY": user.api_key})

    async def send(self, method: str, path: str, user: NewUser, body: str) -> httpx.Response:
        return await self.http.request(method, path, content=body, headers={**FORM, "X-MBX-APIKEY": user.api_key})

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.fleet.settings.database_url)


def refused(r: httpx.Response, status: int, code: int) -> None:
    """A Binance refusal: this status, this code, a message, nothing else."""
    body = r.json()
    assert (r.status_code, body.get("code")) == (status, code), (r.status_code, r.text)
    assert set(body) == {"code", "msg"} and body["msg"], body


@pytest.fixture(scope="module")
def module_env(servers: dict[str, str]) -> dict[str, str]:
    """Warnings and errors reach the logs the leak checks read, whatever the default becomes."""
    return {**make_env(servers), "LOG_LEVEL": "WARNING"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(shared_fleet: Any) -> AsyncIterator[World]:
    settings = shared_fleet.settings
    alice = await admin.create_user(settings, "alice", [("BTC", 10**8), ("USDT", 100_000 * 10**8)])
    mallory = await admin.create_user(settings, "mallory", [("USDT", 100_000 * 10**8)])
    seen: list[str] = []

    async def record(response: httpx.Response) -> None:
        seen.append((await response.aread()).decode(errors="replace"))

    async with httpx.AsyncClient(base_url=shared_fleet.base, timeout=30, event_hooks={"response": [record]}) as http:
        resting = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1"}
        r = await http.post(
            "/api/v3/order",
            content=sign(alice.secret, {**resting, "price": "90000", "newClientOrderId": "alice-resting"}),
            headers={**FORM, "X-MBX-APIKEY": alice.api_key},
        )
        assert r.status_code == 200 and r.json()["status"] == "NEW", r.text
        yield World(shared_fleet, http, alice, mallory, r.json(), seen)


def _new_lines(before: list[str], after: list[str]) -> list[str]:
    """Lines a tail gained: ``after`` minus its longest prefix that ends ``before`` (all of it if it rolled over)."""
    for k in range(min(len(before), len(after)), 0, -1):
        if before[-k:] == after[:k]:
            return after[k:]
    return after


def _leaky(text: str, world: World) -> bool:
    return any(s in text for s in (world.alice.secret, world.mallory.secret, *TRACES))


@dataclass
class Mark:
    """Where a test started: responses and log lines after it are the test's own."""

    responses: int
    tails: dict[str, list[str]]


def mark(world: World) -> Mark:
    return Mark(len(world.seen), {name: list(tail) for name, tail in world.fleet.fleet.tails.items()})


def leaks_since(world: World, start: Mark) -> list[str]:
    found = [f"response: {body[:300]}" for body in world.seen[start.responses :] if _leaky(body, world)]
    for service, tail in world.fleet.fleet.tails.items():
        new = _new_lines(start.tails.get(service, []), list(tail))
        found += [f"{service}: {line[:300]}" for line in new if _leaky(line, world)]
    return found


@pytest.fixture(autouse=True)
def nothing_leaks(world: World) -> Iterator[None]:
    """After every test: the fleet keeps only each log's last lines, so a trace must not scroll by unchecked."""
    start = mark(world)
    yield
    assert not leaks_since(world, start)


async def _still_resting(world: World) -> None:
    r = await world.get("/api/v3/order", world.alice, symbol="BTCUSDT", orderId=world.resting["orderId"])
    assert r.status_code == 200 and r.json()["status"] == "NEW" and r.json()["origQty"] == "0.10000000", r.text


# -- replays and clocks -------------------------------------------------------------------------------------


async def _open_orders(world: World) -> list[dict[str, Any]]:
    r = await world.get("/api/v3/openOrders", world.alice, symbol="BTCUSDT")
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_signed_order_replayed_after_its_window_is_refused(world: World) -> None:
    before = len(await _open_orders(world))
    body = sign(world.alice.secret, ORDER, recv_window=1000)
    first = await world.send("POST", "/api/v3/order", world.alice, body)
    assert first.status_code == 200, first.text
    await asyncio.sleep(1.5)
    refused(await world.send("POST", "/api/v3/order", world.alice, body), 400, -1021)
    assert len(await _open_orders(world)) == before + 1  # the first copy only


async def test_a_stale_timestamp_is_refused(world: World) -> None:
    query = sign(world.alice.secret, {}, timestamp=now_ms() - 60_000, recv_window=5000)
    refused(await world.http.get(f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": world.alice.api_key}), 400, -1021)


@pytest.mark.parametrize("ahead_ms", [5_000, 3_600_000])
async def test_a_timestamp_from_the_future_is_refused(world: World, ahead_ms: int) -> None:
    query = sign(world.alice.secret, {}, timestamp=now_ms() + ahead_ms, recv_window=60_000)
    refused(await world.http.get(f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": world.alice.api_key}), 400, -1021)


# -- keys and secrets ---------------------------------------------------------------------------------------


async def test_a_signature_made_with_another_users_secret_is_refused(world: World) -> None:
    """Mallory signs with her own secret but sends alice's key: she cannot act as alice."""
    body = sign(world.mallory.secret, {**ORDER, "price": "1001"})
    refused(await world.send("POST", "/api/v3/order", world.alice, body), 401, -1022)
    await _still_resting(world)


async def test_a_request_signed_for_another_key_is_refused(world: World) -> None:
    """Alice's correctly signed request, replayed by mallory under mallory's key."""
    query = sign(world.alice.secret, {"symbol": "BTCUSDT", "orderId": world.resting["orderId"]})
    r = await world.http.get(f"/api/v3/order?{query}", headers={"X-MBX-APIKEY": world.mallory.api_key})
    refused(r, 401, -1022)


# -- other users' orders ------------------------------------------------------------------------------------


async def test_another_users_order_is_invisible_by_order_id(world: World) -> None:
    r = await world.get("/api/v3/order", world.mallory, symbol="BTCUSDT", orderId=world.resting["orderId"])
    refused(r, 400, -2013)


async def test_another_users_order_is_invisible_by_client_order_id(world: World) -> None:
    r = await world.get("/api/v3/order", world.mallory, symbol="BTCUSDT", origClientOrderId="alice-resting")
    refused(r, 400, -2013)


async def test_another_users_orders_are_missing_from_every_list(world: World) -> None:
    for path in ("/api/v3/openOrders", "/api/v3/allOrders", "/api/v3/myTrades"):
        r = await world.get(path, world.mallory, symbol="BTCUSDT")
        assert r.status_code == 200 and r.json() == [], (path, r.text)


async def test_another_users_order_cannot_be_canceled_by_order_id(world: World) -> None:
    body = sign(world.mallory.secret, {"symbol": "BTCUSDT", "orderId": world.resting["orderId"]})
    refused(await world.send("DELETE", f"/api/v3/order?{body}", world.mallory, ""), 400, -2011)
    await _still_resting(world)


async def test_another_users_order_cannot_be_canceled_by_client_order_id(world: World) -> None:
    body = sign(world.mallory.secret, {"symbol": "BTCUSDT", "origClientOrderId": "alice-resting"})
    refused(await world.send("DELETE", "/api/v3/order", world.mallory, body), 400, -2011)  # in the body, too
    await _still_resting(world)


# -- SQL-like strings ---------------------------------------------------------------------------------------

NEW_ORDER_FIELDS = {  # the field, and Binance's code for a value that cannot be one
    "symbol": -1121,
    "side": -1117,
    "type": -1116,
    "timeInForce": -1115,
    "quantity": -1100,
    "price": -1100,
    "newClientOrderId": -1100,
    "newOrderRespType": -1100,
    "selfTradePreventionMode": -1100,
}


@pytest.mark.parametrize(("name", "code"), NEW_ORDER_FIELDS.items())
async def test_a_sql_like_new_order_field_is_refused(world: World, name: str, code: int) -> None:
    body = sign(world.alice.secret, {**ORDER, name: SQLISH})
    refused(await world.send("POST", "/api/v3/order", world.alice, body), 400, code)


@pytest.mark.parametrize(
    ("method", "name", "code"),
    [
        ("GET", "orderId", -1100),
        ("GET", "origClientOrderId", -2013),
        ("GET", "symbol", -1121),
        ("DELETE", "orderId", -1100),
        ("DELETE", "origClientOrderId", -2011),
        ("DELETE", "symbol", -1121),
    ],
)
async def test_a_sql_like_order_lookup_is_refused(world: World, method: str, name: str, code: int) -> None:
    query = sign(world.alice.secret, {"symbol": "BTCUSDT", name: SQLISH})
    r = await world.http.request(method, f"/api/v3/order?{query}", headers={"X-MBX-APIKEY": world.alice.api_key})
    refused(r, 400, code)


async def test_a_sql_like_client_id_for_a_cancel_is_refused(world: World) -> None:
    placed = await world.send("POST", "/api/v3/order", world.alice, sign(world.alice.secret, ORDER))
    assert placed.status_code == 200, placed.text
    params = {"symbol": "BTCUSDT", "orderId": placed.json()["orderId"], "newClientOrderId": SQLISH}
    refused(await world.send("DELETE", "/api/v3/order", world.alice, sign(world.alice.secret, params)), 400, -1100)
    r = await world.get("/api/v3/order", world.alice, symbol="BTCUSDT", orderId=placed.json()["orderId"])
    assert r.json()["status"] == "NEW", r.text


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/v3/depth", {"symbol": SQLISH}, -1121),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": SQLISH}, -1100),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": SQLISH}, -1120),
        ("/api/v3/exchangeInfo", {"symbols": SQLISH}, -1100),
        ("/api/v3/ticker/24hr", {"symbol": SQLISH}, -1121),
    ],
)
async def test_a_sql_like_public_parameter_is_refused(
    world: World, path: str, params: dict[str, str], code: int
) -> None:
    refused(await world.get(path, **params), 400, code)


async def test_a_sql_like_api_key_or_listen_key_is_refused(world: World) -> None:
    r = await world.http.get(f"/api/v3/account?{sign(world.alice.secret, {})}", headers={"X-MBX-APIKEY": SQLISH})
    refused(r, 401, -2015)
    r = await world.http.put(
        "/api/v3/userDataStream", params={"listenKey": SQLISH}, headers={"X-MBX-APIKEY": world.alice.api_key}
    )
    refused(r, 400, -1125)


async def test_the_database_is_intact_after_sql_like_input(world: World) -> None:
    body = sign(world.alice.secret, {**ORDER, "newClientOrderId": "x", "symbol": SQLISH})
    refused(await world.send("POST", "/api/v3/order", world.alice, body), 400, -1121)
    db = await world.db()
    try:
        tables = {r["tablename"] for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"orders", "users", "api_keys", "balances", "ledger", "trades"} <= tables, tables
        assert await db.fetchval("SELECT count(*) FROM orders WHERE client_order_id LIKE '%DROP%'") == 0
        assert await db.fetchval("SELECT count(*) FROM users") >= 2
        await check_money(db)
    finally:
        await db.close()
    await _still_resting(world)


# -- size and shape -----------------------------------------------------------------------------------------


async def test_a_parameter_sent_twice_is_refused(world: World) -> None:
    """In the query and the body, or twice in one: refused, never merged (which copy would the signature mean?)."""
    key = {"X-MBX-APIKEY": world.alice.api_key}
    form = sign(world.alice.secret, ORDER)  # side=BUY
    r = await world.send("POST", "/api/v3/order?side=SELL", world.alice, form)
    refused(r, 401, -1022)  # a parameter slipped into the query is not covered by the body's signature
    unsigned = form.split("&signature=")[0]
    resigned = f"{unsigned}&signature={signature(world.alice.secret, 'side=SELL' + unsigned)}"  # query + body
    refused(await world.send("POST", "/api/v3/order?side=SELL", world.alice, resigned), 400, -1101)
    twice = f"timestamp={now_ms()}&symbol=BTCUSDT&symbol=ETHUSDT&orderId=1&recvWindow=5000"
    r = await world.http.get(f"/api/v3/order?{twice}&signature={signature(world.alice.secret, twice)}", headers=key)
    refused(r, 400, -1101)


async def test_too_many_parameters_are_refused(world: World) -> None:
    many = {"symbol": "BTCUSDT", **{f"p{i}": "1" for i in range(100)}}
    refused(await world.get("/api/v3/depth", **many), 400, -1101)
    refused(await world.send("POST", "/api/v3/order", world.alice, sign(world.alice.secret, many)), 400, -1101)


async def test_a_huge_body_is_refused(world: World) -> None:
    body = sign(world.alice.secret, ORDER) + "&pad=" + "x" * 1_000_000
    refused(await world.send("POST", "/api/v3/order", world.alice, body), 413, -1101)


async def test_a_huge_body_without_a_length_is_refused(world: World) -> None:
    """Chunked, so no Content-Length announces it: the gateway stops reading at its limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield sign(world.alice.secret, ORDER).encode()
        for _ in range(1_000):
            yield b"&pad=" + b"x" * 10_000

    r = await world.http.post("/api/v3/order", content=chunks(), headers={**FORM, "X-MBX-APIKEY": world.alice.api_key})
    refused(r, 413, -1101)


async def test_a_deeply_nested_json_body_is_refused(world: World) -> None:
    nested = "[" * 5_000 + "]" * 5_000  # within the body limit: the parser, not the size, must refuse it
    headers = {"X-MBX-APIKEY": world.alice.api_key, "Content-Type": "application/json"}
    r = await world.http.post("/api/v3/order", content=nested, headers=headers)
    refused(r, 400, -1102)  # no signature among the parameters
    query = urlencode({"timestamp": now_ms(), "recvWindow": 5000})
    signed = f"{query}&signature={signature(world.alice.secret, query + nested)}"  # over query + body
    refused(await world.http.post(f"/api/v3/order?{signed}", content=nested, headers=headers), 400, -1100)


async def test_deeply_nested_json_in_a_parameter_is_refused(world: World) -> None:
    refused(await world.get("/api/v3/exchangeInfo", symbols="[" * 3_000 + "]" * 3_000), 400, -1100)


# -- floods -------------------------------------------------------------------------------------------------


async def test_a_flood_past_the_rate_limit_gets_429_with_retry_after(world: World) -> None:
    flooder = await admin.create_user(world.fleet.settings, "flooder", [])
    weight_per_request = 5  # GET /account
    requests = 2 * world.fleet.settings.request_weight_per_minute // weight_per_request + 10  # a window may roll over
    headers = {"X-MBX-APIKEY": flooder.api_key}
    queries = [sign(flooder.secret, {}, recv_window=60_000) for _ in range(requests)]  # queued a while, too
    answers = await asyncio.gather(*(world.http.get(f"/api/v3/account?{q}", headers=headers) for q in queries))
    limited = [r for r in answers if r.status_code == 429]
    assert limited and {r.status_code for r in answers} <= {200, 429}, {r.text for r in answers}
    for r in limited:
        refused(r, 429, -1003)
        assert 1 <= int(r.headers["Retry-After"]) <= 61, r.headers
    r = await world.get("/api/v3/account", world.alice)
    assert r.status_code == 200, "one key's flood spends only that key's budget"


# -- odd input and leaks ------------------------------------------------------------------------------------

ODD_PUBLIC_INPUT = [
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "²"}, -1100),  # str.isdigit() but not int(): was a 500
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "--5"}, -1100),  # was a 500
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "٣"}, -1100),  # was read as 3
    ("/api/v3/depth", {"symbol": "BTC\x00USDT"}, -1121),
]


@pytest.mark.parametrize(("path", "params", "code"), ODD_PUBLIC_INPUT)
async def test_odd_public_input_is_refused_without_a_trace(
    world: World, path: str, params: dict[str, str], code: int
) -> None:
    refused(await world.get(path, **params), 400, code)


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "a\x00b"}, -2013),  # Postgres refused it: 500
        ("/api/v3/order", {"symbol": "BTCUSDT", "orderId": "²"}, -1100),
        ("/api/v3/allOrders", {"symbol": "BTCUSDT", "startTime": "²"}, -1100),
        ("/api/v3/myTrades", {"symbol": "BTCUSDT", "limit": "--1"}, -1100),
    ],
)
async def test_odd_signed_input_is_refused_without_a_trace(
    world: World, path: str, params: dict[str, str], code: int
) -> None:
    refused(await world.get(path, world.alice, **params), 400, code)


@pytest.mark.parametrize("field_name", ["timestamp", "recvWindow"])
async def test_an_odd_digit_in_the_timestamp_or_window_is_refused(world: World, field_name: str) -> None:
    """Signed by the key's owner, so only they could cause it; it was a 500 all the same."""
    payload = urlencode({"timestamp": str(now_ms()), "recvWindow": "5000", field_name: "²"})
    query = f"{payload}&signature={signature(world.alice.secret, payload)}"
    refused(await world.http.get(f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": world.alice.api_key}), 400, -1100)


async def test_no_response_or_log_holds_a_trace_or_a_secret(world: World) -> None:
    """The guard after each test, made explicit: a round of refusals, then every body and log line is clean."""
    start = mark(world)
    for path in ("/api/v3/order", "/api/v3/allOrders", "/api/v3/myTrades", "/api/v3/depth"):
        refused(await world.get(path, world.alice, symbol="BTCUSDT", orderId="²", limit="²"), 400, -1100)
        r = await world.get(path, world.mallory, symbol="BTCUSDT", orderId=world.resting["orderId"])
        assert r.status_code in (200, 400), r.text
    assert len(world.seen) == start.responses + 8
    assert not leaks_since(world, Mark(0, {}))  # every response of the module, every line still kept
    for service, tail in world.fleet.fleet.tails.items():
        assert all(world.alice.api_key not in line for line in tail), service  # keys stay out of logs, too
