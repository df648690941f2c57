"""What every route needs: the gateway's connections and the caller, authenticated and rate limited.

``signed`` implements Binance's SIGNED endpoint security (API key, HMAC signature over the raw request,
timestamp window, permission); ``keyed`` the USER_STREAM security (API key only).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from shared import errors
from shared.config import Settings
from shared.domain import Market
from shared.errors import ApiError
from shared.lifecycle import now_ms

from .auth import check_timestamp, parse_params, split_signature, verify
from .hub import Hub
from .ingest import Ingest
from .outcomes import Outcomes
from .ratelimit import RateLimiter

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
    cache: aioredis.Redis
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


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit``: a chunked body announces no length to refuse up front."""
    too_large = ApiError(errors.TOO_MANY_PARAMETERS, f"Request body larger than {limit} bytes.", 413)
    length = request.headers.get("content-length")
    if length and (not DIGITS.fullmatch(length) or int(length) > limit):
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
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


def signed(permission: str, weight: int = 1, orders: int = 0):
    """A dependency for a SIGNED endpoint needing ``permission`` (``TRADE`` or ``USER_DATA``); ``orders``:
    how many of the key's orders-per-10-seconds it spends (a new order: 1), in the same Redis round trip."""

    async def dep(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> Caller:
        key, found = await _key_of(header, gw)
        await gw.limiter.spend(f"k:{key}", weight, orders)
        query = request.url.query.encode()
        body = await read_body(request, gw.settings.max_body_bytes)
        payload, signature = split_signature(query, body)
        if not verify(found.secret, payload, signature):
            raise ApiError(errors.INVALID_SIGNATURE, "Signature for this request is not valid.", 401)
        params = parse_params(query, body)
        check_timestamp(params, now_ms(), gw.settings.recv_window_max_ms)
        if permission not in found.permissions:
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
        return Caller(found.user_id, key, params)

    return dep


async def keyed(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> Caller:
    key, found = await _key_of(header, gw)
    await gw.limiter.weight(f"k:{key}", 2)
    return Caller(found.user_id, key, parse_params(request.url.query.encode(), b""))


async def public(request: Request, gw: GatewayDep) -> dict[str, str]:
    """Public endpoints: weight by client IP; the parameters come from the query string only."""
    await gw.limiter.weight(f"ip:{client_ip(request)}", 1)
    return parse_params(request.url.query.encode(), b"")


TradeCaller = Annotated[Caller, Depends(signed("TRADE"))]
OrderCaller = Annotated[Caller, Depends(signed("TRADE", orders=1))]
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
