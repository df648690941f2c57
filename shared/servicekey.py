"""Calls between services signed with a key only the fleet's services hold (the gateway and ingestion).

Ingestion's HTTP API takes the user id from its caller, so it must know the caller is the gateway, which
authenticated the user: any other pod, an SSRF, or a local process on port 8001 must not place or cancel
orders as anyone. The gateway signs each call, HMAC-SHA256 over the timestamp, the path and the exact body,
with ``SERVICE_KEY`` (base64 of 32 bytes; the local fleet's ``.spot/service.key`` by default), and ingestion
refuses a call whose signature does not verify (compared in constant time) or whose timestamp is more than
``WINDOW_MS`` away from its clock. Pure, but for reading the key.

Known limit: a call captured on the wire could be replayed within the window (the cluster's traffic is
expected on a private network, TLS in the mesh); a replayed new order with the same ``newClientOrderId``
is refused as a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac

from . import keyfile
from .config import Settings

HEADER = "X-Spot-Service-Signature"
WINDOW_MS = 30_000


def key_of(settings: Settings) -> bytes:
    return keyfile.key(settings.service_key, settings.service_key_file, "SERVICE_KEY")


def _mac(key: bytes, ts: int, path: str, body: bytes) -> str:
    return hmac.new(key, f"{ts}\n{path}\n".encode() + body, hashlib.sha256).hexdigest()


def sign(key: bytes, path: str, body: bytes, now_ms: int) -> str:
    """The header value for a call to ``path`` with ``body``: ``<timestamp ms>.<hex HMAC>``."""
    return f"{now_ms}.{_mac(key, now_ms, path, body)}"


def verify(key: bytes, path: str, body: bytes, header: str | None, now_ms: int) -> bool:
    if not header:
        return False
    ts_raw, _, mac = header.partition(".")
    if not ts_raw.isascii() or not ts_raw.isdigit() or len(ts_raw) > 16:
        return False
    ts = int(ts_raw)
    if abs(now_ms - ts) > WINDOW_MS:
        return False
    return hmac.compare_digest(_mac(key, ts, path, body), mac.encode("ascii", errors="replace").decode())
