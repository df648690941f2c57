"""ingestion: the Lambda of the seed as a service. Canonicalise a request, give it an id, publish it.

Answers as soon as the broker has acknowledged the message; the outcome reaches the user later through
the fleet. Requests taken in the same event-loop turn share one record per symbol (``RequestSender``), and
their client-id claims one Redis pipeline (``BatchedCommands``): a lone ``SET`` per request held a pooled
connection each, and a few hundred overlapping requests ran redis-py's pool dry. Every pool is bounded
and a request waits ``pool_wait_ms`` at most for a connection (``shared.overload``: -1008 past it). The
same ``Ingestor`` backs the AWS Lambda handler (``lambda_handler.py``). With tracing on, the gateway's trace
continues here (``traceparent`` header) and into the record's Kafka headers.

The HTTP API believes the user id it is sent only from the gateway, which authenticated the user: each
call must carry the gateway's signature with the service key (``shared.servicekey``); anything else is
refused with -2015 and writes nothing. The Lambda handler verifies the client's own Binance signature.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError

from shared import errors, identity, kafka, overload, postgres, resilience, segment_fence, servicekey, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.errors import ApiError
from shared.http import RequestMetrics, add_error_handlers, add_health_routes
from shared.ids import IdBlocks
from shared.lifecycle import Health, now_ms
from shared.messages import NewOrderRequest, Topic
from shared.segment_fence import Fence

from .request import check_filters, parse_cancel, parse_new_order
from .sender import RequestSender

SERVICE = "ingestion"
log = logging.getLogger(SERVICE)
# How long Redis remembers a client order id: long enough to refuse a retried or doubled request at the door
# while its first copy is in flight (the processor decides within seconds, minutes with a backlog); Postgres
# keeps the id unique for good and the processor refuses a later duplicate itself (-2010, user stream).
# It was a day: at 300 orders/s that is 26 million keys (~2.5 GB) held for nothing. Ten minutes (180,000 keys)
# made Redis grow for the first ten minutes of every soak (~2 MB/min at 300/s); two minutes covers a request
# in flight behind any backlog admission control lets build, and the key count stops growing within it.
CLIENT_ID_TTL_S = 120


def client_id_key(user_id: int, client_order_id: str) -> str:
    """Where a user's client order id is claimed. Hash-tagged by user: the gateway claims it in the same
    Redis call as the user's rate limits (``gateway.ratelimit.signed_budget``)."""
    return f"coid:{{u:{user_id}}}:{client_order_id}"


class NewOrderIn(BaseModel):
    user_id: int = Field(alias="userId")
    params: dict[str, str]


class CancelIn(BaseModel):
    user_id: int = Field(alias="userId")
    order_id: int = Field(alias="orderId")
    params: dict[str, str]


Body = TypeVar("Body", NewOrderIn, CancelIn)


class Ingestor:
    """The order-request path, independent of HTTP or Lambda."""

    def __init__(
        self,
        outbox: kafka.Outbox,
        cache: sredis.Client,
        db: asyncpg.Pool,
        markets: Mapping[str, Market],
        fence: Fence | None = None,
    ) -> None:
        self.outbox, self.cache, self.db, self.markets = outbox, cache, db, markets
        self.ids = IdBlocks(db)
        self.sender = RequestSender(outbox, fence)
        self.claims = sredis.BatchedCommands(cache)  # one pipeline per event-loop turn, one connection

    async def new_order(self, user_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        request = await self.prepare(user_id, params)
        key = client_id_key(user_id, request.client_order_id)
        with sredis.timed("client_order_id"):
            taken = await self.claims("SET", key, request.order_id, "NX", "EX", CLIENT_ID_TTL_S)
        if not taken:
            raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
        return await self.publish(request, key)

    async def prepare(self, user_id: int, params: Mapping[str, str]) -> NewOrderRequest:
        """The canonical request with its order id; raises the client's ``ApiError`` on bad parameters."""
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
            raise
        return {
            "symbol": request.symbol,
            "orderId": request.order_id,
            "clientOrderId": request.client_order_id,
            "transactTime": request.ts,
        }

    async def cancel(self, user_id: int, order_id: int, params: Mapping[str, str]) -> dict[str, Any]:
        request_id = await self.ids.next()
        request = parse_cancel(
            params, user_id=user_id, request_id=request_id, order_id=order_id, ts=now_ms(), symbols=self.markets
        )
        with tracing.Producing(Topic.ORDER_REQUESTS, request) as sent:
            await self.sender.send(request, sent.headers)
        return {"requestId": request_id, "transactTime": request.ts}


@asynccontextmanager
async def ingestor(settings: Settings) -> AsyncIterator[Ingestor]:
    await identity.verified(settings, log)  # never ACK an order onto a log the fleet does not own
    async with AsyncExitStack() as stack:
        wait_s = settings.pool_wait_ms / 1000
        db = await stack.enter_async_context(postgres.pool(settings, max_size=2, acquire_wait_s=wait_s))
        cache = await stack.enter_async_context(sredis.client(settings))
        outbox = await stack.enter_async_context(kafka.producer(settings, linger_ms=settings.kafka_request_linger_ms))
        fence = await stack.enter_async_context(segment_fence.fence(settings, cache))
        yield Ingestor(outbox, cache, db, await postgres.load_markets(db), fence)


def create_app(settings: Settings) -> FastAPI:
    health = Health()
    state: dict[str, Ingestor] = {}
    # A client that gave up (the gateway's timeout) does not cancel its request here: without a bound, a
    # stalled broker would gather every retry as one more request waiting for its ack.
    in_flight = overload.Admission("order hand-off", settings.orders_in_flight_max, settings.pool_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with ingestor(settings) as ing:
            state["ingestor"] = ing
            health.watch(resilience.probes(db=ing.db, cache=ing.cache, outbox=ing.outbox))
            health.up()
            yield

    key = servicekey.key_of(settings)

    async def from_gateway(request: Request, model: type[Body]) -> Body:
        """The body of a call the gateway signed; -2015 (401) for any other caller."""
        raw = await request.body()
        if not servicekey.verify(key, request.url.path, raw, request.headers.get(servicekey.HEADER), now_ms()):
            raise ApiError(errors.REJECTED_MBX_KEY, "Internal call without a valid service signature.", 401)
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            raise ApiError(errors.ILLEGAL_CHARS, "Malformed request.") from None

    app = FastAPI(title="spot ingestion", lifespan=lifespan, docs_url=None, redoc_url=None)
    add_health_routes(app, health)
    app.add_middleware(RequestMetrics, continue_traces=True)  # only the gateway calls it
    add_error_handlers(app)

    @app.post("/internal/orders")
    async def new_order(request: Request) -> dict[str, Any]:
        body = await from_gateway(request, NewOrderIn)
        async with in_flight:
            return await state["ingestor"].new_order(body.user_id, body.params)

    @app.post("/internal/cancels")
    async def cancel(request: Request) -> dict[str, Any]:
        body = await from_gateway(request, CancelIn)
        async with in_flight:
            return await state["ingestor"].cancel(body.user_id, body.order_id, body.params)

    return app
