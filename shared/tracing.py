"""Traces: one order is one trace, from the gateway through every Kafka hop to settlement and the WebSocket push.

Off unless an exporter has somewhere to go (``OTEL_EXPORTER_OTLP_ENDPOINT``, or ``OTEL_TRACES_EXPORTER=console``;
``OTEL_SDK_DISABLED=true`` wins). Off, ``ENABLED`` is False and every hook returns at its first test: a consumer
pays one call per batch and one attribute test (``Consumed.tracked``) per output, and no span, context or
header is ever made. The SDK's global provider is left alone: only this module makes spans.

Propagation is W3C ``traceparent``: an HTTP header (gateway -> ingestion), a Kafka record header (every topic)
and a prefix on Redis pub/sub payloads toward the gateway (``wrap``; the hub strips it before any client sees
the payload). The gateway starts traces, sampled at ``OTEL_TRACES_SAMPLER_ARG``; everything after follows the
parent's sampled flag, and a record without a sampled ``traceparent`` creates no span in a consumer, so an
unsampled order costs the fleet nothing beyond the gateway.

Consumers work in batches, so ``consume(records)`` starts one CONSUMER span per traced record, parented on
the record's ``traceparent`` and covering the batch's work; outputs caused by that record carry its span
(``Consumed.headers``). Each timed call made while the batch is in hand (``Timed``: a Postgres transaction, a
Redis pipeline, a Kafka flush) also becomes a child span of every traced record, with the call's real start
and end: the call was shared, and each order's trace shows where its time went.

Known limits: ``tracestate`` is not carried; a trade continues the taker's trace only (the maker's command is
long gone). The matcher's envelopes carry each event's ``traceparent`` inside, so a re-publish from its
Redis outbox after a crash keeps the traces.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .config import Settings

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

ENABLED = False  # read by hot paths before anything else; set only by setup() and reset()
HEADER: Final = "traceparent"
MARK: Final = 0x1E  # first byte of a traced pub/sub payload; JSON never starts with it
_WRAPPED = 1 + 55  # mark + a version-00 traceparent
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?")
_QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/favicon.ico"})

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


class Observer(Protocol):
    """What ``Timed`` needs of a prometheus histogram (child)."""

    def observe(self, amount: float) -> None: ...


class Traced(Protocol):
    """What ``consume`` needs of a record (``shared.kafka.Record``)."""

    topic: str
    partition: int
    offset: int
    value: Any
    headers: tuple[tuple[str, bytes], ...]


# --- setup ------------------------------------------------------------------------------------------------


def setup(service: str, settings: Settings, exporter: SpanExporter | None = None) -> bool:
    """Install tracing for this process if settings (or a test's ``exporter``) give spans somewhere to go.

    A test's exporter gets every span synchronously (``SimpleSpanProcessor``); a real one is batched off the
    event loop (``BatchSpanProcessor``, tuned by the standard ``OTEL_BSP_*`` variables). Returns ENABLED.
    """
    global ENABLED, _tracer, _provider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if exporter is not None:
        processor: Any = SimpleSpanProcessor(exporter)
        where = type(exporter).__name__
    else:
        real = _exporter(settings)
        if real is None:
            return False
        processor, where = BatchSpanProcessor(real[0]), real[1]
    reset()
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_arg)),
        resource=Resource.create({SERVICE_NAME: service}),
    )
    provider.add_span_processor(processor)
    _provider, _tracer = provider, provider.get_tracer("spot")
    ENABLED = True
    log.info("tracing on: %s, sampling %.4g of new traces", where, settings.otel_traces_sampler_arg)
    return True


def _exporter(settings: Settings) -> tuple[SpanExporter, str] | None:
    """The configured exporter and a loggable description of it (never its credentials or headers)."""
    if settings.otel_sdk_disabled or settings.otel_traces_exporter == "none":
        return None
    if settings.otel_traces_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), "console"
    url = settings.otel_exporter_otlp_traces_endpoint
    if not url and settings.otel_exporter_otlp_endpoint:
        url = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    if not url:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # headers, timeout, compression and certificates come from the standard OTEL_EXPORTER_OTLP_* variables
    return OTLPSpanExporter(endpoint=url), "otlp " + re.sub(r"//[^/@]*@", "//", url)


def reset() -> None:
    """Flush and turn tracing off (tests; a process's own provider is flushed at exit by the SDK)."""
    global ENABLED, _tracer, _provider
    ENABLED = False
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


# --- traceparent ------------------------------------------------------------------------------------------


def traceparent(span: Span) -> bytes | None:
    """The W3C header value that makes ``span`` the parent downstream (None for an invalid span)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags)


def parent(value: bytes | str, sampled_only: bool = True) -> otel_context.Context | None:
    """The parent context a ``traceparent`` value names; None when malformed (or, by default, not sampled)."""
    raw = value.encode() if isinstance(value, str) else value
    m = _TRACEPARENT.fullmatch(raw)
    if m is None or m[1] == b"ff" or (m[1] == b"00" and m[5]):
        return None
    trace_id, span_id, flags = int(m[2], 16), int(m[3], 16), int(m[4], 16)
    if not trace_id or not span_id or (sampled_only and not flags & TraceFlags.SAMPLED):
        return None
    remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(remote))


def _from_headers(headers: Iterable[tuple[str, bytes]]) -> otel_context.Context | None:
    for key, value in headers:
        if key == HEADER:
            return parent(value)
    return None


def wrap(payload: bytes, tp: bytes | None) -> bytes:
    """A pub/sub payload carrying its trace: ``MARK`` + traceparent + payload (unchanged without one)."""
    return payload if tp is None or len(tp) != _WRAPPED - 1 else b"\x1e" + tp + payload


def unwrap(data: bytes) -> tuple[bytes, bytes | None]:
    """(payload, traceparent or None) of a pub/sub message; callers test ``data[0] == MARK`` first."""
    if len(data) > _WRAPPED and data[0] == MARK:
        return data[_WRAPPED:], data[1:_WRAPPED]
    return data, None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the span current in this context, for log lines; None when there is none."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


# --- consumers: one span per traced record of a batch -----------------------------------------------------


class Consumed:
    """The traced records of one batch; this base is the untraced case, every method a no-op.

    ``tracked`` is False here: a hot loop tests it (a local lookup) instead of calling ``headers`` per output.
    """

    __slots__ = ()
    tracked = False

    def headers(self, value: object) -> list[tuple[str, bytes]] | None:
        """Kafka headers continuing the trace of the record whose decoded value is ``value``."""
        return None

    def traceparent(self, value: object) -> bytes | None:
        """The traceparent of the record whose decoded value is ``value`` (for pub/sub ``wrap``)."""
        return None

    def step(self, name: str, start_ns: int, end_ns: int, error: BaseException | None) -> None:
        """Record one call made for the whole batch as a child span of every traced record."""

    def __enter__(self) -> Consumed:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


NOT_TRACED: Final = Consumed()
_batch: ContextVar[Consumed | None] = ContextVar("spot_traced_batch", default=None)


class _Consumed(Consumed):
    __slots__ = ("_spans", "_token")
    tracked = True

    def __init__(self, spans: dict[int, Span]) -> None:
        self._spans = spans
        self._token: Token[Consumed | None] | None = None

    def headers(self, value: object) -> list[tuple[str, bytes]] | None:
        span = self._spans.get(id(value))
        tp = None if span is None else traceparent(span)
        return None if tp is None else [(HEADER, tp)]

    def traceparent(self, value: object) -> bytes | None:
        span = self._spans.get(id(value))
        return None if span is None else traceparent(span)

    def step(self, name: str, start_ns: int, end_ns: int, error: BaseException | None) -> None:
        for span in self._spans.values():
            _child(span, name, start_ns, end_ns, error)

    def __enter__(self) -> Consumed:
        self._token = _batch.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            _batch.reset(self._token)
            self._token = None
        for span in self._spans.values():
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()


def consume(records: Sequence[Traced]) -> Consumed:
    """Spans for the records of a batch that carry a sampled traceparent; use as ``with consume(...) as t``.

    Keyed by the identity of each record's decoded value, so a service asks ``t.headers(command)`` with the
    object it already holds. Without tracing, or without a traced record, this is ``NOT_TRACED``.
    """
    if not ENABLED or not records:
        return NOT_TRACED
    assert _tracer is not None
    spans: dict[int, Span] = {}
    for r in records:
        if not r.headers:
            continue
        ctx = _from_headers(r.headers)
        if ctx is None:
            continue
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": r.topic,
            "messaging.destination.partition.id": str(r.partition),
            "messaging.kafka.offset": r.offset,
        }
        for name in ("request_id", "symbol", "seq"):
            found = getattr(r.value, name, None)
            if found is not None:
                attributes[f"spot.{name}"] = found
        spans[id(r.value)] = _tracer.start_span(
            f"process {r.topic}", context=ctx, kind=SpanKind.CONSUMER, attributes=attributes
        )
    return _Consumed(spans) if spans else NOT_TRACED


def _child(
    parent_span: Span,
    name: str,
    start_ns: int,
    end_ns: int,
    error: BaseException | None = None,
    kind: SpanKind = SpanKind.CLIENT,
) -> None:
    assert _tracer is not None
    span = _tracer.start_span(name, context=trace.set_span_in_context(parent_span), kind=kind, start_time=start_ns)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end(end_time=end_ns)


# seconds, for the per-batch call latencies of Postgres, Redis and Kafka
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Timed:
    """One call's latency into its histogram; with a traced batch (or span) in hand, also a child span.

    Usable as ``with`` or ``async with``, around a whole batch call, never around one message.
    """

    __slots__ = ("_histogram", "_name", "_started")

    def __init__(self, histogram: Observer, name: str) -> None:
        self._histogram = histogram
        self._name = name
        self._started = 0.0

    def __enter__(self) -> Timed:
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        elapsed = time.perf_counter() - self._started
        self._histogram.observe(elapsed)
        if ENABLED:
            end = time.time_ns()
            start = end - int(elapsed * 1e9)
            batch = _batch.get()
            if batch is not None:
                batch.step(self._name, start, end, exc)
            else:
                current = trace.get_current_span()
                if current.is_recording():
                    _child(current, self._name, start, end, exc)

    async def __aenter__(self) -> Timed:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, exc, tb)


# --- HTTP: server spans, the aiohttp client, producers ----------------------------------------------------


class ServerSpan:
    """The SERVER span of one HTTP request, current while the app handles it.

    ``continue_remote``: take the caller's ``traceparent`` (ingestion, behind the gateway). The public gateway
    does not, so no client can force its requests into the sampled share or forge a parent.
    """

    __slots__ = ("_span", "_token")

    def __init__(self, scope: dict[str, Any], continue_remote: bool) -> None:
        assert _tracer is not None
        ctx = None
        if continue_remote:
            for key, value in scope.get("headers", ()):
                if key == b"traceparent":
                    ctx = parent(value, sampled_only=False)
                    break
        method = scope.get("method", "GET")
        self._span = _tracer.start_span(
            method,
            context=ctx,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def end(self, method: str, route: str, status: int) -> None:
        otel_context.detach(self._token)
        if self._span.is_recording():
            self._span.update_name(f"{method} {route}")
            self._span.set_attribute("http.route", route)
            self._span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self._span.set_status(Status(StatusCode.ERROR))
        self._span.end()


def server_span(scope: dict[str, Any], continue_remote: bool) -> ServerSpan | None:
    """A server span for an HTTP request worth tracing (None when off, or for health and metrics scrapes)."""
    if not ENABLED or scope.get("path") in _QUIET_PATHS:
        return None
    return ServerSpan(scope, continue_remote)


def http_client_tracing() -> list[aiohttp.TraceConfig]:
    """aiohttp hooks: a CLIENT span per request, its ``traceparent`` in the request headers ([] when off)."""
    if not ENABLED:
        return []
    import aiohttp

    async def start(_: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        assert _tracer is not None
        span = _tracer.start_span(
            f"{params.method} {params.url.path}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": params.method, "server.address": params.url.host or ""},
        )
        ctx.span = span
        tp = traceparent(span)
        if tp is not None:
            params.headers[HEADER] = tp.decode()

    async def end(_: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        span: Span | None = getattr(ctx, "span", None)
        if span is not None:
            span.set_attribute("http.response.status_code", params.response.status)
            if params.response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    async def failed(_: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestExceptionParams) -> None:
        span: Span | None = getattr(ctx, "span", None)
        if span is not None:
            span.record_exception(params.exception)
            span.set_status(Status(StatusCode.ERROR, type(params.exception).__name__))
            span.end()

    config = aiohttp.TraceConfig()
    config.on_request_start.append(start)
    config.on_request_end.append(end)
    config.on_request_exception.append(failed)
    return [config]


class Producing:
    """A PRODUCER span around one send outside a batch (ingestion); ``headers`` carry it to the consumer."""

    __slots__ = ("_span", "_token", "headers")

    def __init__(self, topic: str, message: object) -> None:
        self._span: Span | None = None
        self._token: Token[Any] | None = None
        self.headers: list[tuple[str, bytes]] | None = None
        if ENABLED and trace.get_current_span().is_recording():
            assert _tracer is not None
            attributes: dict[str, Any] = {"messaging.system": "kafka", "messaging.destination.name": topic}
            for name in ("request_id", "symbol"):
                found = getattr(message, name, None)
                if found is not None:
                    attributes[f"spot.{name}"] = found
            self._span = _tracer.start_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes)
            tp = traceparent(self._span)
            self.headers = None if tp is None else [(HEADER, tp)]

    def __enter__(self) -> Producing:
        if self._span is not None:  # current, so the send's own timing nests under it
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None
        if self._span is not None:
            if exc is not None:
                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            self._span.end()


# --- pub/sub toward the gateway ---------------------------------------------------------------------------


def received(tp: bytes, name: str, attributes: dict[str, Any] | None = None) -> Span | None:
    """A CONSUMER span continuing a pub/sub message's trace; None when off or the parent is not sampled."""
    if not ENABLED:
        return None
    ctx = parent(tp)
    if ctx is None:
        return None
    assert _tracer is not None
    return _tracer.start_span(name, context=ctx, kind=SpanKind.CONSUMER, attributes=attributes)


def record(parent_span: Span, name: str, start_ns: int, end_ns: int) -> None:
    """A finished child of ``parent_span`` (the WebSocket write of a pushed message)."""
    if ENABLED:
        _child(parent_span, name, start_ns, end_ns, kind=SpanKind.PRODUCER)


def activated(span: Span) -> Any:
    """``with activated(span):`` makes ``span`` current (its log lines carry its trace id)."""
    return trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False)
