"""One order is one trace across the fleet's six processes, exported over real OTLP/HTTP.

The test process runs a small OTLP/HTTP receiver (the services' own ``OTLPSpanExporter`` posts protobuf
``ExportTraceServiceRequest`` bodies to it, decoded with ``opentelemetry-proto``). A crossing order goes
through gateway, ingestion, order-processor, matcher, settlement and market-data and back to the buyer's
WebSocket; every span of its trace must hang from the gateway's one root, hop by hop, with each service
present. The match-latency histogram's bulk observation is checked against prometheus_client's own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import CollectorRegistry, Histogram

from services.matcher.pipeline import MATCH_SECONDS, observe_latencies
from spot import admin
from tests.client import Client
from tests.e2e.conftest import RunningFleet, _run

pytestmark = pytest.mark.e2e

SERVICES = {"gateway", "ingestion", "order-processor", "matcher", "settlement", "market-data"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    attributes: dict[str, Any]


class Receiver:
    """OTLP/HTTP traces endpoint on a free loopback port; keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.path == "/v1/traces" and self.headers.get("Content-Encoding") in (None, "identity")
                if ok:
                    receiver.take(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def take(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for rs in request.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attributes = {a.key: _value(a.value) for a in s.attributes}
                    found.append(
                        Span(
                            resource.get("service.name", "?"),
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            attributes,
                        )
                    )
        with self._lock:
            self.spans += found

    def trace_of(self, request_id: int) -> list[Span]:
        """Every span of the trace in which ingestion sent ``request_id``."""
        with self._lock:
            spans = list(self.spans)
        ids = {
            s.trace_id
            for s in spans
            if s.name == "send order-requests" and s.attributes.get("spot.request_id") == request_id
        }
        assert len(ids) <= 1, f"request {request_id} was sent in several traces"
        return [s for s in spans if s.trace_id in ids]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def traced_fleet(fresh_env: dict[str, str], receiver: Receiver) -> Iterator[RunningFleet]:
    """The fleet with tracing on: every service exports to the receiver, flushing every 100 ms."""
    # through the ingestion service (not the default): the trace must cross every HTTP hop there is
    env = {
        **fresh_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "INGESTION_IN_GATEWAY": "false",
    }
    yield from _run(env)


async def _crossing_order(fleet: RunningFleet) -> int:
    """A resting sell, then a buy that crosses it while the buyer watches its stream; the buy's order id."""
    settings = fleet.settings
    seller_u = await admin.create_user(settings, "seller", [("BTC", 10 * 10**8)])
    buyer_u = await admin.create_user(settings, "buyer", [("USDT", 100_000 * 10**8)])
    seller = Client(fleet.base, seller_u.api_key, seller_u.secret)
    buyer = Client(fleet.base, buyer_u.api_key, buyer_u.secret)
    stream = await buyer.user_stream()
    try:
        ask = await seller.order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5", price="50000"
        )
        assert ask["status"] == "NEW", ask
        bid = await buyer.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2", price="50010"
        )
        assert bid["status"] == "FILLED", bid
        await stream.wait_for(
            lambda e: e.get("e") == "executionReport" and e["i"] == bid["orderId"] and e["x"] == "TRADE"
        )
        return int(bid["orderId"])
    finally:
        await stream.close()
        await seller.close()
        await buyer.close()


def _complete(spans: list[Span]) -> bool:
    names = {(s.service, s.name) for s in spans}
    return {s.service for s in spans} >= SERVICES and {
        ("gateway", "receive order-outcome"),
        ("gateway", "send websocket"),
        ("market-data", "process trade-execution"),
    } <= names


def test_one_order_is_one_connected_trace_across_every_service(traced_fleet: RunningFleet, receiver: Receiver) -> None:
    order_id = asyncio.run(_crossing_order(traced_fleet))
    deadline = time.monotonic() + 20
    spans = receiver.trace_of(order_id)
    while not _complete(spans) and time.monotonic() < deadline:
        time.sleep(0.2)
        spans = receiver.trace_of(order_id)
    assert {s.service for s in spans} == SERVICES, sorted({(s.service, s.name) for s in spans})

    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if not s.parent_id]
    assert [(r.service, r.name) for r in roots] == [("gateway", "POST /api/v3/order")], roots
    orphans = [s for s in spans if s.parent_id and s.parent_id not in by_id]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"

    def parents_of(service: str, name: str) -> set[tuple[str, str]]:
        matching = [s for s in spans if (s.service, s.name) == (service, name)]
        assert matching, f"no {name} span in {service}"
        return {(by_id[s.parent_id].service, by_id[s.parent_id].name) for s in matching}

    def parent_of(service: str, name: str) -> tuple[str, str]:
        parents = parents_of(service, name)
        assert len(parents) == 1, parents
        return parents.pop()

    # the hops, in the order the order travels them
    assert parent_of("gateway", "POST /internal/orders") == ("gateway", "POST /api/v3/order")
    assert parent_of("ingestion", "POST /internal/orders") == ("gateway", "POST /internal/orders")
    assert parent_of("ingestion", "send order-requests") == ("ingestion", "POST /internal/orders")
    assert parent_of("order-processor", "process order-requests") == ("ingestion", "send order-requests")
    assert parent_of("order-processor", "postgres take_holds") == ("order-processor", "process order-requests")
    assert parent_of("matcher", "process validated-orders") == ("order-processor", "process order-requests")
    assert parent_of("matcher", "redis book_commit") == ("matcher", "process validated-orders")
    assert parent_of("settlement", "process matched-events") == ("matcher", "process validated-orders")
    assert parent_of("market-data", "process matched-events") == ("matcher", "process validated-orders")
    assert parent_of("market-data", "process trade-execution") == ("matcher", "process validated-orders")
    assert parent_of("gateway", "receive order-outcome") == ("settlement", "process matched-events")
    # the owner hears of the order twice: NEW from the processor once its hold committed, the fill from market-data
    assert parents_of("gateway", "push user stream") == {
        ("order-processor", "process order-requests"),
        ("market-data", "process matched-events"),
    }
    assert parent_of("gateway", "send websocket") in {
        ("gateway", "push user stream"),
        ("gateway", "push market stream"),
    }
    consumed = [s for s in spans if s.name.startswith("process ")]
    assert all(s.attributes.get("spot.symbol") == "BTCUSDT" for s in consumed)


def test_bulk_latency_observation_equals_one_observe_per_value() -> None:
    """The matcher's per-batch observation adds exactly what ``observe`` per order would."""
    reference = Histogram(
        "reference_latency_seconds", "", buckets=MATCH_SECONDS._upper_bounds[:-1], registry=CollectorRegistry()
    )
    waited = [0, 1, 2, 3, 3, 3, 7, 10, 11, 250, 999, 1000, 1000, 30_000, 45_000, -4, -4]
    for ms in waited:
        reference.observe(max(ms, 0) / 1000)

    def state(h: Histogram) -> tuple[list[float], float]:
        return [b.get() for b in h._buckets], h._sum.get()

    before_buckets, before_sum = state(MATCH_SECONDS)
    observe_latencies(2000, [2000 - w for w in waited])
    after_buckets, after_sum = state(MATCH_SECONDS)
    ref_buckets, ref_sum = state(reference)
    assert [a - b for a, b in zip(after_buckets, before_buckets, strict=True)] == ref_buckets
    assert after_sum - before_sum == pytest.approx(ref_sum)
