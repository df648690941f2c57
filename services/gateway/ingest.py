"""How the gateway hands an order to ingestion: over HTTP to the ingestion service, or in its own process.

Both speak the same calls (new order, cancel, amend) and raise the same ``ApiError``s, so a route does not
know which it has.
In-process (``INGESTION_IN_GATEWAY``) the gateway runs ingestion's ``Ingestor`` (``shared/ingestor.py``)
itself and publishes to ``order-requests`` directly: one HTTP hop less per order, which on a small machine is
most of what an order costs before Kafka, and its client order id is claimed in the same Redis call that
spends the caller's rate limits (``Budget``). The ingestion service stays the entry point for the AWS Lambda and for
other callers either way.

Either way at most ``orders_in_flight_max`` requests are handed on at once (``shared.overload.Admission``;
over HTTP that is also the connection pool's size, so aiohttp never queues); a request that finds no place
within ``pool_wait_ms`` is refused with -1008 and ``Retry-After``, so a slow fleet meets a bounded queue
instead of every request waiting out its timeout behind the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from shared import errors, overload, servicekey
from shared import redis as sredis
from shared.errors import ApiError
from shared.ingestor import CLIENT_ID_TTL_S, Ingestor
from shared.lifecycle import now_ms
from shared.rediskeys import client_id_key

from .ratelimit import Claim, RateLimiter

JSON = {"Content-Type": "application/json"}
UNAVAILABLE = "Internal error; unable to process your request. Please try again."
TIMED_OUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
RETRY_AFTER = {"Retry-After": str(overload.RETRY_AFTER_S)}
# Longest a hand-off may take, either way: past it the order may or may not have been taken (a broker that
# stopped answering, an ingestion service that did), and the answer is Binance's -1007 "status unknown".
HANDOFF_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Budget:
    """What a new order spends of its caller's rate limits, spent once by whoever hands the order on."""

    limiter: RateLimiter
    name: str
    weight: int = 1
    orders: int = 1

    async def spend(self, claim: Claim | None = None) -> bool:
        return await self.limiter.spend(self.name, self.weight, self.orders, claim)


class Ingest(Protocol):
    async def new_order(self, user_id: int, params: Mapping[str, str], budget: Budget) -> dict[str, Any]:
        """Spend ``budget`` (also when the order is refused), then hand the order on; its ACK."""
        ...

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]: ...

    async def new_list(self, user_id: int, params: Mapping[str, str], kind: str, budget: Budget) -> dict[str, Any]:
        """Spend ``budget`` (also when the list is refused), then hand the order list on; its ACK."""
        ...

    async def cancel_all(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        """Hand on a mass cancel of the caller's open orders on one symbol; its ACK (``requestId``)."""
        ...

    async def amend(
        self, user_id: int, order_id: int, qty_lots: int, client_order_id: str, claim: bool, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """Hand on an amend (``Ingestor.amend``); its ``requestId``."""
        ...


class HttpIngestion:
    """The ingestion service over HTTP; its refusals come back as the same ``ApiError``. Each call is
    signed with the service key (``shared.servicekey``): ingestion believes the user id only from us."""

    def __init__(self, session: aiohttp.ClientSession, admission: overload.Admission, key: bytes) -> None:
        self.session, self.admission, self.key = session, admission, key

    async def new_order(self, user_id: int, params: Mapping[str, str], budget: Budget) -> dict[str, Any]:
        await budget.spend()
        return await self._post("/internal/orders", {"userId": user_id, "params": params})

    async def new_list(self, user_id: int, params: Mapping[str, str], kind: str, budget: Budget) -> dict[str, Any]:
        await budget.spend()
        return await self._post("/internal/lists", {"userId": user_id, "kind": kind, "params": params})

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        return await self._post("/internal/cancels", {"userId": user_id, "orderId": order_id, "params": params})

    async def cancel_all(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        return await self._post("/internal/cancel-all", {"userId": user_id, "params": params})

    async def amend(
        self, user_id: int, order_id: int, qty_lots: int, client_order_id: str, claim: bool, params: Mapping[str, str]
    ) -> dict[str, Any]:
        body = {
            "userId": user_id,
            "orderId": order_id,
            "qtyLots": qty_lots,
            "clientOrderId": client_order_id,
            "claim": claim,
            "params": params,
        }
        return await self._post("/internal/amends", body)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.admission:
            data = orjson.dumps(body)
            headers = {**JSON, servicekey.HEADER: servicekey.sign(self.key, path, data, now_ms())}
            try:
                async with self.session.post(path, data=data, headers=headers) as resp:
                    status, raw = resp.status, await resp.read()
                answer = orjson.loads(raw)
            except TimeoutError:  # sent, maybe taken: Binance's "execution status unknown"
                overload.expected("ingestion", f"ingestion did not answer {path} in time; answered 503 (-1007)")
                raise ApiError(errors.TIMEOUT, TIMED_OUT, 503, RETRY_AFTER) from None
            except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
                overload.expected("ingestion", f"ingestion unreachable ({type(exc).__name__}); answered 503 (-1001)")
                raise ApiError(errors.DISCONNECTED, UNAVAILABLE, 503, RETRY_AFTER) from None
        if status >= 400:
            if isinstance(answer, dict) and "code" in answer:
                if status < 500:
                    raise ApiError(int(answer["code"]), str(answer["msg"]), status)
                raise ApiError(int(answer["code"]), str(answer["msg"]), 503, RETRY_AFTER)
            raise ApiError(errors.DISCONNECTED, UNAVAILABLE, 503, RETRY_AFTER)
        if not isinstance(answer, dict):
            raise ApiError(errors.DISCONNECTED, UNAVAILABLE, 503, RETRY_AFTER)
        return answer


class LocalIngestion:
    """Ingestion's ``Ingestor`` in the gateway's process; the client-id claim rides on the budget's call."""

    def __init__(self, ingestor: Ingestor, admission: overload.Admission) -> None:
        self.ingestor, self.admission = ingestor, admission

    async def new_order(self, user_id: int, params: Mapping[str, str], budget: Budget) -> dict[str, Any]:
        async with self.admission:
            return await self._new_order(user_id, params, budget)

    async def _new_order(self, user_id: int, params: Mapping[str, str], budget: Budget) -> dict[str, Any]:
        try:
            request = await self.ingestor.prepare(user_id, params)
        except ApiError:
            await budget.spend()  # a refused order costs its weight too; over budget, that refusal wins
            raise
        claim = Claim(client_id_key(user_id, request.client_order_id), request.order_id, CLIENT_ID_TTL_S)
        kept = self.ingestor.keep(request)  # pending until decided, beside the claim (another slot, same turn)
        try:
            with sredis.timed("client_order_id"):  # the same series as ingestion's own claim: one per order
                taken = await budget.spend(claim)
        except BaseException:
            await asyncio.shield(self.ingestor.abandon(request, kept))
            raise
        await kept
        if not taken:
            await self.ingestor.forget(request)
            raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
        return await _bounded(self.ingestor.publish(request, claim.key))

    async def new_list(self, user_id: int, params: Mapping[str, str], kind: str, budget: Budget) -> dict[str, Any]:
        await budget.spend()  # every leg counts towards the order rate limits, refused or not
        async with self.admission:
            return await _bounded(self.ingestor.new_list(user_id, params, kind))

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        async with self.admission:
            return await _bounded(self.ingestor.cancel(user_id, order_id, params))

    async def cancel_all(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        async with self.admission:
            return await _bounded(self.ingestor.cancel_all(user_id, params))

    async def amend(
        self, user_id: int, order_id: int, qty_lots: int, client_order_id: str, claim: bool, params: Mapping[str, str]
    ) -> dict[str, Any]:
        async with self.admission:
            return await _bounded(self.ingestor.amend(user_id, order_id, qty_lots, client_order_id, claim, params))


async def _bounded(call: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The publish, bounded as the HTTP hop is: a broker that stops answering holds no request for the
    producer's whole retry window (a left claim keeps a retry with the same id from doubling the order)."""
    try:
        return await asyncio.wait_for(call, HANDOFF_TIMEOUT_S)
    except TimeoutError:
        overload.expected("kafka", "order-requests did not acknowledge in time; answered 503 (-1007)")
        raise ApiError(errors.TIMEOUT, TIMED_OUT, 503, RETRY_AFTER) from None
