"""A minimal Binance-style client for the tests: signed REST with httpx, streams with websockets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import httpx
import websockets


class Client:
    def __init__(self, base: str, api_key: str = "", secret: str = "", forwarded_for: str | None = None) -> None:
        """``forwarded_for``: the X-Forwarded-For a trusted proxy would send (a fleet with TRUSTED_PROXY_HOPS)."""
        self.base, self.api_key, self.secret = base.rstrip("/"), api_key, secret
        self.headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        self.http = httpx.AsyncClient(base_url=self.base, timeout=15, headers=self.headers)

    async def close(self) -> None:
        await self.http.aclose()

    async def public(self, path: str, **params: Any) -> Any:
        r = await self.http.get(f"/api/v3/{path}", params=params)
        r.raise_for_status()
        return r.json()

    def sign(self, params: dict[str, Any]) -> str:
        query = urllib.parse.urlencode({"timestamp": int(time.time() * 1000), **params, "recvWindow": 10000})
        return query + "&signature=" + hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()

    async def signed(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        return await self._signed(method, f"/api/v3/{path}", params)

    async def sapi(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        """A signed call of Binance's wallet API, e.g. ``sapi("POST", "capital/withdraw/apply", ...)``."""
        return await self._signed(method, f"/sapi/v1/{path}", params)

    async def _signed(self, method: str, url: str, params: dict[str, Any]) -> tuple[int, Any]:
        query = self.sign(params)
        headers = {"X-MBX-APIKEY": self.api_key}
        if method in ("POST", "PUT"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            r = await self.http.request(method, url, content=query, headers=headers)
        else:
            r = await self.http.request(method, f"{url}?{query}", headers=headers)
        return r.status_code, r.json()

    async def order(self, **params: Any) -> dict[str, Any]:
        status, body = await self.signed("POST", "order", **params)
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    async def user_stream(self) -> Stream:
        """Subscribe through the WS-API with a signature, as ccxt >= 4.5.6 does."""
        ws = await websockets.connect(self.ws_base() + "/ws-api/v3", additional_headers=self.headers)
        params = {"apiKey": self.api_key, "timestamp": int(time.time() * 1000), "recvWindow": 10000}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["signature"] = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        await ws.send(json.dumps({"id": "1", "method": "userDataStream.subscribe.signature", "params": params}))
        ack = json.loads(await ws.recv())
        assert ack == {"id": "1", "status": 200, "result": {"subscriptionId": 0}}, ack
        return Stream(ws, unwrap="event")

    async def market_stream(self, *streams: str) -> Stream:
        ws = await websockets.connect(self.ws_base() + "/ws/0")
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": list(streams), "id": 1}))
        ack = json.loads(await ws.recv())
        assert ack == {"result": None, "id": 1}, ack
        return Stream(ws)


class Stream:
    """Collects a WebSocket's events in the background."""

    def __init__(self, ws: Any, unwrap: str | None = None) -> None:
        self.ws, self.unwrap = ws, unwrap
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            self.events.append(msg[self.unwrap] if self.unwrap and self.unwrap in msg else msg)

    async def wait_for(self, predicate: Any, within: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for e in self.events:
                if predicate(e):
                    return e
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching event in {len(self.events)} received: {self.events[-5:]}")

    async def close(self) -> None:
        self._task.cancel()
        await self.ws.close()
