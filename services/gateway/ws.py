"""WebSocket entry: market streams (Binance's SUBSCRIBE protocol, raw and combined forms), the listenKey
user stream, and the WS-API ``userDataStream.subscribe.signature`` (ccxt >= 4.5.6).

Routes: ``/ws`` and ``/ws/<anything>`` (SUBSCRIBE protocol; ``/ws/<stream>[/<stream>...]`` subscribes at
once; ``/ws/<listenKey>`` is a user stream), ``/stream?streams=a/b`` (events wrapped as
``{"stream","data"}``), ``/ws-api/v3``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from shared import tracing
from shared.lifecycle import now_ms

from .auth import check_timestamp, verify, ws_api_payload
from .deps import Gateway
from .hub import CONNECTIONS, Hub, Subscriber
from .routes.userstream import listen_key

router = APIRouter()
STREAM = re.compile(r"^([a-z0-9]{2,20})@(depth(@\d+ms)?|trade|aggTrade|kline_1m)$")
LISTEN_KEY = re.compile(r"^[0-9a-f]{64}$")
MAX_STREAMS = 200
MAX_MESSAGE = 64 * 1024


def channel_of(stream: str, gw: Gateway) -> str | None:
    """The pub/sub channel of a stream name, or None if it is not one we serve."""
    m = STREAM.match(stream)
    if m is None or m.group(1).upper() not in gw.markets:
        return None
    kind = "depth" if m.group(2).startswith("depth") else m.group(2)
    return gw.hub.channels.stream(f"{m.group(1)}@{kind}")


class Session:
    """One WebSocket connection: its subscriptions and the task that writes to it."""

    def __init__(self, ws: WebSocket, hub: Hub, wrap: bool = False, user_wrap: int | None = None) -> None:
        self.ws, self.hub, self.wrap, self.user_wrap = ws, hub, wrap, user_wrap
        self.sub = Subscriber(hub.queue_max)
        self.streams: dict[str, str] = {}  # stream name -> channel
        self.channel_names: dict[str, str] = {}

    async def add(self, stream: str, channel: str) -> None:
        if stream in self.streams:
            return
        self.streams[stream] = channel
        self.channel_names[channel] = stream
        await self.hub.subscribe(channel, self.sub)

    async def remove(self, stream: str) -> None:
        channel = self.streams.pop(stream, None)
        if channel is not None:
            self.channel_names.pop(channel, None)
            await self.hub.unsubscribe(channel, self.sub)

    async def close(self) -> None:
        for stream in list(self.streams):
            await self.remove(stream)

    async def pump(self) -> None:
        """Write queued events until the client goes away or falls too far behind."""
        while True:
            item = await self.sub.next()
            if item is None:
                await self.ws.close(code=1008, reason="client too slow")
                return
            channel, payload = item
            span = self.sub.traced.pop(id(payload), None) if self.sub.traced else None
            started = time.time_ns() if span is not None else 0
            if self.wrap:
                stream = self.channel_names.get(channel, channel)
                payload = b'{"stream":' + orjson.dumps(stream) + b',"data":' + payload + b"}"
            elif self.user_wrap is not None:
                payload = b'{"subscriptionId":' + str(self.user_wrap).encode() + b',"event":' + payload + b"}"
            await self.ws.send_text(payload.decode())
            if span is not None:
                tracing.record(span, "send websocket", started, time.time_ns())


async def _run(ws: WebSocket, session: Session, handle: Any) -> None:
    CONNECTIONS.inc()
    pump = asyncio.create_task(session.pump())
    try:
        while True:
            recv = asyncio.ensure_future(ws.receive_text())
            done, _ = await asyncio.wait({recv, pump}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                recv.cancel()
                return
            text = recv.result()
            if len(text) > MAX_MESSAGE:
                await ws.close(code=1009, reason="message too big")
                return
            if handle is not None:
                await handle(text)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        CONNECTIONS.dec()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        await session.close()


async def _market_protocol(ws: WebSocket, session: Session, gw: Gateway) -> Any:
    async def handle(text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, req_id = msg.get("method"), msg.get("id")
        except (orjson.JSONDecodeError, AttributeError):
            await ws.send_text('{"error":{"code":2,"msg":"Invalid JSON"},"id":null}')
            return
        params = msg.get("params") or []
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or len(params) + len(session.streams) > MAX_STREAMS:
                await ws.send_text(
                    orjson.dumps({"error": {"code": 2, "msg": "Invalid request: params"}, "id": req_id}).decode()
                )
                return
            for stream in params:
                channel = channel_of(str(stream), gw)
                if channel is None:
                    await ws.send_text(
                        orjson.dumps(
                            {
                                "error": {"code": 2, "msg": f"Invalid request: unknown stream {str(stream)[:60]}"},
                                "id": req_id,
                            }
                        ).decode()
                    )
                    return
            for stream in params:
                if method == "SUBSCRIBE":
                    await session.add(str(stream), channel_of(str(stream), gw) or "")
                else:
                    await session.remove(str(stream))
            await ws.send_text(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            await ws.send_text(orjson.dumps({"result": sorted(session.streams), "id": req_id}).decode())
        elif method == "SET_PROPERTY" or method == "GET_PROPERTY":
            await ws.send_text(orjson.dumps({"result": None, "id": req_id}).decode())
        else:
            await ws.send_text(
                orjson.dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": req_id}).decode()
            )

    return handle


@router.websocket("/ws")
@router.websocket("/ws/{path:path}")
async def market_ws(ws: WebSocket, path: str = "") -> None:
    gw: Gateway = ws.app.state.gateway
    await ws.accept()
    session = Session(ws, gw.hub)
    if LISTEN_KEY.match(path):
        owner = await gw.cache.get(listen_key(path))
        if owner is None:
            await ws.close(code=1008, reason="invalid listenKey")
            return
        await session.add("user", gw.hub.channels.user(int(owner)))
        await _run(ws, session, None)
        return
    for stream in [s for s in path.split("/") if "@" in s]:
        channel = channel_of(stream, gw)
        if channel is None:
            await ws.close(code=1008, reason="unknown stream")
            return
        await session.add(stream, channel)
    await _run(ws, session, await _market_protocol(ws, session, gw))


@router.websocket("/stream")
async def combined_ws(ws: WebSocket) -> None:
    gw: Gateway = ws.app.state.gateway
    await ws.accept()
    session = Session(ws, gw.hub, wrap=True)
    for stream in [s for s in ws.query_params.get("streams", "").split("/") if s]:
        channel = channel_of(stream, gw)
        if channel is None:
            await ws.close(code=1008, reason="unknown stream")
            return
        await session.add(stream, channel)
    await _run(ws, session, await _market_protocol(ws, session, gw))


@router.websocket("/ws-api/v3")
async def ws_api(ws: WebSocket) -> None:
    gw: Gateway = ws.app.state.gateway
    await ws.accept()
    session = Session(ws, gw.hub, user_wrap=0)

    async def reply(req_id: Any, result: Any = None, error: tuple[int, str] | None = None, status: int = 200) -> None:
        body: dict[str, Any] = {"id": req_id, "status": status if error is None else 400}
        if error:
            body["error"] = {"code": error[0], "msg": error[1]}
        else:
            body["result"] = result
        await ws.send_text(orjson.dumps(body).decode())

    async def handle(text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, req_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        except (orjson.JSONDecodeError, AttributeError):
            await reply(None, error=(-1100, "Malformed request."))
            return
        if method == "ping":
            await reply(req_id, {})
        elif method == "time":
            await reply(req_id, {"serverTime": now_ms()})
        elif method == "userDataStream.subscribe.signature":
            if not isinstance(params, dict):
                await reply(req_id, error=(-1100, "Malformed params."))
                return
            found = await gw.api_key(str(params.get("apiKey", ""))[:128])
            if found is None or not found.active:
                await reply(req_id, error=(-2015, "Invalid API-key, IP, or permissions for action."))
                return
            if not verify(found.secret, ws_api_payload(params), str(params.get("signature", ""))):
                await reply(req_id, error=(-1022, "Signature for this request is not valid."))
                return
            try:
                check_timestamp({k: str(v) for k, v in params.items()}, now_ms(), gw.settings.recv_window_max_ms)
            except Exception as exc:
                await reply(req_id, error=(getattr(exc, "code", -1021), getattr(exc, "msg", "Bad timestamp.")))
                return
            await session.add("user", gw.hub.channels.user(found.user_id))
            await reply(req_id, {"subscriptionId": 0})
        elif method == "userDataStream.unsubscribe":
            await session.remove("user")
            await reply(req_id, {})
        else:
            await reply(req_id, error=(-1100, "Unknown method."))

    await _run(ws, session, handle)
