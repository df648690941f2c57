"""How the gateway hands an order to ingestion: over HTTP to the ingestion service, or in its own process.

Both speak the same two calls and raise the same ``ApiError``s, so a route does not know which it has.
In-process (``INGESTION_IN_GATEWAY``) the gateway runs ingestion's ``Ingestor`` itself and publishes to
``order-requests`` directly: one HTTP hop less per order, which on a small machine is most of what an
order costs before Kafka. The ingestion service stays the entry point for the AWS Lambda and for other
callers either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from shared import errors
from shared.errors import ApiError

JSON = {"Content-Type": "application/json"}
UNAVAILABLE = "Internal error; unable to process your request. Please try again."


class Ingest(Protocol):
    async def new_order(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]: ...

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]: ...


class HttpIngestion:
    """The ingestion service over HTTP; its refusals come back as the same ``ApiError``."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def new_order(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        return await self._post("/internal/orders", {"userId": user_id, "params": params})

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        return await self._post("/internal/cancels", {"userId": user_id, "orderId": order_id, "params": params})

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self.session.post(path, data=orjson.dumps(body), headers=JSON) as resp:
                status, raw = resp.status, await resp.read()
            data = orjson.loads(raw)
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            raise ApiError(errors.DISCONNECTED, UNAVAILABLE, 503) from None
        if status >= 400:
            if isinstance(data, dict) and "code" in data:
                raise ApiError(int(data["code"]), str(data["msg"]), status if status < 500 else 503)
            raise ApiError(errors.DISCONNECTED, UNAVAILABLE, 503)
        if not isinstance(data, dict):
            raise ApiError(errors.DISCONNECTED, UNAVAILABLE, 503)
        return data
