"""WebSockets refuse garbage calmly: Binance's close codes and error messages, no traceback in the logs.

Against the real gateway of a fleet: binary frames close with 1003, oversized ones with 1009, more than five
messages a second with 1008; malformed JSON and unknown methods get Binance's error and the connection goes
on; the path, ``/stream?streams=`` and SUBSCRIBE all count against one cap of 1,024 streams a connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from services.gateway.ws import MAX_MESSAGES_PER_S, MAX_STREAMS

pytestmark = pytest.mark.e2e

IN_URL = 300  # streams named in a URL: a handshake line stays under websockets' 8 KiB


def depth_streams(first: int, count: int) -> list[str]:
    """Distinct stream names (any ``@depth@<n>ms`` is one), all on one channel."""
    return [f"btcusdt@depth@{n}ms" for n in range(first, first + count)]


async def closed_with(ws: Any) -> int | None:
    """The close code the server sent, once the connection is closed."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code


async def ask(ws: Any, request: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send(request if isinstance(request, str) else json.dumps(request))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reply


async def _garbage(ws_base: str) -> None:
    async with websockets.connect(f"{ws_base}/ws") as ws:
        await ws.send(b"\x00\x01binary")
        assert await closed_with(ws) == 1003
    async with websockets.connect(f"{ws_base}/stream?streams=btcusdt@trade", max_size=None) as ws:
        await ws.send("x" * 70_000)
        assert await closed_with(ws) == 1009
    async with websockets.connect(f"{ws_base}/ws/btcusdt@trade") as ws:
        reply = await ask(ws, '{"method": "SUBSCRIBE", "params": [')
        assert reply["error"]["code"] == 3 and reply["error"]["msg"].startswith("Invalid JSON: "), reply
        reply = await ask(ws, {"method": "SUBSCRIB", "params": ["btcusdt@trade"], "id": 7})
        assert reply["id"] == 7 and reply["error"]["code"] == 2, reply
        assert reply["error"]["msg"].startswith("Invalid request: unknown variant `SUBSCRIB`, expected one of"), reply
        reply = await ask(ws, {"params": [], "id": 8})
        assert reply == {"error": {"code": 2, "msg": "Invalid request: missing field `method`"}, "id": 8}
        reply = await ask(ws, "[1, 2]")
        assert reply["error"]["code"] == 2, reply
        await asyncio.sleep(1.05)  # four messages so far: the next five fit in a fresh second
        assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {"result": ["btcusdt@trade"], "id": 9}


async def _rate(ws_base: str) -> None:
    async with websockets.connect(f"{ws_base}/ws") as ws:
        for second in range(2):  # at the limit, second after second: served
            for i in range(MAX_MESSAGES_PER_S):
                assert (await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": i}))["id"] == i
            if second == 0:
                await asyncio.sleep(1.05)
    async with websockets.connect(f"{ws_base}/ws") as ws:
        started = time.monotonic()
        for i in range(MAX_MESSAGES_PER_S + 1):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        assert time.monotonic() - started < 1.0, "the machine is too slow to send six messages in a second"
        replies = 0
        with pytest.raises(ConnectionClosed):
            while True:
                json.loads(await asyncio.wait_for(ws.recv(), 10))
                replies += 1
        assert ws.close_code == 1008 and replies == MAX_MESSAGES_PER_S


async def _stream_cap(ws_base: str) -> None:
    in_url = depth_streams(1, IN_URL)
    rest = depth_streams(IN_URL + 1, MAX_STREAMS - IN_URL)
    async with websockets.connect(f"{ws_base}/stream?streams={'/'.join(in_url)}") as ws:
        assert await ask(ws, {"method": "SUBSCRIBE", "params": rest, "id": 1}) == {"result": None, "id": 1}
        listed = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})
        assert len(listed["result"]) == MAX_STREAMS
        one_more = await ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 3})
        assert one_more["id"] == 3 and one_more["error"]["code"] == 2 and "too many streams" in one_more["error"]["msg"]
        again = await ask(ws, {"method": "SUBSCRIBE", "params": in_url[:5], "id": 4})  # already there: no more
        assert again == {"result": None, "id": 4}
    async with websockets.connect(f"{ws_base}/ws/{'/'.join(in_url)}") as ws:
        over = await ask(ws, {"method": "SUBSCRIBE", "params": [*rest, "btcusdt@trade"], "id": 5})
        assert over["error"]["code"] == 2 and "too many streams" in over["error"]["msg"], over
        listed = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 6})
        assert len(listed["result"]) == IN_URL, "a refused SUBSCRIBE subscribes to none of its streams"
    async with websockets.connect(f"{ws_base}/ws") as ws:
        over = await ask(ws, {"method": "SUBSCRIBE", "params": depth_streams(1, MAX_STREAMS + 1), "id": 7})
        assert over["error"]["code"] == 2 and "too many streams" in over["error"]["msg"], over


def test_websockets_refuse_garbage_with_binance_codes_and_no_traceback(shared_fleet: Any) -> None:
    ws_base = shared_fleet.base.replace("http", "ws")
    asyncio.run(_garbage(ws_base))
    asyncio.run(_rate(ws_base))
    asyncio.run(_stream_cap(ws_base))
    time.sleep(0.5)  # the gateway's last log lines reach the tail
    logged = "\n".join(shared_fleet.fleet.tails["gateway"])
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged, logged
    assert shared_fleet.fleet.ready("gateway")
