"""What every route needs: the gateway's connections and the caller, authenticated and rate limited.

``signed`` implements Binance's SIGNED endpoint security (API key, HMAC signature over the raw request,
timestamp window, permission, IP allow-list); ``keyed`` the USER_STREAM security (API key with a stream
permission). ``authenticate`` is the SIGNED check itself, which the new-order handler calls directly
(``routes/orders.py``, served through ``fastpath.py``).

Who pays for a refusal (issue 20): a caller whose signature is not proven spends its IP's budget, never
the named key's, so knowing a victim's API key is not enough to exhaust the victim's limits. A key not in
this replica's cache costs a Postgres query, so an IP that has used up its unknown-key lookups
(``key_lookups_per_minute``; a key that exists costs nothing) is refused before the query, and a key
Postgres does not know is remembered in Redis (``NO_KEY_S``) by every replica: random keys cost a bounded
number of queries (the limit, plus the lookups in flight when it is reached). The
client IP is the one the trusted proxies name (``client_ip``), not the load balancer's. Cached keys are
dropped when ``spot admin key`` publishes a change (``access.py``); the cache's TTL only bounds a missed
message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from prometheus_client import Counter

from shared import apikeys, errors, pressure
from shared import redis as sredis
from shared.apikeys import ApiKey
from shared.config import Settings
from shared.domain import Market
from shared.envelope import Envelope
from shared.errors import ApiError
from shared.lifecycle import now_ms
from shared.signing import check_timestamp, parse_params, split_signature

from .hub import Hub
from .ingest import Ingest
from .outcomes import Outcomes
from .ratelimit import RateLimiter, lookup_budget, public_budget, signed_budget

KEY_CACHE_S = 30.0  # a fallback only: changes are published (access.py) and drop the copy at once
NO_KEY_S = 300  # how long every replica answers an unknown key from Redis instead of Postgres
BAD_KEY = "Invalid API-key, IP, or permissions for action."
DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts '²', which int() refuses
KEY_LOOKUPS = Counter("spot_gateway_key_lookups", "API keys looked up in Postgres (cache misses)")


def no_key(key: str) -> str:
    """Where every replica remembers that Postgres has no such API key."""
    return f"nokey:{key}"


@dataclass(slots=True)
class Gateway:
    settings: Settings
    db: asyncpg.Pool
    cache: sredis.Client
    markets: dict[str, Market]
    limiter: RateLimiter
    outcomes: Outcomes
    hub: Hub
    ingest: Ingest
    envelope: Envelope
    _keys: dict[str, tuple[float, ApiKey | None]]
    _lookups: dict[str, asyncio.Future[ApiKey | None]] = field(default_factory=dict)  # in flight, by key
    gate: pressure.Gate | None = None  # admission by the processor's measured backlog (None: off)
    # set by an access message ``apikeys.MARKETS_CHANGED`` (``spot admin market``): the markets are read again
    markets_changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def api_key(self, key: str, ip: str | None) -> ApiKey | None:
        """The key, from this replica's cache, else Redis' memory of unknown keys, else Postgres, while
        ``ip`` has unknown-key lookups left (429 past them; None: the gateway's own re-check). Concurrent
        misses of one key share one lookup."""
        hit = self._keys.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        pending = self._lookups.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._lookups[key] = asyncio.ensure_future(self._look_up(key, ip))
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done():
                self._lookups.pop(key, None)
            else:
                pending.add_done_callback(lambda _: self._lookups.pop(key, None))

    async def _look_up(self, key: str, ip: str | None) -> ApiKey | None:
        if await self.cache.exists(no_key(key)):
            found = None
        else:
            budget, limit = lookup_budget(ip or ""), self.settings.key_lookups_per_minute
            if ip is not None:
                await self.limiter.check_limited(budget, limit, "unknown API-key lookups")
            KEY_LOOKUPS.inc()
            found = await apikeys.fetch(self.db, self.envelope, key)
            if found is None:  # only unknown keys count: many users behind one address are fine
                await self.cache.set(no_key(key), 1, ex=NO_KEY_S)
                if ip is not None:
                    await self.limiter.spend_limited(budget, limit, "unknown API-key lookups")
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[key] = (time.monotonic() + KEY_CACHE_S, found)
        return found

    def forget(self, message: bytes) -> None:
        """Drop the cached copies an access message names (``apikeys.changed_key`` / ``changed_user``)."""
        kind, _, name = message.decode(errors="replace").partition(":")
        if message == apikeys.MARKETS_CHANGED:
            self.markets_changed.set()
        elif kind == "key":
            self._keys.pop(name, None)
        elif kind == "user" and DIGITS.fullmatch(name):
            user_id = int(name)
            for key in [k for k, (_, found) in self._keys.items() if found is not None and found.user_id == user_id]:
                self._keys.pop(key, None)
        else:
            self._keys.clear()  # a message we cannot read: drop everything rather than keep a stale key

    def market(self, symbol: str | None) -> Market:
        if not symbol:
            raise errors.mandatory("symbol")
        m = self.markets.get(symbol)
        if m is None:
            raise errors.invalid_symbol()
        return m


async def gateway(request: Request) -> Gateway:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hand-off on
    every request."""
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(gateway)]


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    api_key: str
    params: dict[str, str]
    budget: str  # the rate-limit budget it spends (``ratelimit.signed_budget``)


def forwarded_ip(peer: str, forwarded_for: str | None, hops: int) -> str:
    """The client's address: with ``hops`` trusted proxies in front, the ``hops``-th ``X-Forwarded-For``
    entry from the right (each proxy appends the address it was called from; the entries left of it are
    the client's own to write, so never believed); the peer when no proxy is trusted or the header is
    short (then the caller did not come through the proxies)."""
    if hops == 0 or not forwarded_for:
        return peer
    entries = [e.strip() for e in forwarded_for.split(",")]
    if len(entries) < hops:
        return peer
    candidate = entries[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def client_ip(request: Request | Any, hops: int) -> str:
    """``forwarded_ip`` of a request or WebSocket."""
    peer = request.client.host if request.client else "unknown"
    return forwarded_ip(peer, request.headers.get("x-forwarded-for"), hops)


BodyReader = Callable[[], Awaitable[bytes]]


async def read_body(content_length: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, read no further than ``limit``: a chunked body announces no length to refuse up front."""
    too_large = ApiError(errors.TOO_MANY_PARAMETERS, f"Request body larger than {limit} bytes.", 413)
    if content_length and (not DIGITS.fullmatch(content_length) or int(content_length) > limit):
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


# auto_error=False: a missing key is refused below with Binance's -2014, not FastAPI's own 401
API_KEY_HEADER = APIKeyHeader(
    name="X-MBX-APIKEY",
    scheme_name="X-MBX-APIKEY",
    description="The API key. SIGNED endpoints also take timestamp, recvWindow and signature.",
    auto_error=False,
)
ApiKeyHeader = Annotated[str | None, Security(API_KEY_HEADER)]


async def key_of(key: str | None, gw: Gateway, ip: str) -> tuple[str, ApiKey]:
    """The active key ``key`` may be used from ``ip``; a refusal spends the IP's weight, not the key's."""
    if not key or len(key) > 128:
        await gw.limiter.weight(public_budget(ip), 1)
        raise ApiError(errors.BAD_API_KEY_FMT, "API-key format invalid.", 401)
    try:
        found = await gw.api_key(key, ip)
    except ApiError:  # the IP's unknown-key lookups are spent: its weight too, so the answer tells it
        await gw.limiter.weight(public_budget(ip), 1)
        raise
    if found is None or not found.active or not found.allows_ip(ip):
        await gw.limiter.weight(public_budget(ip), 1)
        raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    return key, found


async def authenticate(
    gw: Gateway,
    header: str | None,
    query: bytes,
    body: BodyReader,
    permission: str,
    weight: int,
    orders: int,
    ip: str,
) -> Caller:
    """The SIGNED caller, who has spent nothing yet if accepted: the caller spends ``weight`` (and
    ``orders``) next, in one Redis call with what else it needs. A refusal before the signature is proven
    spends ``ip``'s weight; once it is proven, the key's budget first, so an exhausted budget answers with
    its 429 before anything else, as Binance does."""
    key, found = await key_of(header, gw, ip)
    budget = signed_budget(found.user_id, key)
    try:
        raw = await body()
        payload, signature = split_signature(query, raw)
        proven = found.verifies(payload, signature)
    except ApiError:
        await gw.limiter.weight(public_budget(ip), weight)
        raise
    if not proven:  # anyone may name a key: the refusal is the IP's, never the key owner's
        await gw.limiter.weight(public_budget(ip), weight)
        raise ApiError(errors.INVALID_SIGNATURE, "Signature for this request is not valid.", 401)
    try:
        params = parse_params(query, raw)
        check_timestamp(params, now_ms(), gw.settings.recv_window_max_ms)
        if permission not in found.permissions:
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    except ApiError:
        await gw.limiter.spend(budget, weight, orders)
        raise
    return Caller(found.user_id, key, params, budget)


def signed(permission: str, weight: int = 1, orders: int = 0):
    """A dependency for a SIGNED endpoint needing ``permission`` (``TRADE`` or ``USER_DATA``); ``orders``:
    how many of the key's orders-per-10-seconds it spends. A new order is not one of these: it spends its
    budget with the order (``routes/orders.py``, ``submit_order``)."""

    async def dep(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> Caller:
        def body() -> Awaitable[bytes]:
            return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

        ip = client_ip(request, gw.settings.trusted_proxy_hops)
        caller = await authenticate(gw, header, request.url.query.encode(), body, permission, weight, orders, ip)
        await gw.limiter.spend(caller.budget, weight, orders)
        return caller

    return dep


async def keyed(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> Caller:
    """Binance's USER_STREAM security: the API key alone, which must carry a stream permission
    (``USER_DATA`` or ``USER_STREAM``): a trade-only key does not open the owner's private stream."""
    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    key, found = await key_of(header, gw, ip)
    budget = signed_budget(found.user_id, key)
    await gw.limiter.weight(budget, 2)
    if not found.permissions & apikeys.STREAM_PERMISSIONS:
        raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    return Caller(found.user_id, key, parse_params(request.url.query.encode(), b""), budget)


async def public(request: Request, gw: GatewayDep) -> dict[str, str]:
    """Public endpoints: weight by client IP; the parameters come from the query string only."""
    await gw.limiter.weight(public_budget(client_ip(request, gw.settings.trusted_proxy_hops)), 1)
    return parse_params(request.url.query.encode(), b"")


TradeCaller = Annotated[Caller, Depends(signed("TRADE"))]
DataCaller = Annotated[Caller, Depends(signed("USER_DATA", weight=5))]
KeyCaller = Annotated[Caller, Depends(keyed)]
PublicParams = Annotated[dict[str, str], Depends(public)]


def int_param(
    params: dict[str, str], name: str, default: int | None = None, lo: int = 0, hi: int = 2**62
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 19 or not DIGITS.fullmatch(raw.removeprefix("-")):
        raise ApiError(
            errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    value = int(raw)
    if value < lo or value > hi:
        raise ApiError(errors.ILLEGAL_CHARS, f"Parameter '{name}' out of range [{lo}, {hi}]: {value}.")
    return value
