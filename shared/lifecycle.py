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
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .config import Settings

MAX_REQUEST_LINE = 4096


class Health:
    """Readiness as the service reports it: set ``ready`` once its dependencies answer."""

    def __init__(self) -> None:
        self.ready = False
        self.detail = "starting"

    def up(self) -> None:
        self.ready, self.detail = True, "ok"

    def down(self, why: str) -> None:
        self.ready, self.detail = False, why


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so CloudWatch and Loki can index the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("service", "order_id", "trace_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
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
            status = "200 OK" if health.ready else "503 Service Unavailable"
            ctype, body = "application/json", json.dumps({"ready": health.ready, "detail": health.detail}).encode()
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
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
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
        await serve(settings, stop, health)
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
        log.info("%s stopped after %.1fs", service, time.monotonic() - started)


def run(serve: Serve, service: str) -> None:
    """Entry point of a consumer service: settings first, so a bad setting fails at boot."""
    settings = Settings()
    setup_logging(service, settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    asyncio.run(run_until_signal(serve, settings, service))


def now_ms() -> int:
    return time.time_ns() // 1_000_000
