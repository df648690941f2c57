"""gateway: the API Gateway of the seed. Authentication, authorization, rate limits, routing, WebSockets.

Public REST under ``/api/v3`` (Binance's spot API) and ``/sapi/v1/capital`` (its wallet API: withdrawals),
WebSockets under ``/ws``, ``/stream`` and ``/ws-api/v3``. Every refusal is Binance's ``{"code", "msg"}`` with
a 4xx; an unexpected fault is a 500 with a generic message, never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import (
    envelope,
    errors,
    identity,
    kafka,
    overload,
    postgres,
    pressure,
    resilience,
    segment_fence,
    servicekey,
    tracing,
)
from shared import redis as sredis
from shared.config import Settings
from shared.http import RequestMetrics, add_error_handlers, add_health_routes
from shared.ingestor import Ingestor
from shared.lifecycle import Health

from . import page, wsapi
from .access import StreamGuard
from .deps import Gateway
from .hub import Hub
from .ingest import HANDOFF_TIMEOUT_S, HttpIngestion, Ingest, LocalIngestion
from .outcomes import Outcomes
from .ratelimit import RateLimiter
from .routes import capital, changes, lists, market, orders, userstream
from .ws import router as ws_router

SERVICE = "gateway"
MARKETS_REFRESH_S = 30
log = logging.getLogger(SERVICE)


async def _refresh_markets(gw: Gateway) -> None:
    """Read the markets every ``MARKETS_REFRESH_S``, and at once when ``spot admin market`` says so."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gw.markets_changed.wait(), MARKETS_REFRESH_S)
        gw.markets_changed.clear()
        try:
            gw.markets.update(await postgres.load_markets(gw.db))
        except Exception:
            log.warning("market refresh failed; keeping the markets we have", exc_info=True)


def create_app(settings: Settings) -> FastAPI:
    health = Health()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            wait_s = settings.pool_wait_ms / 1000
            db = await stack.enter_async_context(postgres.pool(settings, max_size=20, acquire_wait_s=wait_s))
            in_flight = overload.Admission("order hand-off", settings.orders_in_flight_max, wait_s)
            cache = await stack.enter_async_context(sredis.client(settings))
            pubsub_cache = await stack.enter_async_context(sredis.client(settings))
            markets = await postgres.load_markets(db)
            ingest: Ingest
            outbox: kafka.Outbox | None = None  # only when the gateway publishes orders itself
            if settings.ingestion_in_gateway:
                await identity.verified(settings, log)  # never ACK an order onto a log the fleet does not own
                producing = kafka.producer(settings, linger_ms=settings.kafka_request_linger_ms)
                outbox = await stack.enter_async_context(producing)
                fence = await stack.enter_async_context(segment_fence.fence(settings, cache))
                ingest = LocalIngestion(
                    Ingestor(outbox, cache, db, markets, fence, settings.log_epoch), in_flight
                )  # the live markets
            else:
                # aiohttp, not httpx: measured 8-10x more requests/s per core on this hop
                session = aiohttp.ClientSession(
                    base_url=settings.ingestion_url,
                    timeout=aiohttp.ClientTimeout(total=HANDOFF_TIMEOUT_S),
                    connector=aiohttp.TCPConnector(limit=settings.orders_in_flight_max),  # = the admission's
                    trace_configs=tracing.http_client_tracing(),  # [] unless tracing is on: traceparent onward
                )
                stack.push_async_callback(session.close)
                ingest = HttpIngestion(session, in_flight, servicekey.key_of(settings))
            gate = pressure.Gate(cache, settings)  # refuses new orders while the processor's backlog is long
            await gate.start()
            stack.push_async_callback(gate.stop)
            outcomes = Outcomes()
            hub = Hub(pubsub_cache, outcomes.deliver, sredis.Channels(settings.topic_suffix), settings.ws_queue_max)
            await hub.start()
            stack.push_async_callback(hub.stop)
            gw = Gateway(
                settings,
                db,
                cache,
                markets,
                RateLimiter(
                    cache, settings.request_weight_per_minute, settings.orders_per_10s, settings.orders_per_day
                ),
                outcomes,
                hub,
                ingest,
                envelope.from_settings(settings),
                {},
                gate=gate,
            )
            app.state.gateway = gw
            guard = StreamGuard(gw)  # user streams end when their listenKey, key or user goes
            await guard.start()
            stack.push_async_callback(guard.stop)
            app.state.guard = guard
            refresher = asyncio.create_task(_refresh_markets(gw))
            health.watch({**resilience.probes(db=db, cache=cache, outbox=outbox), "redis pub/sub": hub.check})
            gc.collect()
            gc.freeze()  # start-up objects live forever: keep them out of every later collection, as the consumers do
            health.up()
            try:
                yield
            finally:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher

    app = FastAPI(
        title="spot gateway",
        version="1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        description="Binance-compatible spot API of the exchange fleet.",
    )
    add_health_routes(app, health)
    app.add_middleware(RequestMetrics)
    add_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"code": errors.ILLEGAL_CHARS, "msg": "Malformed request."}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = errors.UNKNOWN if exc.status_code >= 500 else -1
        return JSONResponse({"code": code, "msg": str(exc.detail)[:200]}, status_code=exc.status_code)

    app.include_router(market.router)
    app.include_router(orders.router)
    app.include_router(changes.router)
    app.include_router(lists.router)
    app.include_router(userstream.router)
    app.include_router(capital.router)
    app.include_router(ws_router)
    app.include_router(wsapi.router)

    page.mount(app)  # the web trading page, with its security headers
    return app
