"""Tracing across a real Kafka hop, with the SDK's in-memory exporter, and the consumer-lag gauge.

One process plays gateway, ingestion and two consumers over the real broker: the trace started by the
server span reaches the second consumer through Kafka headers only, each batch call becomes a child of the
traced record's span, and a record without a traceparent makes no span at all. With tracing off nothing is
made even for a record that carries one. The gateway's hub strips a traced pub/sub payload whatever its
own setting and, traced, continues the trace. Log lines carry the current trace id and no password. The
lag gauge is the broker's highwater from the consumer's own fetch minus its position, checked batch by
batch on a backlog of known size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, Histogram

from services.gateway.hub import Hub, Subscriber
from shared import kafka, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.domain import OrderType, Side, TimeInForce
from shared.lifecycle import JsonFormatter
from shared.messages import NewOrderRequest, Topic, decode_request, encode

STEP = Histogram("spot_test_step_seconds", "A batch call timed by the tracing test")
SERVER_SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/api/v3/order", "headers": []}


def _settings(servers: dict[str, str], **extra: Any) -> Settings:
    return Settings(kafka_bootstrap=servers["KAFKA_BOOTSTRAP"], topic_suffix=f".tr{secrets.token_hex(3)}", **extra)


def _request(order_id: int) -> NewOrderRequest:
    return NewOrderRequest(
        order_id=order_id,
        user_id=7,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price="50000",
        quantity="0.1",
        client_order_id=f"c{order_id}",
        ts=1,
    )


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    tracing.reset()


async def _records(inbox: kafka.Inbox[Any], want: int, stop: asyncio.Event) -> kafka.Batch[Any]:
    """The next batches until ``want`` records arrived, merged (one partition, so in offset order)."""
    merged: kafka.Batch[Any] = kafka.Batch()
    async with asyncio.timeout(20):
        async for batch in inbox.batches(stop):
            merged.records += batch.records
            merged.ends.update(batch.ends)
            if len(merged.records) >= want:
                return merged
    raise AssertionError("stopped early")


async def _two_hops(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    stop = asyncio.Event()
    async with kafka.producer(settings) as outbox:
        server = tracing.server_span(SERVER_SCOPE, continue_remote=False)
        assert server is not None
        with tracing.Producing(Topic.ORDER_REQUESTS, _request(1)) as sent:
            assert sent.headers is not None and sent.headers[0][0] == "traceparent"
            await outbox.send_now(Topic.ORDER_REQUESTS, encode(_request(1)), key="BTCUSDT", headers=sent.headers)
        server.end("POST", "/api/v3/order", 200)
        await outbox.send_now(Topic.ORDER_REQUESTS, encode(_request(2)), key="BTCUSDT")  # no trace at all

        async with kafka.consumer(settings, [Topic.ORDER_REQUESTS], "trace-a", decode_request, outbox) as inbox:
            batch = await _records(inbox, 2, stop)
            with tracing.consume(batch.records) as traced:
                with tracing.Timed(STEP, "postgres take_holds"):
                    await asyncio.sleep(0.01)
                for r in batch.records:
                    await outbox.send(Topic.VALIDATED_ORDERS, encode(r.value), "BTCUSDT", traced.headers(r.value))
                await outbox.flush()
                await inbox.commit(batch)
        async with kafka.consumer(settings, [Topic.VALIDATED_ORDERS], "trace-b", bytes, outbox) as inbox:
            batch = await _records(inbox, 2, stop)
            assert [dict(r.headers).keys() == {"traceparent"} for r in batch.records] == [True, False]
            with tracing.consume(batch.records):
                pass


def test_one_trace_crosses_kafka_and_an_untraced_record_makes_no_span(
    servers: dict[str, str], exporter: InMemorySpanExporter
) -> None:
    settings = _settings(servers, kafka_commit_interval_ms=0)  # commits per batch, inside the batch's span
    assert tracing.setup("tracing-test", settings, exporter=exporter)
    steps_before = REGISTRY.get_sample_value("spot_test_step_seconds_count") or 0
    asyncio.run(_two_hops(settings))

    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    assert len({s.context.trace_id for s in spans}) == 1, "every span belongs to the one trace"
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["POST /api/v3/order"]
    assert all(s.parent is None or s.parent.span_id in ids for s in spans), "a span's parent is missing"

    def only(name: str) -> Any:
        assert len(by_name.get(name, [])) == 1, f"{name}: {sorted(by_name)}"
        return by_name[name][0]

    server, sent = only("POST /api/v3/order"), only("send order-requests")
    first, second = only("process order-requests"), only("process validated-orders")  # one each: record 2 made none
    assert sent.parent.span_id == server.context.span_id and sent.kind is SpanKind.PRODUCER
    assert only("kafka send").parent.span_id == sent.context.span_id
    assert first.parent.span_id == sent.context.span_id and first.kind is SpanKind.CONSUMER
    assert (
        first.attributes["spot.request_id"] == 1 and first.attributes["messaging.destination.name"] == "order-requests"
    )
    assert second.parent.span_id == first.context.span_id, "the output carried its input's trace"
    for step in ("postgres take_holds", "kafka flush", "kafka commit"):
        assert only(step).parent.span_id == first.context.span_id, step
    assert only("postgres take_holds").end_time - only("postgres take_holds").start_time >= 10_000_000
    assert (REGISTRY.get_sample_value("spot_test_step_seconds_count") or 0) == steps_before + 1


def test_with_tracing_off_nothing_is_made_even_for_a_traced_record(exporter: InMemorySpanExporter) -> None:
    tracing.reset()
    header = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    record = kafka.Record("order-requests", 0, 0, _request(3), tuple(header))
    assert tracing.consume([record]) is tracing.NOT_TRACED
    assert tracing.NOT_TRACED.headers(record.value) is None
    assert tracing.server_span(SERVER_SCOPE, continue_remote=True) is None
    assert tracing.http_client_tracing() == []
    with tracing.Producing(Topic.ORDER_REQUESTS, record.value) as sent:
        assert sent.headers is None
    before = REGISTRY.get_sample_value("spot_test_step_seconds_count") or 0
    with tracing.Timed(STEP, "redis x"):  # the metric still counts
        pass
    assert REGISTRY.get_sample_value("spot_test_step_seconds_count") == before + 1
    assert exporter.get_finished_spans() == ()


def test_traceparent_parsing_is_strict_and_pubsub_wrapping_round_trips() -> None:
    good = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ctx = tracing.parent(good)
    assert ctx is not None
    from opentelemetry import trace

    span_context = trace.get_current_span(ctx).get_span_context()
    assert (span_context.trace_id, span_context.span_id) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
    for bad in (
        good[:-2] + b"00",  # not sampled: a consumer makes no span
        b"ff" + good[2:],  # forbidden version
        good.upper(),
        good[:-1],
        b"00-" + b"0" * 32 + good[35:],  # all-zero trace id
        good + b"-extra",  # version 00 has exactly four fields
        b" " + good,
    ):
        assert tracing.parent(bad) is None, bad
    assert tracing.parent(good[:-2] + b"00", sampled_only=False) is not None  # HTTP keeps an unsampled parent
    assert tracing.parent(b"01" + good[2:] + b"-future") is not None  # a later version's extra fields are allowed

    payload = b'{"e":"executionReport"}'
    assert tracing.wrap(payload, None) is payload
    wrapped = tracing.wrap(payload, good)
    assert wrapped[0] == tracing.MARK and tracing.unwrap(wrapped) == (payload, good)
    assert tracing.unwrap(payload) == (payload, None)


async def _lag_per_batch(settings: Settings, backlog: int) -> list[tuple[int, float | None]]:
    await kafka.create_topics(settings, partitions=1)
    seen: list[tuple[int, float | None]] = []
    async with kafka.producer(settings) as outbox:
        for i in range(backlog):
            await outbox.send(Topic.ORDER_REQUESTS, encode(_request(100 + i)), key="BTCUSDT")
        await outbox.flush()
        stop = asyncio.Event()
        async with kafka.consumer(settings, [Topic.ORDER_REQUESTS], "lag-test", decode_request, outbox) as inbox:
            async with asyncio.timeout(20):
                async for batch in inbox.batches(stop):
                    (end,) = batch.ends.values()
                    labels = {"group": "lag-test", "topic": "order-requests", "partition": "0"}
                    seen.append((end, REGISTRY.get_sample_value("spot_kafka_consumer_lag", labels)))
                    if end >= backlog:
                        break
    return seen


def test_consumer_lag_is_the_fetch_highwater_minus_the_position(servers: dict[str, str]) -> None:
    backlog = 7
    seen = asyncio.run(_lag_per_batch(_settings(servers, kafka_batch_max=2), backlog))
    assert len(seen) >= backlog // 2, seen  # at most two records a batch
    assert seen == [(end, float(backlog - end)) for end, _ in seen], "lag = highwater (7) - position after the batch"
    assert seen[-1] == (backlog, 0.0)


def test_a_log_line_carries_the_current_trace_and_no_password(exporter: InMemorySpanExporter) -> None:
    assert tracing.setup("tracing-test", _settings({"KAFKA_BOOTSTRAP": "unused:1"}), exporter=exporter)
    formatter = JsonFormatter()

    def line(msg: str, *args: object) -> dict[str, Any]:
        record = logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, None)
        return dict(json.loads(formatter.format(record)))

    assert "trace_id" not in line("no span, no trace id")
    server = tracing.server_span(SERVER_SCOPE, continue_remote=False)
    assert server is not None
    inside = line("lost %s", "postgresql://spot:hunter2@db:5432/spot")
    server.end("POST", "/api/v3/order", 200)
    (span,) = exporter.get_finished_spans()
    assert inside["trace_id"] == f"{span.context.trace_id:032x}" and inside["span_id"] == f"{span.context.span_id:016x}"
    assert "hunter2" not in inside["msg"] and "postgresql://spot:***@db:5432/spot" in inside["msg"]
    assert "trace_id" not in line("after the request, none again")


async def _through_hub(redis_url: str, payload: bytes) -> tuple[bytes, bytes, Subscriber]:
    """What a subscriber and the outcome callback receive of ``payload`` sent through real pub/sub."""
    channels = sredis.Channels(f".trhub{secrets.token_hex(3)}")
    listener, publisher = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    outcomes: list[bytes] = []
    told = asyncio.Event()

    def on_outcome(raw: bytes) -> None:
        outcomes.append(raw)
        told.set()

    hub = Hub(listener, on_outcome, channels)
    await hub.start()
    sub, channel = Subscriber(), channels.stream("btcusdt@trade")
    try:
        await hub.subscribe(channel, sub)
        await publisher.publish(channel, payload)
        await publisher.publish(channels.outcomes, payload)
        async with asyncio.timeout(5):
            item = await sub.next()
            assert item is not None
            _, pushed = item
            await told.wait()
        return pushed, outcomes[0], sub
    finally:
        await hub.unsubscribe(channel, sub)
        await hub.stop()
        await publisher.aclose()
        await listener.aclose()


def test_the_hub_strips_a_traced_payload_and_continues_its_trace(
    servers: dict[str, str], exporter: InMemorySpanExporter
) -> None:
    tp = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    body = b'{"e":"trade","t":1}'
    tracing.reset()  # a gateway without tracing still hands clients clean JSON
    pushed, told, sub = asyncio.run(_through_hub(servers["REDIS_URL"], tracing.wrap(body, tp)))
    assert (pushed, told, sub.traced) == (body, body, {})
    assert tracing.setup("gateway", _settings(servers), exporter=exporter)
    pushed, told, sub = asyncio.run(_through_hub(servers["REDIS_URL"], tracing.wrap(body, tp)))
    assert (pushed, told) == (body, body)
    assert list(sub.traced) == [id(pushed)], "the WebSocket write will continue the push span"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"push market stream", "receive order-outcome"}
    for span in spans.values():
        assert span.parent is not None and span.context is not None
        assert (span.context.trace_id, span.parent.span_id) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)


def test_tracing_is_off_by_default_and_on_only_with_somewhere_to_send() -> None:
    none: dict[str, Any] = {
        "otel_exporter_otlp_endpoint": "",
        "otel_exporter_otlp_traces_endpoint": "",
        "otel_traces_exporter": "otlp",
        "otel_sdk_disabled": False,
    }
    tracing.reset()
    assert not tracing.setup("ingestion", Settings(**none)) and not tracing.ENABLED
    found = tracing._exporter(Settings(**{**none, "otel_exporter_otlp_endpoint": "http://u:secret@collector:4318/"}))
    assert found is not None
    assert found[0]._endpoint == "http://u:secret@collector:4318/v1/traces"  # type: ignore[attr-defined]
    assert "secret" not in found[1], "what setup logs never holds the credentials"
    found = tracing._exporter(Settings(**{**none, "otel_exporter_otlp_traces_endpoint": "http://c:9/traces"}))
    assert found is not None and found[0]._endpoint == "http://c:9/traces"  # type: ignore[attr-defined]
    disabled = {**none, "otel_exporter_otlp_endpoint": "http://c:4318", "otel_sdk_disabled": True}
    assert tracing._exporter(Settings(**disabled)) is None
    assert (
        tracing._exporter(
            Settings(**{**none, "otel_exporter_otlp_endpoint": "http://c:4318", "otel_traces_exporter": "none"})
        )
        is None
    )
