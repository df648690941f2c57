"""The seed's "Lambda (Order Ingestion)": the same ingestion code behind API Gateway's HTTP API.

API Gateway (payload format 2.0) routes ``POST /api/v3/order`` here without an authorizer, because
Binance clients sign their own requests: the handler checks the API key and the HMAC signature over the
raw query and body exactly as the gateway does (``shared/signing.py``), with the key's secret
opened from its envelope (``shared.envelope``: KMS on AWS) and its IP allow-list checked against the
source IP API Gateway saw, then publishes the canonical message with ``Ingestor`` and answers with the
order id (Binance's ACK response). Rate limits on this path are API Gateway's throttling. Connections are
opened on the first invocation and reused while the execution environment lives; the database and
Redis credentials are read from Secrets Manager then (``lambda_credentials``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from contextlib import AsyncExitStack
from typing import Any

from shared import apikeys, config, envelope, errors
from shared.config import Settings
from shared.errors import ApiError
from shared.ingestor import Ingestor
from shared.lifecycle import now_ms
from shared.signing import check_timestamp, parse_params, split_signature

from . import lambda_credentials
from .app import ingestor

_loop = asyncio.new_event_loop()
_state: dict[str, Any] = {}


async def _ready() -> tuple[Settings, Ingestor, envelope.Envelope]:
    if "ingestor" not in _state:
        settings = config.load(**lambda_credentials.load())  # DATABASE_URL, REDIS_URL from Secrets Manager;
        # a wrong setting: one line in the init error
        stack = AsyncExitStack()
        _state["ingestor"] = await stack.enter_async_context(ingestor(settings))
        _state["settings"], _state["stack"] = settings, stack
        _state["envelope"] = envelope.from_settings(settings)
    return _state["settings"], _state["ingestor"], _state["envelope"]


BAD_KEY = "Invalid API-key, IP, or permissions for action."


async def _key_of(ing: Ingestor, box: envelope.Envelope, api_key: str, source_ip: str) -> apikeys.ApiKey:
    found = await apikeys.fetch(ing.db, box, api_key)
    if found is None or not found.active or not found.allows_ip(source_ip):
        raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    return found


async def _handle(event: dict[str, Any]) -> dict[str, Any]:
    settings, ing, box = await _ready()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    api_key = headers.get("x-mbx-apikey", "")
    if not api_key or len(api_key) > 128:
        raise ApiError(errors.BAD_API_KEY_FMT, "API-key format invalid.", 401)
    raw_body = event.get("body") or ""
    body = base64.b64decode(raw_body) if event.get("isBase64Encoded") else raw_body.encode()
    if len(body) > settings.max_body_bytes:
        raise ApiError(errors.TOO_MANY_PARAMETERS, f"Request body larger than {settings.max_body_bytes} bytes.", 413)
    query = (event.get("rawQueryString") or "").encode()
    source_ip = str(((event.get("requestContext") or {}).get("http") or {}).get("sourceIp") or "")
    found = await _key_of(ing, box, api_key, source_ip)
    payload, signature = split_signature(query, body)
    if not found.verifies(payload, signature):
        raise ApiError(errors.INVALID_SIGNATURE, "Signature for this request is not valid.", 401)
    params = parse_params(query, body)
    check_timestamp(params, now_ms(), settings.recv_window_max_ms)
    if apikeys.TRADE not in found.permissions:
        raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
    return await ing.new_order(found.user_id, params)


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """AWS Lambda entry point (API Gateway HTTP API, payload format 2.0)."""
    try:
        return _response(200, _loop.run_until_complete(_handle(event)))
    except ApiError as refused:
        return _response(refused.http_status, refused.body())
