"""Ingestion's order-request path, independent of HTTP or Lambda: canonicalise, give an id, claim the client
order id, publish to ``order-requests``.

Three hosts run it: the ingestion service (``services/ingestion/app.py``, for calls the gateway signed), its
AWS Lambda handler (``services/ingestion/lambda_handler.py``, for the client's own signature), and the gateway
with ingestion in-process (``services/gateway/ingest.py``), which claims the client order id in the same
Redis call that spends the caller's rate limits and so uses ``prepare`` and ``publish`` apart. The answer
comes as soon as the broker has acknowledged the request; the outcome reaches the user later through the
fleet. Requests taken in the same event-loop turn share one record per symbol (``RequestSender``), and their
client-id claims one Redis pipeline (``BatchedCommands``): a lone ``SET`` per request held a pooled
connection each, and a few hundred overlapping requests ran redis-py's pool dry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Mapping
from typing import Any

import asyncpg

from shared import errors, kafka, pending, postgres, tracing
from shared import redis as sredis
from shared.domain import Market
from shared.errors import ApiError
from shared.ids import IdBlocks
from shared.lifecycle import now_ms
from shared.messages import NewListRequest, NewOrderRequest, Topic
from shared.order_request import (
    check_filters,
    list_size,
    parse_amend,
    parse_cancel,
    parse_cancel_all,
    parse_new_order,
    parse_order_list,
)
from shared.rediskeys import client_id_key, pending_key
from shared.request_sender import RequestSender
from shared.segment_fence import Fence

# How long Redis remembers a client order id: long enough to refuse a retried or doubled request at the door
# while its first copy is in flight (the processor decides within seconds, minutes with a backlog); Postgres
# keeps the id unique for good and the processor refuses a later duplicate itself (-2010, user stream).
# It was a day: at 300 orders/s that is 26 million keys (~2.5 GB) held for nothing. Ten minutes (180,000 keys)
# made Redis grow for the first ten minutes of every soak (~2 MB/min at 300/s); two minutes covers a request
# in flight behind any backlog admission control lets build, and the key count stops growing within it.
CLIENT_ID_TTL_S = 120
MARKETS_STALE_S = 30.0  # as the gateway's own refresh
MARKETS_RETRY_S = 1.0


class Ingestor:
    """The order-request path, independent of HTTP or Lambda."""

    def __init__(
        self,
        outbox: kafka.Outbox,
        cache: sredis.Client,
        db: asyncpg.Pool,
        markets: dict[str, Market],
        fence: Fence | None = None,
        log_epoch: int = 0,
    ) -> None:
        self.outbox, self.cache, self.db, self.markets = outbox, cache, db, markets
        self.log_epoch = log_epoch  # the log its requests go to, as the fleet's identity check found it
        self._read_at = time.monotonic()  # when the market rows were last read (``_fresh``)
        self.ids = IdBlocks(db)
        self.sender = RequestSender(outbox, fence)
        self.claims = sredis.BatchedCommands(cache)  # one pipeline per event-loop turn, one connection

    async def new_order(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        request = await self.prepare(user_id, params)
        key = client_id_key(user_id, request.client_order_id)
        kept = self.keep(request)  # in the claim's pipeline: no round trip of its own
        try:
            with sredis.timed("client_order_id"):
                taken = await self.claims("SET", key, request.order_id, "NX", "EX", CLIENT_ID_TTL_S)
            await kept
        except BaseException:
            await asyncio.shield(self.abandon(request, kept))
            raise
        if not taken:
            await self.forget(request)
            raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
        return await self.publish(request, key)

    def keep(self, request: pending.Pending) -> asyncio.Future[Any]:
        """Add ``request`` to the pending orders (``shared.pending``) until the processor decides it, so a log
        lost before that loses no ACKed order (nor list); queued in this turn's pipeline, awaited before the ACK."""
        value = pending.entry(request, self.log_epoch)
        return self.claims("HSET", pending_key(request.symbol), pending.field_of(request), value)

    async def abandon(self, request: NewOrderRequest, kept: Awaitable[Any]) -> None:
        """Undo ``keep`` when the claim beside it failed or its caller went away. Best effort: should Redis fail
        here too, the entry stays, and is sent again only if its log is lost (``shared.pending``), which the
        caller's error answer, "status unknown", allows for."""
        with contextlib.suppress(Exception):
            await kept
            await self.forget(request)

    async def forget(self, request: pending.Pending) -> None:
        """Remove a pending order that was not taken after all (its id refused, its publish failed)."""
        await self.claims("HDEL", pending_key(request.symbol), pending.field_of(request))

    async def _fresh(self, symbol: str | None) -> None:
        """Read the market rows again every ``MARKETS_STALE_S``, or when a request names a symbol not known yet
        (at most once a ``MARKETS_RETRY_S``, so unknown symbols cost no query each): a market added or changed
        live (``spot admin market``) reaches the ingestion service and the Lambda, which have no notice of it.
        In the gateway's process the dict is the gateway's own, which it keeps fresh itself."""
        waited = time.monotonic() - self._read_at
        if waited > MARKETS_STALE_S or (symbol and symbol not in self.markets and waited > MARKETS_RETRY_S):
            self._read_at = time.monotonic()
            self.markets.update(await postgres.load_markets(self.db))

    async def prepare(self, user_id: int, params: Mapping[str, str]) -> NewOrderRequest:
        """The canonical request with its order id; raises the client's ``ApiError`` on bad parameters."""
        await self._fresh(params.get("symbol"))
        order_id = await self.ids.next()
        request = parse_new_order(params, user_id=user_id, order_id=order_id, ts=now_ms(), symbols=self.markets)
        check_filters(request, self.markets[request.symbol])
        return request

    async def publish(self, request: NewOrderRequest, claimed: str) -> dict[str, Any]:
        """Send a prepared request whose client id is ``claimed`` (its key); the ACK once the broker has it."""
        try:
            with tracing.Producing(Topic.ORDER_REQUESTS, request) as sent:
                await self.sender.send(request, sent.headers)
        except Exception:
            await self.claims("DEL", claimed)  # nothing was accepted: the client may retry with the same id
            await self.forget(request)
            raise
        return {
            "symbol": request.symbol,
            "orderId": request.order_id,
            "clientOrderId": request.client_order_id,
            "transactTime": request.ts,
        }

    async def new_list(self, user_id: int, params: Mapping[str, str], kind: str) -> dict[str, Any]:
        """An order list (``kind``: oco, oto, otoco, order/oco): its legs parsed and filtered as new orders, an
        id for the list and each leg, every leg's client order id claimed (all or none), the list kept pending
        (``shared.pending``, under its first leg's id) until the processor decides it, one ``NewListRequest``
        published; its ACK, Binance's list shape."""
        await self._fresh(params.get("symbol"))
        list_id = await self.ids.next()
        order_ids = [await self.ids.next() for _ in range(list_size(kind))]
        request = parse_order_list(
            params, kind, user_id=user_id, list_id=list_id, order_ids=order_ids, ts=now_ms(), symbols=self.markets
        )
        market = self.markets[request.symbol]
        for leg in request.legs:
            check_filters(leg, market)
        keys: list[str] = []
        kept = False
        try:
            for leg in request.legs:
                key = client_id_key(user_id, leg.client_order_id)
                with sredis.timed("client_order_id"):
                    taken = await self.claims("SET", key, leg.order_id, "NX", "EX", CLIENT_ID_TTL_S)
                if not taken:
                    raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
                keys.append(key)
            await self.keep(request)
            kept = True
            with tracing.Producing(Topic.ORDER_REQUESTS, request) as sent:
                await self.sender.send(request, sent.headers)
        except BaseException:
            for key in keys:  # nothing was accepted: the client may retry with the same ids
                await asyncio.shield(self.claims("DEL", key))
            if kept:
                await asyncio.shield(self.forget(request))
            raise
        return list_ack(request)

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        await self._fresh(params.get("symbol"))
        request_id = await self.ids.next()
        request = parse_cancel(
            params, user_id=user_id, request_id=request_id, order_id=order_id, ts=now_ms(), symbols=self.markets
        )
        with tracing.Producing(Topic.ORDER_REQUESTS, request) as sent:
            await self.sender.send(request, sent.headers)
        return {"requestId": request_id, "transactTime": request.ts}

    async def cancel_all(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        """Every open order of ``user_id`` on ``params``' symbol, canceled by the matcher in one step."""
        await self._fresh(params.get("symbol"))
        request_id = await self.ids.next()
        request = parse_cancel_all(params, user_id=user_id, request_id=request_id, ts=now_ms(), symbols=self.markets)
        with tracing.Producing(Topic.ORDER_REQUESTS, request) as sent:
            await self.sender.send(request, sent.headers)
        return {"requestId": request_id, "transactTime": request.ts}

    async def amend(
        self, user_id: int, order_id: int, qty_lots: int, client_order_id: str, claim: bool, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """Publish an amend of ``order_id`` (``order/amend/keepPriority``); with ``claim``, the client order id
        the order takes is claimed first, as a new order's is (-2010 when taken), so no other order gets it
        while the amend is in flight (settlement writes it to the order's row)."""
        request_id = await self.ids.next()
        request = parse_amend(
            params,
            user_id=user_id,
            request_id=request_id,
            order_id=order_id,
            qty_lots=qty_lots,
            client_order_id=client_order_id,
            ts=now_ms(),
            symbols=self.markets,
        )
        key = client_id_key(user_id, client_order_id)
        if claim:
            with sredis.timed("client_order_id"):
                taken = await self.claims("SET", key, request_id, "NX", "EX", CLIENT_ID_TTL_S)
            if not taken:
                raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
        try:
            with tracing.Producing(Topic.ORDER_REQUESTS, request) as sent:
                await self.sender.send(request, sent.headers)
        except Exception:
            if claim:
                await self.claims("DEL", key)
            raise
        return {"requestId": request_id, "transactTime": request.ts}


def list_ack(request: NewListRequest) -> dict[str, Any]:
    """An order list's ACK (``newOrderRespType=ACK``), Binance's list shape before anything executed."""
    return {
        "orderListId": request.list_id,
        "contingencyType": request.contingency,
        "listStatusType": "EXEC_STARTED",
        "listOrderStatus": "EXECUTING",
        "listClientOrderId": request.list_client_id,
        "transactionTime": request.ts,
        "symbol": request.symbol,
        "orders": [
            {"symbol": request.symbol, "orderId": leg.order_id, "clientOrderId": leg.client_order_id}
            for leg in request.legs
        ],
    }
