"""Fan-out of Redis pub/sub channels to this replica's WebSocket clients.

One pub/sub connection per replica, subscribed to a channel while at least one local client wants it.
Each client has a bounded queue; a client that falls ``QUEUE_MAX`` messages behind is dropped (it can
reconnect and resynchronise from a snapshot), so a slow reader never slows the others or grows memory.

A message may carry several events, one per line (``sredis.EVENTS_SEPARATOR``: a settlement batch's
outcomes, a user's events of a batch); each is delivered on its own. An event that starts with
``tracing.MARK`` carries its order's trace: the hub strips it before anyone sees
the payload and, with tracing on, delivers it inside a span whose child is each client's WebSocket write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

from shared import redis as sredis
from shared import tracing

log = logging.getLogger(__name__)
QUEUE_MAX = 2000
DROPPED = Counter("spot_ws_dropped_clients_total", "WebSocket clients dropped for falling behind")
CONNECTIONS = Gauge("spot_ws_connections", "Open WebSocket connections")


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
        cache: aioredis.Redis,
        on_outcome: Callable[[bytes], None],
        channels: sredis.Channels,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.channels = channels
        self.queue_max = queue_max  # per client: how far behind it may fall before it is dropped
        self.subscribed = False
        self._pubsub = cache.pubsub(ignore_subscribe_messages=False)
        self._subs: dict[str, set[Subscriber]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._on_outcome = on_outcome
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """Readiness probe: raises while the outcomes channel is not subscribed (after a lost connection)."""
        if not self.subscribed:
            raise ConnectionError("redis pub/sub not subscribed")

    async def start(self) -> None:
        await self._pubsub.subscribe(self.channels.outcomes)
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()

    async def _read(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except (aioredis.ConnectionError, OSError) as exc:
                self.subscribed = False  # outcomes published until the resubscription would be missed
                log.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if msg is None:
                continue
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
            if msg["type"] == "subscribe":
                if channel == self.channels.outcomes:
                    self.subscribed = True  # redis-py resubscribes on reconnect; this is Redis confirming it
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
