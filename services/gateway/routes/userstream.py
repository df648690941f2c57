"""The legacy listenKey user data stream (ccxt <= 4.5.5): create, keep alive, close.

A listen key lives in Redis for an hour and is refreshed by PUT; ``/ws/<listenKey>`` then streams the
owner's events. Creating one needs a key with a stream permission (``deps.keyed``). The listenKey
remembers the API key it was made with, so its stream ends when that key is revoked (``access.py``), as it
does when the listenKey expires or is deleted.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter

from shared import errors
from shared.errors import ApiError

from ..deps import GatewayDep, KeyCaller
from . import spec

router = APIRouter(prefix="/api/v3", responses=spec.ERRORS)
LISTEN_KEY_TTL_S = 3600


def listen_key(k: str) -> str:
    return f"listenkey:{k}"


def owner_of(value: bytes | str) -> tuple[int, str]:
    """(user id, API key) of a listenKey's stored value ``"<user id> <api key>"``."""
    text = value.decode() if isinstance(value, bytes) else value
    user, _, api_key = text.partition(" ")
    return int(user), api_key


@router.post("/userDataStream", **spec.returns(spec.ListenKey))
async def create(gw: GatewayDep, caller: KeyCaller) -> dict[str, Any]:
    k = secrets.token_hex(32)
    await gw.cache.set(listen_key(k), f"{caller.user_id} {caller.api_key}", ex=LISTEN_KEY_TTL_S)
    return {"listenKey": k}


async def _owned(gw: GatewayDep, caller: KeyCaller) -> str:
    k = caller.params.get("listenKey", "")
    if not k:
        raise errors.mandatory("listenKey")
    owner = await gw.cache.get(listen_key(k[:80]))
    if owner is None or owner_of(owner)[0] != caller.user_id:
        raise ApiError(errors.INVALID_LISTEN_KEY, "This listenKey does not exist.")
    return k


@router.put("/userDataStream", **spec.returns(spec.Empty), openapi_extra=spec.in_query(spec.LISTEN_KEY))
async def keepalive(gw: GatewayDep, caller: KeyCaller) -> dict[str, Any]:
    await gw.cache.expire(listen_key(await _owned(gw, caller)), LISTEN_KEY_TTL_S)
    return {}


@router.delete("/userDataStream", **spec.returns(spec.Empty), openapi_extra=spec.in_query(spec.LISTEN_KEY))
async def close(gw: GatewayDep, caller: KeyCaller) -> dict[str, Any]:
    await gw.cache.delete(listen_key(await _owned(gw, caller)))
    return {}
