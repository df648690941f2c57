"""The gateway's pub/sub reader is supervised: after a bug in a delivery, or a connection that went silent
without closing, it reads again on a new connection, and the hub is not ready in between.

Real Redis, the gateway's ``Hub`` and the services' Redis client (``shared.redis.client``); the silent
connection is a ``CuttableProxy`` in black-hole mode.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from services.gateway.hub import RESTARTS, SILENT_MAX_S, Hub, Subscriber
from shared import redis as sredis
from shared.config import Settings
from tests.faults import CuttableProxy

POISON = b"a payload the delivery chokes on"


async def hub_ready(hub: Hub) -> bool:
    try:
        await hub.check()
    except ConnectionError:
        return False
    return True


async def until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until ``condition`` holds, polled every 50 ms."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < within, f"not {what} within {within:.0f}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _delivers(hub: Hub, publish_url: str, channels: sredis.Channels, sub: Subscriber, got: list[bytes]) -> None:
    """An outcome and a stream event published now both arrive."""
    channel = channels.stream("btcusdt@trade")
    request = secrets.randbelow(10**9)
    async with sredis.client(Settings(redis_url=publish_url)) as publisher:
        await publisher.publish(channels.outcomes, b'{"requestId": %d}' % request)
        await publisher.publish(channel, b'{"n": %d}' % request)
    assert await asyncio.wait_for(sub.next(), 10) == (channel, b'{"n": %d}' % request)

    async def outcome_arrived() -> bool:
        return b'{"requestId": %d}' % request in got

    await until(outcome_arrived, 10, "outcome delivered")


async def _supervised(
    listen_url: str, publish_url: str, fault: Callable[[sredis.Channels], Awaitable[None]], heal: Callable[[], None]
) -> None:
    channels = sredis.Channels(f".hubsup{secrets.token_hex(3)}")
    got: list[bytes] = []

    def on_outcome(raw: bytes) -> None:
        if raw == POISON:
            raise ValueError("a bug in the outcome delivery")
        got.append(raw)

    async with sredis.client(Settings(redis_url=listen_url)) as listener:
        hub = Hub(listener, on_outcome, channels)
        await hub.start()
        sub = Subscriber()
        try:
            await hub.subscribe(channels.stream("btcusdt@trade"), sub)  # must survive the new connection
            await until(lambda: hub_ready(hub), 10, "ready")
            await _delivers(hub, publish_url, channels, sub, got)
            restarts = RESTARTS._value.get()
            await fault(channels)

            async def not_ready() -> bool:
                return not await hub_ready(hub)

            await until(not_ready, SILENT_MAX_S + 4, "not ready")
            heal()
            await until(lambda: hub_ready(hub), 30, "ready again")
            assert RESTARTS._value.get() >= restarts + 1
            await _delivers(hub, publish_url, channels, sub, got)
            assert POISON not in got
        finally:
            await hub.stop()


def test_a_reader_killed_by_a_bug_is_restarted_and_not_ready_meanwhile(servers: dict[str, str]) -> None:
    url = servers["REDIS_URL"]

    async def poison(channels: sredis.Channels) -> None:
        async with sredis.client(Settings(redis_url=url)) as publisher:
            assert await publisher.publish(channels.outcomes, POISON) == 1

    asyncio.run(_supervised(url, url, poison, lambda: None))


def test_a_silent_pubsub_connection_is_noticed_and_replaced(servers: dict[str, str]) -> None:
    url = servers["REDIS_URL"]
    parts = urllib.parse.urlsplit(url)
    proxy = CuttableProxy(parts.port or 6379, parts.hostname or "127.0.0.1").start()
    through = urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))

    async def silence(_: sredis.Channels) -> None:
        proxy.blackhole()

    try:
        asyncio.run(_supervised(through, url, silence, proxy.forward))
    finally:
        proxy.stop()
