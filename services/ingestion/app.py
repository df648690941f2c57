"""ingestion: the Lambda of the seed as a service. Canonicalise a request, give it an id, publish it.

Answers as soon as the broker has acknowledged the message; the outcome reaches the user later through
the fleet. Requests taken in the same event-loop turn share one record per symbol (``RequestSender``), and
their client-id claims one Redis pipeline (``BatchedCommands``): a lone ``SET`` per request held a pooled
connection each, and a few hundred overlapping requests ran redis-py's pool dry. Every pool is bounded
and a request waits ``pool_wait_ms`` at most for a connection (``shared.overload``: -1008 past it). The
same ``Ingestor`` backs the AWS Lambda handler (``lambda_handler.py``). With tracing on, the gateway's trace
continues here (``traceparent`` header) and into the record's Kafka headers.

The request path itself (``Ingestor``) is ``shared/ingestor.py``: the gateway runs it in-process too.

The HTTP API believes the user id it is sent only from the gateway, which authenticated the user: each
call must carry the gateway's signature with the service key (``shared.servicekey``); anything else is
refused with -2015 and writes nothing. The Lambda handler verifies the client's own Binance signature.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError

from shared import errors, identity, kafka, overload, postgres, resilience, segment_fence, servicekey
from shared import redis as sredis
from shared.config import Settings
from shared.errors import ApiError
from shared.http import RequestMetrics, add_error_handlers, add_health_routes
from shared.ingestor import Ingestor
from shared.lifecycle import Health, now_ms

SERVICE = "ingestion"
log = logging.getLogger(SERVICE)


class NewOrderIn(BaseModel):
    user_id: int = Field(alias="userId")
    params: dict[str, str]


class CancelIn(BaseModel):
    user_id: int = Field(alias="userId")
    order_id: int = Field(alias="orderId")
    params: dict[str, str]


class CancelAllIn(BaseModel):
    user_id: int = Field(alias="userId")
    params: dict[str, str]


class AmendIn(BaseModel):
    user_id: int = Field(alias="userId")
    order_id: int = Field(alias="orderId")
    qty_lots: int = Field(alias="qtyLots", ge=1, le=2**63 - 1)
    client_order_id: str = Field(alias="clientOrderId", max_length=36)
    claim: bool
    params: dict[str, str]


class NewListIn(BaseModel):
    user_id: int = Field(alias="userId")
    kind: Literal["oco", "oto", "otoco", "order/oco"]
    params: dict[str, str]


Body = TypeVar("Body", NewOrderIn, CancelIn, CancelAllIn, AmendIn, NewListIn)


@asynccontextmanager
async def ingestor(settings: Settings) -> AsyncIterator[Ingestor]:
    await identity.verified(settings, log)  # never ACK an order onto a log the fleet does not own
    async with AsyncExitStack() as stack:
        wait_s = settings.pool_wait_ms / 1000
        db = await stack.enter_async_context(postgres.pool(settings, max_size=2, acquire_wait_s=wait_s))
        cache = await stack.enter_async_context(sredis.client(settings))
        outbox = await stack.enter_async_context(kafka.producer(settings, linger_ms=settings.kafka_request_linger_ms))
        fence = await stack.enter_async_context(segment_fence.fence(settings, cache))
        yield Ingestor(outbox, cache, db, await postgres.load_markets(db), fence, settings.log_epoch)


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

    @app.post("/internal/lists")
    async def new_list(request: Request) -> dict[str, Any]:
        body = await from_gateway(request, NewListIn)
        async with in_flight:
            return await state["ingestor"].new_list(body.user_id, body.params, body.kind)

    @app.post("/internal/cancels")
    async def cancel(request: Request) -> dict[str, Any]:
        body = await from_gateway(request, CancelIn)
        async with in_flight:
            return await state["ingestor"].cancel(body.user_id, body.order_id, body.params)

    @app.post("/internal/cancel-all")
    async def cancel_all(request: Request) -> dict[str, Any]:
        body = await from_gateway(request, CancelAllIn)
        async with in_flight:
            return await state["ingestor"].cancel_all(body.user_id, body.params)

    @app.post("/internal/amends")
    async def amend(request: Request) -> dict[str, Any]:
        body = await from_gateway(request, AmendIn)
        async with in_flight:
            return await state["ingestor"].amend(
                body.user_id, body.order_id, body.qty_lots, body.client_order_id, body.claim, body.params
            )

    return app
