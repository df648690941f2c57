"""What every route needs: the gateway's connections and the caller, authenticated and rate limited.

``signed`` implements Binance's SIGNED endpoint security (API key, HMAC signature over the raw request,
timestamp window, permission); ``keyed`` the USER_STREAM security (API key only). ``authenticate`` is the
SIGNED check itself, shared with the plain ASGI route for new orders (``fastpath.py``).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from shared import errors
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.errors import ApiError
from shared.lifecycle import now_ms

from .auth import check_timestamp, parse_params, split_signature, verify
from .hub import Hub
from .ingest import Ingest
from .outcomes import Outcomes
from .ratelimit import RateLimiter, public_budget, signed_budget

KEY_CACHE_S = 30.0
BAD_KEY = "Invalid API-key, IP, or permissions for action."
DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts '²', which int() refuses


@dataclass(frozen=True, slots=True)
class ApiKey:
    user_id: int
    secret: str
    permissions: frozenset[str]
    active: bool


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
    _keys: dict[str, tuple[float, ApiKey | None]]

    async def api_key(self, key: str) -> ApiKey | None:
        hit = self._keys.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        row = await self.db.fetchrow(
            "SELECT k.user_id, k.secret, k.permissions, u.status FROM api_keys k JOIN users u USING (user_id) "
            "WHERE k.api_key = $1",
            key,
        )
        found = (
            None
            if row is None
            else ApiKey(row["user_id"], row["secret"], frozenset(row["permissions"]), row["status"] == "ACTIVE")
        )
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[key] = (time.monotonic() + KEY_CACHE_S, found)
        return found

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


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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


async def _key_of(key: str | None, gw: Gateway) -> tuple[str, ApiKey]:
    if not key or len(key) > 128:
        raise ApiError(errors.BAD_API_KEY_FMT, "API-key format invalid.", 401)
    found = await gw.api_key(key)
    if found is None or not found.active:
        raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    return key, found


async def authenticate(
    gw: Gateway, header: str | None, query: bytes, body: BodyReader, permission: str, weight: int, orders: int
) -> Caller:
    """The SIGNED caller, who has spent nothing yet if accepted: the caller spends ``weight`` (and
    ``orders``) next, in one Redis call with what else it needs. A refusal once the key is known spends
    them first, so an exhausted budget answers with its 429 before anything else, as Binance does."""
    key, found = await _key_of(header, gw)
    budget = signed_budget(found.user_id, key)
    try:
        raw = await body()
        payload, signature = split_signature(query, raw)
        if not verify(found.secret, payload, signature):
            raise ApiError(errors.INVALID_SIGNATURE, "Signature for this request is not valid.", 401)
        params = parse_params(query, raw)
        check_timestamp(params, now_ms(), gw.settings.recv_window_max_ms)
        if permission not in found.permissions:
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    except ApiError:
        await gw.limiter.spend(budget, weight, orders)
        raise
    return Caller(found.user_id, key, params, budget)


def signed(permission: str, weight: int = 1, orders: int = 0, spend: bool = True):
    """A dependency for a SIGNED endpoint needing ``permission`` (``TRADE`` or ``USER_DATA``); ``orders``:
    how many of the key's orders-per-10-seconds it spends (a new order: 1). ``spend`` False: the route
    spends them itself, with what else it asks of Redis (a new order: ``ingest.Budget``)."""

    async def dep(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> Caller:
        def body() -> Awaitable[bytes]:
            return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

        caller = await authenticate(gw, header, request.url.query.encode(), body, permission, weight, orders)
        if spend:
            await gw.limiter.spend(caller.budget, weight, orders)
        return caller

    return dep


async def keyed(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> Caller:
    key, found = await _key_of(header, gw)
    budget = signed_budget(found.user_id, key)
    await gw.limiter.weight(budget, 2)
    return Caller(found.user_id, key, parse_params(request.url.query.encode(), b""), budget)


async def public(request: Request, gw: GatewayDep) -> dict[str, str]:
    """Public endpoints: weight by client IP; the parameters come from the query string only."""
    await gw.limiter.weight(public_budget(client_ip(request)), 1)
    return parse_params(request.url.query.encode(), b"")


TradeCaller = Annotated[Caller, Depends(signed("TRADE"))]
OrderCaller = Annotated[Caller, Depends(signed("TRADE", orders=1, spend=False))]  # spent with the order: ingest.Budget
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
