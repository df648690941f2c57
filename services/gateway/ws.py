"""WebSocket entry: market streams (Binance's SUBSCRIBE protocol, raw and combined forms) and the listenKey
user stream; the connection machinery the WebSocket API (``wsapi.py``, ``/ws-api/v3``) shares.

Routes: ``/ws`` and ``/ws/<anything>`` (SUBSCRIBE protocol; ``/ws/<stream>[/<stream>...]`` subscribes at
once; ``/ws/<listenKey>`` is a user stream), ``/stream?streams=a/b`` (events wrapped as
``{"stream","data"}``).

Garbage is refused calmly, as Binance does, with no traceback: a binary frame closes the connection with
1003, a message over ``MAX_MESSAGE`` with 1009 (uvicorn's ``ws_max_size`` closes larger frames itself), more
than ``MAX_MESSAGES_PER_S`` messages in a second on a stream connection with 1008; malformed JSON and unknown
methods get Binance's error message and the connection stays open. Every way of subscribing (the path
``/ws/<streams>``, ``/stream?streams=``, SUBSCRIBE) counts against one cap of ``MAX_STREAMS`` per connection.
A pub/sub failure while subscribing closes the connection with 1011 (try again later), logged in one line.

Limits (issue 20): a stream connection takes at most ``MAX_MESSAGES_PER_S`` messages a second (Binance's 5 for
streams), a WS-API connection ``WS_API_MESSAGES_PER_S`` (its requests are bounded by REST's weights and order
counts, as on Binance: a trading client such as ccxt sends several at once); an IP opens at most
``ws_connections_per_5m`` connections per 5 minutes (Binance's 300), refused at the handshake. A user stream (a
listenKey or ``userDataStream.subscribe``) is watched by ``access.StreamGuard`` and ended when its listenKey,
key or user goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from shared import tracing
from shared.candles import INTERVALS, STREAM_OFFSET, parse_time_zone, stream_kind
from shared.errors import ApiError
from shared.lifecycle import now_ms

from .access import StreamGuard, Watched
from .deps import Gateway, client_ip
from .hub import CONNECTIONS, Hub, Subscriber
from .ratelimit import connection_budget
from .routes.userstream import listen_key, owner_of

log = logging.getLogger(__name__)
router = APIRouter()
STREAM = re.compile(
    r"^([a-z0-9]{2,20})@(depth(5|10|20)?(?:@(\d{1,6})ms)?|trade|aggTrade|kline_([0-9]{1,2}[smhdwM])(@\+08:00)?"
    r"|ticker|miniTicker|ticker_(?:1h|4h|1d)|bookTicker|avgPrice)$"
)
ALL_MARKETS = ("!ticker@arr", "!miniTicker@arr")  # streams of every symbol at once
ZONED_OFFSET = parse_time_zone(STREAM_OFFSET)
LISTEN_KEY = re.compile(r"^[0-9a-f]{64}$")
SLOW_DEPTH_MS = 1000  # a depth stream asking for this or slower gets the 1,000 ms one
MAX_STREAMS = 1024  # Binance: "a single connection can listen to a maximum of 1024 streams"
MAX_MESSAGE = 64 * 1024
MAX_MESSAGES_PER_S = 5  # Binance: a stream connection sending more is disconnected
WS_API_MESSAGES_PER_S = 50  # a bound on a WS-API connection's messages; its requests spend REST's weights
CONNECTION_WINDOW_S = 300  # Binance: 300 connections per 5 minutes per IP
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# Binance's close codes: 1003 unsupported data, 1008 policy violation, 1009 too big, 1011 server trouble
UNSUPPORTED, POLICY, TOO_BIG, TRY_LATER = 1003, 1008, 1009, 1011
# what a failing Redis pub/sub raises into a subscription: an outage, not a bug
HUB_FAILURES = (RedisError, ConnectionError, TimeoutError, OSError)


class TooManyStreams(Exception):
    """A subscription past ``MAX_STREAMS`` on one connection."""


def market_error(code: int, msg: str, req_id: Any = None) -> str:
    """Binance's reply to a bad message on a market-stream connection."""
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id}).decode()


def channel_of(stream: str, gw: Gateway) -> str | None:
    """The pub/sub channel of a stream name, or None if it is not one we serve."""
    if stream in ALL_MARKETS:
        return gw.hub.channels.stream(stream)
    m = STREAM.match(stream)
    if m is None or m.group(1).upper() not in gw.markets:
        return None
    kind = m.group(2)
    if kind.startswith("depth"):
        # two speeds, as Binance's: ``@depth`` and ``@depth@1000ms`` push every second, ``@depth@100ms`` (and any
        # faster ``@<n>ms``) every 100 ms; ``@depth5/10/20`` likewise
        fast = m.group(4) is not None and int(m.group(4)) < SLOW_DEPTH_MS
        kind = f"depth{m.group(3) or ''}{'@100ms' if fast else ''}"
    elif kind.startswith("kline_"):
        iv = INTERVALS.get(m.group(5))
        if iv is None:
            return None
        kind = stream_kind(iv, ZONED_OFFSET if m.group(6) else 0)  # a zone drawing UTC's candles reads UTC's
    return gw.hub.channels.stream(f"{m.group(1)}@{kind}")


class Session:
    """One WebSocket connection: its subscriptions and the task that writes to it."""

    def __init__(self, ws: WebSocket, hub: Hub, wrap: bool = False, user_wrap: int | None = None) -> None:
        self.ws, self.hub, self.wrap, self.user_wrap = ws, hub, wrap, user_wrap
        self.sub = Subscriber(hub.queue_max)
        self.streams: dict[str, str] = {}  # stream name -> channel
        self.channel_names: dict[str, str] = {}  # channel -> the stream name its events are wrapped with

    def room_for(self, streams: list[str]) -> bool:
        """Whether subscribing to ``streams`` keeps this connection within ``MAX_STREAMS``."""
        return len(self.streams.keys() | set(streams)) <= MAX_STREAMS

    async def add(self, stream: str, channel: str) -> None:
        if stream in self.streams:
            return
        if len(self.streams) >= MAX_STREAMS:
            raise TooManyStreams(f"{stream}: this connection has {len(self.streams)} streams, at most {MAX_STREAMS}")
        self.streams[stream] = channel
        self.channel_names[channel] = stream
        await self.hub.subscribe(channel, self.sub)

    async def remove(self, stream: str) -> None:
        channel = self.streams.pop(stream, None)
        if channel is None:
            return
        others = [name for name, ch in self.streams.items() if ch == channel]  # depth@500ms and @100ms share one
        if others:
            self.channel_names[channel] = others[0]
            return
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


async def close(ws: WebSocket, code: int, reason: str) -> None:
    """Close, if the client has not gone already."""
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await ws.close(code=code, reason=reason)


class MessageRate:
    """At most ``MAX_MESSAGES_PER_S`` messages in any second: the times of the last few are kept."""

    def __init__(self, per_second: int = MAX_MESSAGES_PER_S) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque(maxlen=per_second)

    def allows(self, now: float) -> bool:
        if len(self._times) == self._times.maxlen and now - self._times[0] < 1.0:
            return False
        self._times.append(now)
        return True


async def admitted(ws: WebSocket, gw: Gateway) -> bool:
    """Accept the handshake if the client's IP has connections left in its 5 minutes; refuse it (403)
    otherwise."""
    ip = client_ip(ws, gw.settings.trusted_proxy_hops)
    try:
        limit = gw.settings.ws_connections_per_5m
        await gw.limiter.spend_limited(connection_budget(ip), limit, "WebSocket connections", CONNECTION_WINDOW_S)
    except ApiError:
        await ws.close(code=POLICY, reason="too many connections from this IP")
        return False
    await ws.accept()
    return True


def guard_of(ws: WebSocket) -> StreamGuard:
    guard: StreamGuard = ws.app.state.guard
    return guard


async def run_session(ws: WebSocket, session: Session, handle: Any, rate: MessageRate) -> None:
    """Read messages until the client goes, the writer stops, or a message breaks the rules."""
    CONNECTIONS.inc()
    pump = asyncio.create_task(session.pump())
    try:
        while True:
            recv = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({recv, pump}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                recv.cancel()
                return
            message = recv.result()
            if message["type"] == "websocket.disconnect":
                return
            if not rate.allows(time.monotonic()):
                await close(ws, POLICY, f"too many messages: at most {rate.per_second} a second")
                return
            text = message.get("text")
            if text is None:
                await close(ws, UNSUPPORTED, "binary frames are not accepted: send JSON text")
                return
            if len(text) > MAX_MESSAGE:
                await close(ws, TOO_BIG, f"message of {len(text)} characters, at most {MAX_MESSAGE}")
                return
            if handle is not None:
                await handle(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send: nothing to tell it
    except HUB_FAILURES as exc:
        log.warning("websocket closed: pub/sub failed while subscribing (%s: %s)", type(exc).__name__, exc)
        await close(ws, TRY_LATER, "stream service unavailable, try again later")
    finally:
        CONNECTIONS.dec()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        with contextlib.suppress(*HUB_FAILURES):
            await session.close()


def _request(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The message as an object, or Binance's error for it."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, market_error(3, f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(msg, dict):
        return None, market_error(2, "Invalid request: expected an object with method, params and id")
    if "method" not in msg:
        return None, market_error(2, "Invalid request: missing field `method`", msg.get("id"))
    if msg["method"] not in METHODS:
        variant = str(msg["method"])[:60]
        expected = ", ".join(f"`{m}`" for m in METHODS)
        reason = f"Invalid request: unknown variant `{variant}`, expected one of {expected}"
        return None, market_error(2, reason, msg.get("id"))
    return msg, None


async def _market_protocol(ws: WebSocket, session: Session, gw: Gateway) -> Any:
    async def handle(text: str) -> None:
        msg, error = _request(text)
        if msg is None:
            assert error is not None
            await ws.send_text(error)
            return
        method, req_id = msg["method"], msg.get("id")
        params = msg.get("params") or []
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list):
                await ws.send_text(market_error(2, "Invalid request: params must be a list of stream names", req_id))
                return
            streams = [str(stream) for stream in params]
            if method == "SUBSCRIBE" and not session.room_for(streams):
                reason = f"Invalid request: too many streams: a connection listens to at most {MAX_STREAMS}"
                await ws.send_text(market_error(2, reason, req_id))
                return
            channels = {stream: channel_of(stream, gw) for stream in streams}
            unknown = [stream for stream, channel in channels.items() if channel is None]
            if unknown:
                await ws.send_text(market_error(2, f"Invalid request: unknown stream {unknown[0][:60]}", req_id))
                return
            for stream, channel in channels.items():
                if method == "SUBSCRIBE":
                    await session.add(stream, channel or "")
                else:
                    await session.remove(stream)
            await ws.send_text(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            await ws.send_text(orjson.dumps({"result": sorted(session.streams), "id": req_id}).decode())
        else:  # SET_PROPERTY, GET_PROPERTY
            await ws.send_text(orjson.dumps({"result": None, "id": req_id}).decode())

    return handle


async def _subscribe_path(ws: WebSocket, session: Session, gw: Gateway, streams: list[str]) -> bool:
    """The streams a URL names, all or none; False when the connection was closed instead."""
    if not session.room_for(streams):
        await close(ws, POLICY, f"too many streams: {len(streams)}, at most {MAX_STREAMS} a connection")
        return False
    return await _subscribe_all(ws, session, {stream: channel_of(stream, gw) for stream in streams})


async def _subscribe_all(ws: WebSocket, session: Session, channels: dict[str, str | None]) -> bool:
    """Subscribe to every (stream, channel); False when the connection was closed instead."""
    if any(channel is None for channel in channels.values()):
        await close(ws, POLICY, "unknown stream")
        return False
    try:
        for stream, channel in channels.items():
            await session.add(stream, channel or "")
    except HUB_FAILURES as exc:
        log.warning("websocket closed: pub/sub failed while subscribing (%s: %s)", type(exc).__name__, exc)
        with contextlib.suppress(*HUB_FAILURES):
            await session.close()
        await close(ws, TRY_LATER, "stream service unavailable, try again later")
        return False
    return True


@router.websocket("/ws")
@router.websocket("/ws/{path:path}")
async def market_ws(ws: WebSocket, path: str = "") -> None:
    gw: Gateway = ws.app.state.gateway
    if not await admitted(ws, gw):
        return
    session = Session(ws, gw.hub)
    if LISTEN_KEY.match(path):
        owner = await gw.cache.get(listen_key(path))
        if owner is None:
            await ws.close(code=1008, reason="invalid listenKey")
            return
        user_id, api_key = owner_of(owner)

        async def expired(reason: str) -> None:
            event = {"e": "listenKeyExpired", "E": now_ms(), "listenKey": path}
            await ws.send_text(orjson.dumps(event).decode())
            await close(ws, 1000, reason)

        watched = Watched(api_key, user_id, path, expired)
        if await _subscribe_all(ws, session, {"user": gw.hub.channels.user(user_id)}):
            guard_of(ws).watch(watched)
            try:
                await run_session(ws, session, None, MessageRate())
            finally:
                guard_of(ws).unwatch(watched)
        return
    if await _subscribe_path(ws, session, gw, [s for s in path.split("/") if "@" in s]):
        await run_session(ws, session, await _market_protocol(ws, session, gw), MessageRate())


@router.websocket("/stream")
async def combined_ws(ws: WebSocket) -> None:
    gw: Gateway = ws.app.state.gateway
    if not await admitted(ws, gw):
        return
    session = Session(ws, gw.hub, wrap=True)
    if await _subscribe_path(ws, session, gw, [s for s in ws.query_params.get("streams", "").split("/") if s]):
        await run_session(ws, session, await _market_protocol(ws, session, gw), MessageRate())
