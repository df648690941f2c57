"""The gateway keeps its OpenAPI description: schemathesis finds no 5xx and no response off the schema.

Signed endpoints are explored too, not just refused: an auth provider gives every generated request a real
API key, a fresh timestamp and a signature over the exact query and body bytes that will be sent. The
refusals themselves (stale timestamps, foreign keys, ...) are tests/e2e/test_hostile.py's job.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder

from services.gateway.routes import spec
from shared.order_request import NEW_ORDER_PARAMS
from spot import admin
from tests.conftest import make_env

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 20  # per operation (21) in the fuzzing phase: the run takes ~40 s on an idle machine
RECV_WINDOW_MS = 10_000
SIGNING = ("timestamp", "recvWindow", "signature")
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {  # what this test promises: no 5xx, and every status, media type and body as described
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
        },
        "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION},
        # listed markets and sensible sizes often enough that orders get past the symbol and the filters
        "dictionaries": {
            "markets": {"values": ["BTCUSDT", "ETHUSDT"]},
            "prices": {"values": ["50000", "49999.99", "3000.5", "0.01"]},
            "quantities": {"values": ["0.001", "0.01", "0.5"]},
        },
        "parameters": {
            f"{where}.{name}": {"dictionary": dictionary, "probability": 0.7}
            for where in ("query", "body")
            for name, dictionary in (("symbol", "markets"), ("price", "prices"), ("quantity", "quantities"))
        },
        "phases": {"stateful": {"enabled": False}},  # no links between operations are declared
        "suppress-health-check": ["all"],
        "workers": 1,  # hypothesis parses lambdas with ast, which CPython 3.11 cannot do from several threads
    }
)


@pytest.fixture(scope="module")
def module_env(servers: dict[str, str]) -> dict[str, str]:
    """This module's fleet, with a weight budget the fuzzer cannot spend: a 429 would hide every other answer."""
    return {**make_env(servers), "REQUEST_WEIGHT_PER_MINUTE": "10000000"}


# Framing headers belong to the HTTP client: a fuzzed one ('content-length;', empty) makes a malformed request
# that uvicorn itself refuses (400, text/plain) before any of the gateway's code runs.
FRAMING = re.compile(r"-H '(content-length|transfer-encoding|host|connection|expect)[;:]", re.IGNORECASE)


def _wire(case: schemathesis.Case) -> tuple[str, bytes]:
    """The query string and body exactly as requests will send them for ``case``."""
    kwargs = case.as_transport_kwargs(base_url=case.operation.base_url)
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        data=kwargs.get("data"),
        json=kwargs.get("json"),
        headers=kwargs.get("headers"),
    ).prepare()
    body = prepared.body or b""
    assert isinstance(body, str | bytes), "form and JSON bodies are prepared whole, never streamed"
    return urlsplit(str(prepared.url)).query, body.encode() if isinstance(body, str) else body


def signer(api_key: str, secret: str) -> type:
    """An auth provider signing as Binance clients do; schemathesis applies it to every generated case."""

    class Signer:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            return api_key

        def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
            operation = case.operation.definition.raw
            if not operation.get("security"):
                return  # public
            case.headers["X-MBX-APIKEY"] = data
            if "signature" not in {p.get("name") for p in operation.get("parameters", [])}:
                return  # USER_STREAM: the key alone
            form = case.body if isinstance(case.body, dict) else None
            # one copy of each parameter, so that orders get past -1101 (duplicates are test_hostile.py's)
            query = {k: v for k, v in (case.query or {}).items() if form is None or k not in form}
            for params in (query, form or {}):
                for name in SIGNING:
                    params.pop(name, None)
            target = form if form is not None else query  # where ccxt puts them: the body of a POST
            target["timestamp"] = int(time.time() * 1000)
            target["recvWindow"] = RECV_WINDOW_MS
            case.query = query
            raw_query, body = _wire(case)
            # appended last, so the bytes before it are the ones signed; the gateway takes it out again
            case.query["signature"] = hmac.new(secret.encode(), raw_query.encode() + body, hashlib.sha256).hexdigest()

    return Signer


@pytest.fixture(scope="module")
def api_schema(shared_fleet: Any) -> schemathesis.BaseSchema:
    user = asyncio.run(
        admin.create_user(shared_fleet.settings, "fuzzer", [("BTC", 1_000 * 10**8), ("USDT", 10**8 * 10**8)])
    )
    loaded = schemathesis.openapi.from_url(f"{shared_fleet.base}/openapi.json", config=CONFIG)
    loaded.auth()(signer(user.api_key, user.secret))
    return loaded


def _failures(recorder: ScenarioRecorder) -> list[str]:
    found = []
    for checks in recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                if FRAMING.search(check.failure_info.code_sample):
                    continue
                failure = check.failure_info.failure
                found.append(f"{recorder.label}: {failure.title}\n{failure.message}\n{check.failure_info.code_sample}")
    return found


def test_gateway_answers_as_its_openapi_description_says(api_schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    for event in from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished):
            failures += _failures(event.recorder)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    statuses[event.recorder.label][interaction.response.status_code] += 1
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason == StopReason.COMPLETED, event.stop_reason
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    # the signer got the fuzzer past authentication: signed reads were answered, and orders accepted (at least
    # the body example of POST /order, a limit buy the fuzzer's balance covers)
    for label in ("GET /api/v3/account", "GET /api/v3/openOrders", "POST /api/v3/order"):
        assert statuses[label][200] > 0, {label: dict(counts) for label, counts in sorted(statuses.items())}


def test_the_description_declares_every_order_parameter_ingestion_reads() -> None:
    assert {p.name for p in spec.NEW_ORDER} == NEW_ORDER_PARAMS
