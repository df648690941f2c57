"""Streams follow their key: a user data stream ends within a second of its listenKey expiring or being
deleted, or of its API key being revoked, restricted or its user disabled, on every gateway replica.

``spot admin key`` publishes each change on ``Channels.access`` (``shared.apikeys``); every replica drops
its cached copy at once (``Gateway.forget``) and re-checks its open streams. A listenKey's expiry is not
published (Redis drops it), so the open streams are also re-checked every ``CHECK_S``: one pipelined
``EXISTS`` for all the listenKeys a replica streams, and the keys from the replica's cache. An ended
stream is told as Binance tells it (``listenKeyExpired`` on a listenKey connection, then closed;
``eventStreamTerminated`` on a WS-API subscription) before it is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared import apikeys

from .deps import Gateway
from .hub import Subscriber
from .routes.userstream import listen_key

log = logging.getLogger(__name__)
CHECK_S = 0.5  # an expired listenKey's stream ends within this (and the check's round trip)


@dataclass(eq=False)
class Watched:
    """One open user stream: what it was opened with, and how to end it."""

    api_key: str
    user_id: int
    listen_key: str | None
    end: Callable[[str], Awaitable[None]]  # called once, with the reason
    ended: bool = field(default=False)


class StreamGuard:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.watched: set[Watched] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._sub = Subscriber(10_000)

    async def start(self) -> None:
        await self.gw.hub.subscribe(self.gw.hub.channels.access, self._sub)
        self._listener = asyncio.create_task(self._listen())
        self._task = asyncio.create_task(self._guard())

    async def stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def watch(self, stream: Watched) -> None:
        self.watched.add(stream)

    def unwatch(self, stream: Watched) -> None:
        self.watched.discard(stream)

    async def _listen(self) -> None:
        while True:
            item = await self._sub.next()
            if item is None:  # fell behind (cannot happen at this size): drop every cached key
                self.gw.forget(b"")
                self._sub = Subscriber(10_000)
                await self.gw.hub.subscribe(self.gw.hub.channels.access, self._sub)
                continue
            self.gw.forget(item[1])
            self._changed.set()

    async def _guard(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), CHECK_S)
            self._changed.clear()
            try:
                await self.check()
            except Exception as exc:  # Redis or Postgres away: keep the streams, check again next round
                log.warning("user-stream check failed (%s: %s)", type(exc).__name__, exc)

    async def check(self) -> None:
        streams = [s for s in self.watched if not s.ended]
        if not streams:
            return
        listening = [s for s in streams if s.listen_key is not None]
        if listening:
            async with self.gw.cache.pipeline(transaction=False) as pipe:
                for s in listening:
                    pipe.exists(listen_key(s.listen_key or ""))
                alive = await pipe.execute()
            for s, exists in zip(listening, alive, strict=True):
                if not exists:
                    await self._end(s, "listenKey expired or deleted")
        for s in streams:
            if s.ended:
                continue
            found = await self.gw.api_key(s.api_key, None)
            if found is None or not found.active or found.user_id != s.user_id:
                await self._end(s, "API key revoked or user disabled")
            elif not found.permissions & apikeys.STREAM_PERMISSIONS:
                await self._end(s, "API key no longer has a user-stream permission")

    async def _end(self, stream: Watched, reason: str) -> None:
        stream.ended = True
        self.watched.discard(stream)
        with contextlib.suppress(Exception):  # the client may be gone already
            await stream.end(reason)
