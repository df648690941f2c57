"""``POST`` and ``DELETE /api/v3/order`` as plain ASGI routes: the gateway's hot path, without FastAPI's layers.

A new order through FastAPI passed a dozen middleware and router layers and the dependency solver before
any of its own work; on a 2-core machine they were a third of the gateway's CPU per order (py-spy,
``bench fleet --profile-service gateway``), and FastAPI's own entry (its telemetry check, Starlette's
error middleware) another 6% once the rest was gone. A cancel (a fifth of the soak's requests) through
FastAPI cost about three new orders on this path. ``OrderFastPath`` wraps the FastAPI app and routes these
two requests itself, straight to their handlers (``routes/orders.py``, ``submit_order`` and ``submit_cancel``),
the functions FastAPI's routes call too, so the answers, the errors and the rate limits are the same; only the
ASGI plumbing is here (headers, body chunks, the client's address). FastAPI keeps documenting the route in
the OpenAPI schema and serves everything else, lifespan included. ``RequestMetrics`` counts, times and
traces the requests it serves, as it does FastAPI's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared import overload
from shared.http import RequestMetrics, error_response

from .deps import Gateway, forwarded_ip, read_body
from .ratelimit import USED, used_headers
from .routes.orders import submit_cancel, submit_order

PATH = "/api/v3/order"
JSON = "application/json"


class _Route(NamedTuple):
    path: str  # what RequestMetrics labels the request with, as FastAPI's route would be


ROUTE = _Route(PATH)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client is gone, nothing to answer
            raise ClientDisconnect
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


class OrderFastPath:
    def __init__(self, api: FastAPI) -> None:
        self.api = api  # serves every other request; its state holds the Gateway once the lifespan ran
        self._metered = RequestMetrics(self._serve)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        used: dict[str, int] = {}  # filled by the rate limiter: Binance's X-MBX-USED-WEIGHT-1M and order count
        token = USED.set(used)

        async def send_used(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and used:
                message = {**message, "headers": [*message.get("headers", ()), *used_headers(used)]}
            await send(message)

        try:
            if scope["path"] == PATH and scope["method"] in ("POST", "DELETE"):
                scope["route"] = ROUTE
                await self._metered(scope, receive, send_used)
            else:
                await self.api(scope, receive, send_used)
        finally:
            USED.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            gw: Gateway = self.api.state.gateway
            if scope["method"] == "POST":
                answer = await self._new_order(gw, scope, receive)
            else:
                answer = await submit_cancel(
                    gw, _header(scope, b"x-mbx-apikey"), scope["query_string"], *_request(gw, scope, receive)
                )
            response = Response(orjson.dumps(answer), media_type=JSON)
        except ClientDisconnect:
            return
        except Exception as exc:  # every fault becomes Binance's error form, as FastAPI's handlers make it
            response = error_response(exc)
        await response(scope, receive, send)

    async def _new_order(self, gw: Gateway, scope: Scope, receive: Receive) -> dict[str, Any]:
        gate = gw.gate
        if gate is not None and not gate.admits():  # the fleet is behind: refused before any work, nothing spent
            raise overload.refuse("order backlog", gate.backlog_ms / 1000)
        return await submit_order(
            gw, _header(scope, b"x-mbx-apikey"), scope["query_string"], *_request(gw, scope, receive)
        )


def _request(gw: Gateway, scope: Scope, receive: Receive) -> tuple[Callable[[], Awaitable[bytes]], str]:
    """The request's body reader, and the caller's address as the gateway trusts it."""

    def body() -> Awaitable[bytes]:
        return read_body(_header(scope, b"content-length"), _chunks(receive), gw.settings.max_body_bytes)

    client = scope.get("client")
    peer = client[0] if client else "unknown"
    return body, forwarded_ip(peer, _header(scope, b"x-forwarded-for"), gw.settings.trusted_proxy_hops)
