"""Pieces every FastAPI service shares: health and metrics routes, request metrics, Binance-shaped errors.

A fault the service expects (a dependency lost, a timeout, a pool with nothing free) is answered in
Binance's words with a 503 and counted, with one warning line at most every few seconds
(``shared.overload``); only a bug gets a 500 and a traceback in the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.exceptions import RedisError

from . import overload, tracing
from .errors import DISCONNECTED, UNKNOWN, ApiError
from .lifecycle import Health
from .resilience import outage

log = logging.getLogger(__name__)


def add_health_routes(app: FastAPI, health: Health) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        ready, detail = await health.check()
        return JSONResponse({"ready": ready, "detail": detail}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


UNAVAILABLE = {"code": DISCONNECTED, "msg": "Internal error; unable to process your request. Please try again."}


def unavailable(exc: Exception) -> Response | None:
    """A 503 in Binance's words when a dependency went away (a bug gets None: the caller's 500)."""
    lost = outage(exc)
    if lost is None:
        return None
    overload.expected(lost, f"request failed: {lost} unavailable ({type(exc).__name__}); answered 503 (-1001)")
    return JSONResponse(UNAVAILABLE, status_code=503, headers={"Retry-After": "1"})


def error_response(exc: Exception) -> Response:
    """Binance's ``{"code", "msg"}`` for any exception: the client's 4xx for an ``ApiError``, a 503 for a
    lost dependency, else a generic 500 (the fault is logged, never sent)."""
    if isinstance(exc, ApiError):
        return JSONResponse(exc.body(), status_code=exc.http_status, headers=exc.headers)
    found = unavailable(exc)
    if found is not None:
        return found
    log.error("unexpected %s", type(exc).__name__, exc_info=exc)
    return JSONResponse({"code": UNKNOWN, "msg": "An unknown error occurred while processing the request."}, 500)


# The library errors that may mean a lost dependency (``resilience.outage`` tells). Starlette hands a handler
# registered for ``Exception`` to its outermost middleware, which answers and then raises the exception
# again for the server to log: every 503 of an outage or an exhausted pool became an "Exception in ASGI
# application" traceback (1,843 in ingestion's log in a 10-minute overload). Handlers registered for these
# classes run in the inner middleware, which answers and is done.
EXPECTED_FAULTS: tuple[type[Exception], ...] = (
    RedisError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    KafkaError,
    OSError,  # TimeoutError and ConnectionError too
)


def add_error_handlers(app: FastAPI) -> None:
    async def answer(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    kinds: tuple[type[Exception], ...] = (ApiError, *EXPECTED_FAULTS)
    for kind in kinds:
        app.add_exception_handler(kind, answer)
    app.add_exception_handler(Exception, answer)  # a bug: a 500, and the server logs its traceback


REQUESTS = Counter("spot_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
LATENCY = Histogram(
    "spot_http_request_seconds",
    "HTTP request latency by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by route template (not raw path) and status.

    With tracing on it also opens the request's SERVER span (``continue_traces``: take the caller's
    ``traceparent``, for internal services only; see ``tracing.ServerSpan``).
    """

    def __init__(self, app: Any, continue_traces: bool = False) -> None:
        self.app = app
        self.continue_traces = continue_traces
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labels() takes a lock per call

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        span = tracing.server_span(scope, self.continue_traces)

        async def record_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            series = self._series.get((scope["method"], route, status))
            if series is None:  # a route template and a status: a few dozen at most
                series = self._series[(scope["method"], route, status)] = (
                    REQUESTS.labels(scope["method"], route, str(status)),
                    LATENCY.labels(route),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)
            if span is not None:
                span.end(scope["method"], route, status)
