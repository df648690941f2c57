"""Process lifecycle: logging, signals, and the health/metrics endpoint of the consumer services.

``run_until_signal`` runs ``serve(settings, stop, health)`` until SIGTERM or SIGINT; ``serve`` finishes the
batch in hand and returns. Consumer services expose ``/healthz`` (alive), ``/readyz`` (connected and
consuming) and ``/metrics`` on a tiny asyncio HTTP server; the gateway and ingestion serve the same paths
from FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from uvicorn.config import STARTUP_FAILURE

from . import config, identity, resilience, shutdown, tracing
from .config import Settings

MAX_REQUEST_LINE = 4096
OUTAGE_RETRY_S, OUTAGE_RETRY_MAX_S = 0.5, 5.0
OUTAGES = Counter(
    "spot_dependency_outages_total", "Times serving stopped because a dependency went away", ["dependency"]
)


class Health:
    """Readiness: the service says it is serving (``up``) and every dependency it holds answers a probe."""

    def __init__(self) -> None:
        self.ready = False
        self.detail = "starting"
        self._probes: dict[str, resilience.Probe] = {}

    def watch(self, probes: dict[str, resilience.Probe]) -> None:
        """Dependencies to probe on each readiness check (replaces those of an earlier serving round)."""
        self._probes = dict(probes)

    def up(self) -> None:
        self.ready, self.detail = True, "ok"

    def down(self, why: str) -> None:
        self.ready, self.detail, self._probes = False, why, {}

    async def check(self) -> tuple[bool, str]:
        """(ready, detail) as ``/readyz`` reports it."""
        if not self.ready:
            return False, self.detail
        failing = await resilience.failing(self._probes)
        return (False, "not answering: " + ", ".join(failing)) if failing else (True, self.detail)


_CREDENTIALS = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")  # the password of a URL's user:password@


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so CloudWatch and Loki can index the fields.

    A line logged while a span is current carries its ``trace_id``/``span_id`` (X-Ray and the logs join on
    them); a password inside a URL (a DSN in an exception) is masked, so logs hold no credentials.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": _CREDENTIALS.sub(r"\1***@", record.getMessage()),
        }
        for key in ("service", "order_id", "trace_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if tracing.ENABLED and "trace_id" not in entry:
            ids = tracing.current_ids()
            if ids is not None:
                entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exc"] = _CREDENTIALS.sub(r"\1***@", self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    old_factory = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        record.service = service
        return record

    logging.setLogRecordFactory(factory)


async def _serve_health(health: Health, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
        path = line.split(b" ")[1] if line.count(b" ") >= 2 and len(line) < MAX_REQUEST_LINE else b"/"
        while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
            pass
        if path == b"/metrics":
            status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        elif path == b"/healthz":
            status, ctype, body = "200 OK", "application/json", b'{"status":"alive"}'
        elif path == b"/readyz":
            ready, detail = await health.check()
            status = "200 OK" if ready else "503 Service Unavailable"
            ctype, body = "application/json", json.dumps({"ready": ready, "detail": detail}).encode()
        else:
            status, ctype, body = "404 Not Found", "application/json", b'{"code":-1,"msg":"not found"}'
        head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
    except (TimeoutError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


Serve = Callable[[Settings, asyncio.Event, Health], Awaitable[None]]


async def run_until_signal(serve: Serve, settings: Settings, service: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop.set()  # serving: finish the batch in hand
        shutdown.request()  # waiting for a dependency: stop waiting

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    health = Health()
    server = await asyncio.start_server(
        lambda r, w: _serve_health(health, r, w), settings.host, settings.port_for(service)
    )
    log = logging.getLogger(service)
    log.info("%s listening for health checks on %s:%d", service, settings.host, settings.port_for(service))
    gc.collect()
    gc.freeze()  # start-up objects live forever; keep them out of every later collection
    started = time.monotonic()
    try:
        await serve_through_outages(serve, settings, stop, health, log)
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
        log.info("%s stopped after %.1fs", service, time.monotonic() - started)


async def serve_through_outages(
    serve: Serve, settings: Settings, stop: asyncio.Event, health: Health, log: logging.Logger
) -> None:
    """Serve; when a dependency goes away, report not-ready, wait with backoff and serve again.

    Serving again is safe because every service resumes from committed state (Kafka offsets, Redis
    books, Postgres rows) and deduplicates redelivered input. A bug is not an outage and is re-raised.
    Before each round the fleet's identity is checked (``shared.identity``): state of another fleet or log
    epoch keeps the service not-ready, with one line that names the way out, until it is repaired.
    """
    delay = OUTAGE_RETRY_S
    refused = ""
    while not stop.is_set():
        began = time.monotonic()
        try:
            await identity.verify(settings)
            await serve(settings, stop, health)
            return
        except shutdown.Stopping:
            return  # asked to stop while waiting for a dependency: nothing was started
        except identity.ForeignState as exc:
            if str(exc) != refused:  # one line, not one per retry
                refused = str(exc)
                log.error("refusing to serve: %s", refused)
            health.down(f"refusing to serve: {refused}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), identity.REFUSED_RETRY_S)
            continue
        except Exception as exc:
            lost = resilience.outage(exc)
            if lost is None:
                raise
            if stop.is_set():  # the stop came while a try to reach it was failing: a clean stop, not a crash
                log.info("stopping; %s was not reachable (%s)", lost, type(exc).__name__)
                return
            OUTAGES.labels(lost).inc()
            if time.monotonic() - began > OUTAGE_RETRY_MAX_S * 4:
                delay = OUTAGE_RETRY_S  # it served a while: a new outage, not the same one
            health.down(f"waiting for {lost}")
            log.warning("lost %s (%s: %s); serving again in %.1fs", lost, type(exc).__name__, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, OUTAGE_RETRY_MAX_S)


def run(serve: Serve, service: str) -> None:
    """Entry point of a consumer service: settings first, so a bad setting fails at boot."""
    settings = config.load()
    setup_logging(service, settings.log_level)
    tracing.setup(service, settings)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    asyncio.run(run_until_signal(serve, settings, service))


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by SIGTERM in every state, and with exit code 0.

    uvicorn notes a signal and acts on it only once the app has started, but a web service's start waits
    for its dependencies (the lifespan): the stop request makes those waits end (``shared.shutdown``). And
    uvicorn raises the signal again once it has stopped, so the process died of it (exit code -15) even
    after a clean shutdown; a signal handled here is not raised again.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for open connections
        self.should_exit = True
        if self._loop is not None:
            shutdown.request_threadsafe(self._loop)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        quiet = _StartupStopped()  # only while starting: later errors are always reported
        logging.getLogger("uvicorn.error").addFilter(quiet)
        try:
            await super().startup(sockets)
        except SystemExit:  # the lifespan failed; when it was a stop request, that is a clean stop
            if not shutdown.requested():
                raise
        finally:
            logging.getLogger("uvicorn.error").removeFilter(quiet)


class _StartupStopped(logging.Filter):
    """Drops uvicorn's report of a failed start (the lifespan's traceback, "Application startup failed") when
    the start ended because a stop was requested: that is a clean stop, not a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not shutdown.requested()


def serve_http(app: Callable[..., Any], settings: Settings, service: str, **options: Any) -> None:
    """Entry point of a web service (gateway, ingestion): uvicorn on the service's port until SIGTERM or
    SIGINT, in every state, with exit code 0 (``_Server``). ``options`` are uvicorn's (loop, http, ws, ...)."""
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port_for(service), log_level="warning", access_log=False, **options
    )
    server = _Server(config)
    server.run()
    if not server.started and not shutdown.requested():
        sys.exit(STARTUP_FAILURE)


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """``work`` as a task for the block's lifetime, cancelled and awaited on leaving it (a side job such as the
    segment keeper must not outlive the connections it uses)."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def now_ms() -> int:
    return time.time_ns() // 1_000_000
