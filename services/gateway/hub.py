"""Fan-out of Redis pub/sub channels to this replica's WebSocket clients.

One pub/sub connection per replica, subscribed to a channel while at least one local client wants it.
Each client has a bounded queue; a client that falls ``QUEUE_MAX`` messages behind is dropped (it can
reconnect and resynchronise from a snapshot), so a slow reader never slows the others or grows memory.

A message may carry several events, one per line (``sredis.EVENTS_SEPARATOR``: a settlement batch's
outcomes, a user's events of a batch); each is delivered on its own. An event that starts with
``tracing.MARK`` carries its order's trace: the hub strips it before anyone sees
the payload and, with tracing on, delivers it inside a span whose child is each client's WebSocket write.

The reader is supervised: whatever stops it (a lost connection, a bug in a delivery), it is started again on
a new pub/sub connection subscribed to every channel in use, and the gateway is not ready meanwhile (no
outcome would reach a waiting REST call). A connection that goes silent without closing (a black hole) is
found by pinging it when idle: nothing heard for ``SILENT_MAX_S`` counts as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

from shared import redis as sredis
from shared import resilience, tracing

log = logging.getLogger(__name__)
QUEUE_MAX = 2000
DROPPED = Counter("spot_ws_dropped_clients_total", "WebSocket clients dropped for falling behind")
CONNECTIONS = Gauge("spot_ws_connections", "Open WebSocket connections")
RESTARTS = Counter("spot_pubsub_reader_restarts_total", "Times the gateway's pub/sub reader was started again")
READ_WAIT_S = 1.0  # one wait for a message; the silence checks run between waits
PING_AFTER_S = 2.0  # idle this long: ping, so a live connection always has something to say
SILENT_MAX_S = 6.0  # nothing heard this long, pong included: the connection is dead without having closed
RESTART_S, RESTART_MAX_S = 0.5, 5.0  # backoff between reader restarts
CLOSE_S = 2.0  # how long closing a dead pub/sub connection may take


class Subscriber:
    """One WebSocket client's inbox: (channel, payload) pairs, at most ``queue_max`` waiting.

    A deque and one future that ``offer`` resolves while the writer waits: the writer takes what is there
    without awaiting, and waits for the next event or the overflow with a single future, not two tasks
    and an ``asyncio.wait`` per event (6% of the gateway's CPU with the user streams of 1,000 orders/s).
    """

    def __init__(self, queue_max: int = QUEUE_MAX) -> None:
        self.items: deque[tuple[str, bytes]] = deque()
        self.queue_max = queue_max
        self.overflowed = False  # fell ``queue_max`` behind: the writer closes the connection
        self.traced: dict[int, Any] = {}  # id(payload) -> the span its WebSocket write continues
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, channel: str, payload: bytes, span: Any = None) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.queue_max:
            DROPPED.inc()
            self.overflowed = True
        else:
            self.items.append((channel, payload))
            if span is not None:
                self.traced[id(payload)] = span
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def next(self) -> tuple[str, bytes] | None:
        """The oldest event, waiting for one if need be; None once the client has fallen too far behind."""
        while not self.overflowed:
            if self.items:
                return self.items.popleft()
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            await waiter
        return None


class Hub:
    def __init__(
        self,
        cache: sredis.Client,
        on_outcome: Callable[[bytes], None],
        channels: sredis.Channels,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.channels = channels
        self.queue_max = queue_max  # per client: how far behind it may fall before it is dropped
        self.subscribed = False  # Redis confirmed the outcomes channel on the current connection
        self._cache = cache
        self._pubsub = cache.pubsub(ignore_subscribe_messages=False)
        self._subs: dict[str, set[Subscriber]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._on_outcome = on_outcome
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._heard_at = time.monotonic()  # the last reply of any kind on the current connection

    async def check(self) -> None:
        """Readiness probe: raises while the reader is down or its connection has gone silent."""
        if self._task is None or self._task.done():
            raise ConnectionError("redis pub/sub reader not running")
        if not self.subscribed:
            raise ConnectionError("redis pub/sub not subscribed")
        silent = time.monotonic() - self._heard_at
        if silent > SILENT_MAX_S:
            raise ConnectionError(f"redis pub/sub silent for {silent:.0f}s")

    async def start(self) -> None:
        await self._pubsub.subscribe(self.channels.outcomes)
        self._heard_at = time.monotonic()
        self._task = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close(self._pubsub)

    async def _supervise(self) -> None:
        """Run the reader; when it stops, start it again on a new connection, with backoff."""
        delay = RESTART_S
        while True:
            began = time.monotonic()
            try:
                await self._read()
            except Exception as exc:
                self.subscribed = False  # not ready: outcomes published until the new subscription are missed
                RESTARTS.inc()
                if time.monotonic() - began > RESTART_MAX_S * 4:
                    delay = RESTART_S  # it read a while: a new failure, not the same one
                if resilience.outage(exc) is None:
                    log.error("pub/sub reader failed; restarting in %.1fs", delay, exc_info=True)
                else:
                    why = f"{type(exc).__name__}: {exc}"
                    log.warning("pub/sub connection lost (%s); reconnecting in %.1fs", why, delay)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_MAX_S)
                try:
                    await self._reconnect()
                    break
                except Exception as exc:  # still unreachable: try again after the next delay
                    log.warning("pub/sub reconnect failed (%s: %s)", type(exc).__name__, exc)

    async def _reconnect(self) -> None:
        """A new pub/sub connection subscribed to the outcomes and every channel a client wants."""
        async with self._lock:
            old, self._pubsub = self._pubsub, self._cache.pubsub(ignore_subscribe_messages=False)
            await self._close(old)
            self._heard_at = time.monotonic()
            await self._pubsub.subscribe(self.channels.outcomes, *self._subs)

    @staticmethod
    async def _close(pubsub: aioredis.client.PubSub) -> None:
        with contextlib.suppress(Exception):  # a dead connection may fail to close; it is dropped either way
            await asyncio.wait_for(pubsub.aclose(), CLOSE_S)

    async def _read(self) -> None:
        """Deliver messages until the connection fails or stays silent past ``SILENT_MAX_S``."""
        pubsub = self._pubsub
        pinged_at = 0.0
        while True:
            msg = await pubsub.get_message(timeout=READ_WAIT_S)
            now = time.monotonic()
            if msg is None:
                if now - self._heard_at > SILENT_MAX_S:
                    raise ConnectionError(f"no reply from redis pub/sub for {now - self._heard_at:.0f}s")
                if now - max(self._heard_at, pinged_at) > PING_AFTER_S:
                    pinged_at = now
                    await pubsub.ping()
                continue
            self._heard_at = now
            if msg["type"] == "pong":
                continue
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
            if msg["type"] == "subscribe":
                if channel == self.channels.outcomes:
                    self.subscribed = True  # Redis confirming it on this connection
                ev = self._confirmed.get(channel)
                if ev:
                    ev.set()
                continue
            if msg["type"] != "message":
                continue
            for event in msg["data"].split(sredis.EVENTS_SEPARATOR):  # a batch's events of the channel, in order
                self._deliver(channel, event)

    def _deliver(self, channel: str, data: bytes) -> None:
        if data and data[0] == tracing.MARK:
            data, tp = tracing.unwrap(data)
            span = None if tp is None else tracing.received(tp, self._span_name(channel), {"spot.channel": channel})
            if span is not None:
                self._deliver_traced(channel, data, span)
                return
        if channel == self.channels.outcomes:
            self._on_outcome(data)
            return
        for sub in self._subs.get(channel, ()):
            sub.offer(channel, data)

    def _span_name(self, channel: str) -> str:
        if channel == self.channels.outcomes:
            return "receive order-outcome"
        return "push user stream" if channel.startswith("user:") else "push market stream"

    def _deliver_traced(self, channel: str, data: bytes, span: Any) -> None:
        """The same delivery as untraced, inside the message's span (ended once it is handed on)."""
        with tracing.activated(span):
            if channel == self.channels.outcomes:
                self._on_outcome(data)
            else:
                subs = self._subs.get(channel, ())
                span.set_attribute("spot.subscribers", len(subs))
                for sub in subs:
                    sub.offer(channel, data, span)
        span.end()

    async def subscribe(self, channel: str, sub: Subscriber) -> None:
        """Returns once Redis confirmed the subscription, so nothing published afterwards is missed."""
        async with self._lock:
            subs = self._subs.get(channel)
            if subs is None:
                subs = self._subs[channel] = set()
                ev = self._confirmed[channel] = asyncio.Event()
                await self._pubsub.subscribe(channel)
            else:
                ev = self._confirmed[channel]
            subs.add(sub)
        await asyncio.wait_for(ev.wait(), 5)

    async def unsubscribe(self, channel: str, sub: Subscriber) -> None:
        async with self._lock:
            subs = self._subs.get(channel)
            if subs is None:
                return
            subs.discard(sub)
            if not subs:
                del self._subs[channel]
                self._confirmed.pop(channel, None)
                await self._pubsub.unsubscribe(channel)
