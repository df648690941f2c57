"""Access is earned (issue 20), on the fleet as ``spot up`` starts it, behind one trusted proxy.

The fleet trusts one proxy hop, so each test speaks from addresses of its own through X-Forwarded-For, as
API Gateway / the NLB would name its clients. Each test fails on the code before issue 20: ingestion took
any caller's user id, a bad signature spent the named key's budget, the public limit was the peer's, a
random key cost a Postgres query each, any key opened the private stream, and a stream outlived its key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from services.gateway.deps import BAD_KEY
from services.gateway.ws import WS_API_MESSAGES_PER_S
from spot import admin, keys
from tests.client import Client, Stream
from tests.e2e.conftest import RunningFleet, _run

pytestmark = pytest.mark.e2e

WEIGHT = 100  # per minute, per key or IP: small, so a flood reaches it quickly
LOOKUPS = 20  # API keys an IP may have looked up in Postgres per minute
CONNECTIONS = 10  # WebSocket connections an IP may open per 5 minutes
ORDERS_A_DAY = 1000  # per account
CONCURRENT = 5  # requests in flight from the random-key prober
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001"}
FUNDS = [("BTC", 10**8), ("USDT", 100_000 * 10**8)]


@pytest.fixture(scope="module")
def fleet(module_env: dict[str, str]) -> Iterator[RunningFleet]:
    env = {
        **module_env,
        "TRUSTED_PROXY_HOPS": "1",
        "REQUEST_WEIGHT_PER_MINUTE": str(WEIGHT),
        "KEY_LOOKUPS_PER_MINUTE": str(LOOKUPS),
        "WS_CONNECTIONS_PER_5M": str(CONNECTIONS),
        "ORDERS_PER_DAY": str(ORDERS_A_DAY),
    }
    yield from _run(env)


def _ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{1 + secrets.randbelow(250)}"


async def _user(f: RunningFleet, ip: str | None = None) -> tuple[Client, admin.NewUser]:
    u = await admin.create_user(f.settings, "access", FUNDS)
    return Client(f.base, u.api_key, u.secret, forwarded_for=ip or _ip()), u


async def _orders_of(f: RunningFleet, user_id: int) -> int:
    conn = await asyncpg.connect(f.settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id))
    finally:
        await conn.close()


async def _ingestion_refuses_unsigned_callers(f: RunningFleet) -> None:
    alice, u = await _user(f)
    ingestion = f"http://127.0.0.1:{f.fleet.port('ingestion')}"
    body = {"userId": u.user_id, "params": {**ORDER, "price": "50000", "newClientOrderId": "forged-1"}}
    async with httpx.AsyncClient(base_url=ingestion, timeout=10) as http:
        for headers in (
            {},  # what any local process on port 8001 could send before
            {"X-Spot-Service-Signature": f"{int(time.time() * 1000)}.{'0' * 64}"},  # a made-up signature
            {"X-Spot-Service-Signature": "not a signature"},
        ):
            r = await http.post("/internal/orders", json=body, headers=headers)
            assert (r.status_code, r.json()["code"]) == (401, -2015), (headers, r.text)
            c = await http.post("/internal/cancels", json={**body, "orderId": 1}, headers=headers)
            assert (c.status_code, c.json()["code"]) == (401, -2015), (headers, c.text)
            a = await http.post("/internal/cancel-all", json={"userId": u.user_id, "params": {"symbol": "BTCUSDT"}},
                                headers=headers)  # fmt: skip
            assert (a.status_code, a.json()["code"]) == (401, -2015), (headers, a.text)
    await asyncio.sleep(0.5)
    assert await _orders_of(f, u.user_id) == 0, "a refused call wrote an order"
    placed = await alice.order(**ORDER, price="50000")  # the gateway's own, signed, calls still pass
    assert placed["orderId"] > 0
    await alice.close()


def test_ingestion_refuses_a_caller_without_the_gateways_signature(fleet: RunningFleet) -> None:
    asyncio.run(_ingestion_refuses_unsigned_callers(fleet))


async def _no_lockout(f: RunningFleet) -> None:
    victim, _ = await _user(f)
    attacker = Client(f.base, victim.api_key, "not-the-secret", forwarded_for=_ip())
    statuses = [(await attacker.signed("POST", "order", **ORDER, price="50000"))[0] for _ in range(WEIGHT + 20)]
    assert statuses[0] == 401 and statuses[-1] == 429, "the attacker is limited, on their own IP's budget"
    for i in range(3):  # the victim's key budget is untouched
        placed = await victim.order(**ORDER, price="50000", newClientOrderId=f"victim-{i}")
        assert placed["orderId"] > 0
    await attacker.close()
    await victim.close()


def test_a_victims_api_key_cannot_be_used_to_lock_them_out(fleet: RunningFleet) -> None:
    asyncio.run(_no_lockout(fleet))


async def _by_ip(f: RunningFleet) -> None:
    scraper, other = Client(f.base, forwarded_for=_ip()), Client(f.base, forwarded_for=_ip())
    codes = [(await scraper.http.get("/api/v3/time")).status_code for _ in range(WEIGHT + 5)]
    assert codes[-1] == 429
    assert (await other.http.get("/api/v3/time")).status_code == 200, "another client behind the same proxy"
    spoofed = Client(f.base, forwarded_for=f"{_ip()}, {scraper.headers['X-Forwarded-For']}")
    assert (await spoofed.http.get("/api/v3/time")).status_code == 429, "only the trusted hop's entry counts"
    for c in (scraper, other, spoofed):
        await c.close()


def test_the_public_limit_is_keyed_on_the_client_ip_the_proxy_names(fleet: RunningFleet) -> None:
    asyncio.run(_by_ip(fleet))


def _lookups(f: RunningFleet) -> float:
    text = httpx.get(f"{f.base}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("spot_gateway_key_lookups_total"):
            return float(line.split()[-1])
    raise AssertionError("no spot_gateway_key_lookups_total in the gateway's metrics")


async def _random_keys(f: RunningFleet) -> list[int]:
    ip = _ip()
    async with httpx.AsyncClient(base_url=f.base, timeout=15, headers={"X-Forwarded-For": ip}) as http:
        sem = asyncio.Semaphore(CONCURRENT)

        async def one() -> int:
            async with sem:
                r = await http.get(
                    "/api/v3/account?timestamp=1&signature=00", headers={"X-MBX-APIKEY": secrets.token_urlsafe(48)}
                )
                return r.status_code

        return await asyncio.gather(*(one() for _ in range(1000)))


def test_a_thousand_random_keys_cost_a_bounded_number_of_postgres_queries(fleet: RunningFleet) -> None:
    before = _lookups(fleet)
    statuses = asyncio.run(_random_keys(fleet))
    assert set(statuses) <= {401, 429} and 429 in statuses
    # the limit, plus the lookups in flight when it is reached; fixed one-minute windows: a run that
    # crosses a minute boundary gets a second window's worth
    bound = 2 * (LOOKUPS + CONCURRENT)
    assert _lookups(fleet) - before <= bound, "an unknown key past the IP's lookups must not reach Postgres"


async def _restricted(f: RunningFleet) -> None:
    _, u = await _user(f)
    ip = _ip()
    read = await keys.create(f.settings, u.user_id, ["USER_DATA"])
    reader = Client(f.base, read.api_key, read.secret, forwarded_for=ip)
    assert (await reader.signed("GET", "account"))[0] == 200
    status, body = await reader.signed("POST", "order", **ORDER, price="50000")
    assert (status, body["code"]) == (401, -2015), "a read-only key cannot trade"

    trade = await keys.create(f.settings, u.user_id, ["TRADE"])
    trader = Client(f.base, trade.api_key, trade.secret, forwarded_for=ip)
    r = await trader.http.post("/api/v3/userDataStream", headers={"X-MBX-APIKEY": trade.api_key})
    assert (r.status_code, r.json()["code"]) == (401, -2015), "a trade-only key does not open the private stream"
    with pytest.raises(AssertionError):
        await trader.user_stream()

    pinned = await keys.create(f.settings, u.user_id, ["USER_DATA"], ["10.77.0.0/16"])
    inside = Client(f.base, pinned.api_key, pinned.secret, forwarded_for="10.77.3.4")
    outside = Client(f.base, pinned.api_key, pinned.secret, forwarded_for="10.78.3.4")
    assert (await inside.signed("GET", "account"))[0] == 200
    status, body = await outside.signed("GET", "account")
    assert (status, body["code"]) == (401, -2015), "an IP outside the allow-list is refused"
    for c in (reader, trader, inside, outside):
        await c.close()


def test_keys_are_restricted_by_permission_and_ip(fleet: RunningFleet) -> None:
    asyncio.run(_restricted(fleet))


async def _listen(c: Client) -> tuple[str, Stream]:
    r = await c.http.post("/api/v3/userDataStream", headers={"X-MBX-APIKEY": c.api_key})
    assert r.status_code == 200, r.text
    k = r.json()["listenKey"]
    ws = await websockets.connect(f"{c.ws_base()}/ws/{k}", additional_headers=c.headers)
    return k, Stream(ws)


async def _ends_within(stream: Stream, event: str, started: float) -> float:
    await stream.wait_for(lambda e: e.get("e") == event, within=3)
    return time.monotonic() - started


async def _revoked(f: RunningFleet) -> None:
    c, u = await _user(f)
    _, listening = await _listen(c)
    subscribed = await c.user_stream()
    started = time.monotonic()
    await keys.revoke(f.settings, u.api_key)
    took = await asyncio.gather(
        _ends_within(listening, "listenKeyExpired", started), _ends_within(subscribed, "eventStreamTerminated", started)
    )
    assert max(took) < 1.0, f"streams ended after {took} s"
    status, body = await c.signed("GET", "account")
    assert (status, body["code"]) == (401, -2015), "a revoked key is refused at once"
    await asyncio.sleep(0.3)
    assert listening.ws.close_code is not None, "the listenKey connection is closed"
    await subscribed.close()
    await c.close()


def test_a_revoked_key_is_refused_and_its_streams_end_within_a_second(fleet: RunningFleet) -> None:
    asyncio.run(_revoked(fleet))


async def _deleted_and_disabled(f: RunningFleet) -> None:
    c, u = await _user(f)
    k, listening = await _listen(c)
    started = time.monotonic()
    r = await c.http.request("DELETE", f"/api/v3/userDataStream?listenKey={k}", headers={"X-MBX-APIKEY": c.api_key})
    assert r.status_code == 200, r.text
    assert await _ends_within(listening, "listenKeyExpired", started) < 1.0

    _, again = await _listen(c)
    subscribed = await c.user_stream()
    started = time.monotonic()
    await keys.set_user_status(f.settings, u.user_id, active=False)
    took = await asyncio.gather(
        _ends_within(again, "listenKeyExpired", started), _ends_within(subscribed, "eventStreamTerminated", started)
    )
    assert max(took) < 1.0, f"a disabled user's streams ended after {took} s"
    await subscribed.close()
    await c.close()


def test_a_deleted_listen_key_or_a_disabled_user_ends_the_stream(fleet: RunningFleet) -> None:
    asyncio.run(_deleted_and_disabled(fleet))


async def _ws_api_rate(f: RunningFleet) -> None:
    async with websockets.connect(
        f"{f.base.replace('http', 'ws')}/ws-api/v3", additional_headers={"X-Forwarded-For": _ip()}
    ) as ws:
        for i in range(WS_API_MESSAGES_PER_S + 3):
            try:
                await ws.send(json.dumps({"id": i, "method": "ping"}))
            except websockets.ConnectionClosed:
                break
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(WS_API_MESSAGES_PER_S + 5):
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_the_ws_api_takes_a_bounded_number_of_messages_a_second_per_connection(fleet: RunningFleet) -> None:
    """``WS_API_MESSAGES_PER_S`` (50; a stream connection's is Binance's 5): a trading client sends several
    requests at once, each spending REST's weight."""
    asyncio.run(_ws_api_rate(fleet))


def _refused_handshake(f: RunningFleet, ip: str) -> bool:
    async def go() -> bool:
        try:
            async with websockets.connect(
                f"{f.base.replace('http', 'ws')}/ws", additional_headers={"X-Forwarded-For": ip}
            ):
                return False
        except websockets.InvalidStatus:
            return True

    return asyncio.run(go())


def test_an_ip_opens_a_bounded_number_of_websocket_connections(fleet: RunningFleet) -> None:
    ip = _ip()
    refused = [_refused_handshake(fleet, ip) for _ in range(CONNECTIONS + 1)]
    assert refused == [False] * CONNECTIONS + [True]
    assert not _refused_handshake(fleet, _ip()), "another IP still connects"


async def _weights(f: RunningFleet) -> None:
    c, _ = await _user(f)
    r = await c.http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 1000})
    assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "50", r.headers
    r = await c.http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 500})
    assert r.headers["X-MBX-USED-WEIGHT-1M"] == "75"
    r = await c.http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 100})
    assert r.headers["X-MBX-USED-WEIGHT-1M"] == "80"
    r = await c.http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 1000})
    assert r.status_code == 429, "a deep book costs its weight"
    status, placed = await c.signed("POST", "order", **ORDER, price="50000")
    assert status == 200, placed
    assert (await c.http.get("/api/v3/time")).status_code == 429  # the IP's weight, not the key's
    status, _ = await c.signed("GET", "openOrders", symbol="BTCUSDT")
    assert status == 200
    await c.close()


def test_depth_costs_weight_by_limit_and_responses_tell_the_weight_used(fleet: RunningFleet) -> None:
    asyncio.run(_weights(fleet))


async def _order_headers(f: RunningFleet) -> None:
    c, u = await _user(f)
    query = c.sign({**ORDER, "price": "50000"})
    headers = {"X-MBX-APIKEY": c.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    r = await c.http.post("/api/v3/order", content=query, headers=headers)
    assert r.status_code == 200, r.text
    used = ("X-MBX-USED-WEIGHT-1M", "X-MBX-ORDER-COUNT-10S", "X-MBX-ORDER-COUNT-1D")
    assert tuple(r.headers[h] for h in used) == ("1", "1", "1"), r.headers
    second = await keys.create(f.settings, u.user_id, ["TRADE"])  # the account's day counts every key
    other = Client(f.base, second.api_key, second.secret or "", forwarded_for=_ip())
    query = other.sign({**ORDER, "price": "50000"})
    headers = {"X-MBX-APIKEY": other.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    r = await other.http.post("/api/v3/order", content=query, headers=headers)
    assert r.status_code == 200, r.text
    assert tuple(r.headers[h] for h in used) == ("1", "1", "2"), r.headers
    r = await c.http.get("/api/v3/time")  # every answer tells the IP's weight, a refusal's too
    assert r.headers["X-MBX-USED-WEIGHT-1M"] == "1", r.headers
    r = await c.http.get("/api/v3/account", headers={"X-MBX-APIKEY": "no-such-key"})
    assert r.status_code == 401 and r.headers["X-MBX-USED-WEIGHT-1M"] == "2", r.headers
    info = await c.public("exchangeInfo")
    day = {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": ORDERS_A_DAY}
    assert day in info["rateLimits"], info["rateLimits"]
    await c.close()
    await other.close()


def test_a_new_order_tells_the_weight_and_the_order_counts_used(fleet: RunningFleet) -> None:
    """X-MBX-USED-WEIGHT-1M on every answer; X-MBX-ORDER-COUNT-10S per key and -1D per account (all its
    keys) on a new order; exchangeInfo lists the day's limit (ORDERS_PER_DAY)."""
    asyncio.run(_order_headers(fleet))


async def _ccxt_ed25519(f: RunningFleet) -> None:
    import ccxt.pro
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.e2e.test_ccxt import config

    _, u = await _user(f)
    private = Ed25519PrivateKey.generate()  # the client's; the exchange is given the public key only
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = await keys.create(f.settings, u.user_id, ["TRADE", "USER_DATA"], None, public_pem.decode())
    assert key.secret is None
    ex = ccxt.pro.binance(config(f.base, key.api_key, private_pem))
    try:
        await ex.load_markets()
        placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000)
        assert placed["id"]
        balance = await ex.fetch_balance()
        assert float(balance["USDT"]["used"]) > 0
        watching = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))  # WS-API logon with the Ed25519 key
        await asyncio.sleep(1)
        await ex.cancel_order(placed["id"], "BTC/USDT")
        seen = await asyncio.wait_for(watching, 10)
        assert any(o["id"] == placed["id"] for o in seen)
    finally:
        await ex.close()
    conn = await asyncpg.connect(f.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT key_type, secret_sealed, public_key FROM api_keys WHERE api_key = $1", key.api_key
        )
    finally:
        await conn.close()
    assert (row["key_type"], row["secret_sealed"], len(row["public_key"])) == ("ED25519", None, 32)


def test_ccxt_trades_and_streams_with_an_ed25519_key(fleet: RunningFleet) -> None:
    asyncio.run(_ccxt_ed25519(fleet))


class WsApiConversation:
    """Requests on one /ws-api/v3 connection, paced under its 5 messages a second; what is not an answer
    (events, Binance's unsolicited session revocation) is kept in ``others``."""

    def __init__(self, ws: Any) -> None:
        self.ws, self._next = ws, 0
        self.others: list[dict[str, Any]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        await asyncio.sleep(0.25)
        self._next += 1
        request = {"id": f"r{self._next}", "method": method, **({"params": params} if params is not None else {})}
        await self.ws.send(json.dumps(request))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if message.get("id") == request["id"]:
                return message
            self.others.append(message)

    async def event(self, kind: str, within: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while not any(m.get("event", {}).get("e") == kind for m in self.others):
            self.others.append(json.loads(await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())))
        return next(dict(m["event"]) for m in self.others if m.get("event", {}).get("e") == kind)


def _ed25519_signed(private: Any, api_key: str, **params: Any) -> dict[str, Any]:
    """Binance's WS-API signature with an Ed25519 key: base64 over the sorted ``key=value`` pairs."""
    signed = {"apiKey": api_key, "timestamp": int(time.time() * 1000), **params}
    payload = "&".join(f"{k}={signed[k]}" for k in sorted(signed)).encode()
    return {**signed, "signature": base64.b64encode(private.sign(payload)).decode()}


async def _ed25519_key(f: RunningFleet, user_id: int, permissions: list[str]) -> tuple[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = await keys.create(f.settings, user_id, permissions, None, public_pem.decode())
    return key.api_key, private


async def _session_logon(f: RunningFleet) -> None:
    c, u = await _user(f)
    api_key, private = await _ed25519_key(f, u.user_id, ["TRADE", "USER_DATA"])
    url = f"{f.base.replace('http', 'ws')}/ws-api/v3"
    async with websockets.connect(url, additional_headers={"X-Forwarded-For": _ip()}) as ws:
        api = WsApiConversation(ws)
        before = await api.call("session.status")
        assert before["status"] == 200, before
        assert (before["result"]["apiKey"], before["result"]["authorizedSince"]) == (None, None)
        assert before["result"]["userDataStream"] is False and before["result"]["connectedSince"] > 0
        refused = await api.call("userDataStream.subscribe")
        assert (refused["status"], refused["error"]["code"]) == (401, -1002), "no session, no account"

        hmac_params = {"apiKey": c.api_key, "timestamp": int(time.time() * 1000)}
        payload = "&".join(f"{k}={hmac_params[k]}" for k in sorted(hmac_params)).encode()
        hmac_params["signature"] = hmac.new(c.secret.encode(), payload, hashlib.sha256).hexdigest()
        refused = await api.call("session.logon", hmac_params)
        assert refused["error"]["code"] == -4056, "only an Ed25519 key stands for a session"
        forged = {**_ed25519_signed(private, api_key), "timestamp": int(time.time() * 1000) + 1}
        refused = await api.call("session.logon", forged)
        assert (refused["status"], refused["error"]["code"]) == (401, -1022), refused

        logon = await api.call("session.logon", _ed25519_signed(private, api_key))
        assert logon["status"] == 200 and logon["result"]["apiKey"] == api_key, logon
        assert logon["result"]["authorizedSince"] >= before["result"]["connectedSince"]
        status = await api.call("session.status")
        assert status["result"]["apiKey"] == api_key and status["result"]["userDataStream"] is False

        # the session's key stands for requests that carry no apiKey and no signature
        assert (await api.call("userDataStream.subscribe"))["result"] == {"subscriptionId": 0}
        assert (await api.call("session.status"))["result"]["userDataStream"] is True
        placed = await c.order(**ORDER, price="40000")
        report = await api.event("executionReport")
        assert (report["i"], report["X"]) == (placed["orderId"], "NEW"), report
        again = await api.call("userDataStream.subscribe.signature", {"timestamp": int(time.time() * 1000)})
        assert again["result"] == {"subscriptionId": 0}, again

        out = await api.call("session.logout")
        assert out["status"] == 200 and (out["result"]["apiKey"], out["result"]["userDataStream"]) == (None, False)
        await api.event("eventStreamTerminated")  # logout ends the subscription the session made
        refused = await api.call("userDataStream.subscribe")
        assert refused["error"]["code"] == -1002, "logged out: requests need their own signature again"

        # a revoked key revokes the session at its next use, as Binance tells it
        assert (await api.call("session.logon", _ed25519_signed(private, api_key)))["status"] == 200
        await keys.revoke(f.settings, api_key)
        await asyncio.sleep(0.5)  # every replica has dropped its copy (pub/sub)
        refused = await api.call("userDataStream.subscribe")
        assert (refused["status"], refused["error"]["code"]) == (401, -2015), refused
        assert {"id": None, "status": 401, "error": {"code": -2015, "msg": BAD_KEY}} in api.others
        assert (await api.call("session.status"))["result"]["apiKey"] is None
    await c.close()


def test_the_ws_api_logs_on_with_an_ed25519_key_and_its_session_signs_for_it(fleet: RunningFleet) -> None:
    """session.logon / status / logout (issue 20) with a real Ed25519 key on the running fleet: after logon the
    user data stream needs no apiKey or signature; logout ends it; HMAC keys and forged signatures are refused;
    a revoked key ends the session."""
    asyncio.run(_session_logon(fleet))
