"""API keys as the fleet reads them: permissions, IP allow-list, the sealed secret opened, how a signature
is verified, and the pub/sub message that tells every gateway replica a key or user changed.

Two kinds, as Binance issues them: HMAC-SHA256 (hex signature; the secret is stored sealed) and Ed25519
(base64 signature over the same payload, URL-encoded in a query or form body; only the client's public key
is stored). Signatures are compared in constant time.

Binance's restricted keys: ``TRADE`` (place and cancel orders), ``USER_DATA`` (read orders, trades,
balances; also opens the user data stream), ``USER_STREAM`` (only the user data stream), ``WITHDRAW`` (request
withdrawals; never on by default). A key's
``ip_allow`` lists the networks it may be used from (None: any). Key management is ``spot admin key``
(``spot/keys.py``); each change is published on ``Channels.access`` so replicas drop their cached copy.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .envelope import LOCAL, Envelope, SealBroken

TRADE, USER_DATA, USER_STREAM, WITHDRAW = "TRADE", "USER_DATA", "USER_STREAM", "WITHDRAW"
PERMISSIONS: Final = (TRADE, USER_DATA, USER_STREAM, WITHDRAW)
# what a key gets unless asked otherwise: withdrawals only when an operator grants them, as Binance's "Enable
# Withdrawals" is off on a new key
DEFAULT_PERMISSIONS: Final = (TRADE, USER_DATA, USER_STREAM)
STREAM_PERMISSIONS: Final = frozenset({USER_DATA, USER_STREAM})  # either opens the user data stream

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HMAC, ED25519 = "HMAC", "ED25519"
ED25519_SIGNATURE_MAX = 200  # base64 of 64 bytes is 88 characters, URL-encoded at most 3x that of '+/='

QUERY = (
    "SELECT k.user_id, k.secret_sealed, k.permissions, k.ip_allow, k.public_key, u.status FROM api_keys k "
    "JOIN users u USING (user_id) WHERE k.api_key = $1"
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    user_id: int
    secret: str | None  # HMAC keys
    permissions: frozenset[str]
    active: bool
    ip_allow: tuple[Network, ...] | None = None
    public_key: Ed25519PublicKey | None = None  # Ed25519 keys

    def verifies(self, payload: bytes, signature: str) -> bool:
        """Whether ``signature`` (as sent: hex for HMAC, base64 for Ed25519) signs ``payload`` with this key."""
        if self.public_key is not None:
            return ed25519_verifies(self.public_key, payload, signature)
        if self.secret is None:
            return False
        mac = hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, signature.lower().encode("ascii", errors="replace").decode())

    def allows_ip(self, ip: str) -> bool:
        if self.ip_allow is None:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.ip_allow)


def ed25519_verifies(key: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    if len(signature) > ED25519_SIGNATURE_MAX:
        return False
    try:
        key.verify(base64.b64decode(unquote(signature), validate=True), payload)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def ed25519_public_key(pem: str | bytes) -> bytes:
    """The raw 32 bytes of an Ed25519 public key in PEM (as ``openssl pkey -pubout`` writes it)."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError:
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key but {type(key).__name__}")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def networks(entries: list[str] | None) -> tuple[Network, ...] | None:
    """``["10.0.0.0/8", "203.0.113.7"]`` as networks; raises ValueError naming a bad entry."""
    if entries is None:
        return None
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"ip allow-list entry {entry[:60]!r} is not an address or network") from None
    return tuple(out)


def check_permissions(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(PERMISSIONS))
    if unknown or not names:
        raise ValueError(f"permissions must be some of {', '.join(PERMISSIONS)}; got {', '.join(names) or 'none'}")
    return [p for p in PERMISSIONS if p in names]


async def fetch(db: asyncpg.Pool | asyncpg.Connection, box: Envelope, api_key: str) -> ApiKey | None:
    """The key with its secret opened, or None if there is no such key. Unwrapping runs in a thread: with
    KMS it is a network call."""
    row = await db.fetchrow(QUERY, api_key)
    if row is None:
        return None
    if row["public_key"] is not None:
        public = Ed25519PublicKey.from_public_bytes(bytes(row["public_key"]))
        permissions, allow = frozenset(row["permissions"]), networks(row["ip_allow"])
        return ApiKey(row["user_id"], None, permissions, row["status"] == "ACTIVE", allow, public)
    sealed = bytes(row["secret_sealed"])
    try:
        if box.kek.kind == LOCAL:
            secret = box.open(sealed, api_key)
        else:
            secret = await asyncio.to_thread(box.open, sealed, api_key)
    except SealBroken as exc:  # the operator's to fix: this process's KEK is not the one that sealed the keys
        log.error("API key %s...: %s; check ENVELOPE_KEY / KMS_KEY_ID / ENVELOPE_KEY_FILE", api_key[:8], exc)
        raise
    return ApiKey(
        row["user_id"],
        secret,
        frozenset(row["permissions"]),
        row["status"] == "ACTIVE",
        networks(row["ip_allow"]),
    )


MARKETS_CHANGED = b"markets"
"""The access message of ``spot admin market``: a market was added or changed; each gateway reads them again
(the channel every replica already follows, so exchangeInfo shows a halt within a round trip)."""


def changed_key(api_key: str) -> bytes:
    """The access message: this key changed (revoked, rotated, restricted)."""
    return b"key:" + api_key.encode()


def changed_user(user_id: int) -> bytes:
    """The access message: this user changed (disabled): all their keys."""
    return b"user:" + str(user_id).encode()
