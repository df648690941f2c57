"""API keys as the fleet reads them: permissions, IP allow-list, the sealed secret opened, and the pub/sub
message that tells every gateway replica a key or user changed.

Binance's restricted keys: ``TRADE`` (place and cancel orders), ``USER_DATA`` (read orders, trades,
balances; also opens the user data stream), ``USER_STREAM`` (only the user data stream). A key's
``ip_allow`` lists the networks it may be used from (None: any). Key management is ``spot admin key``
(``spot/keys.py``); each change is published on ``Channels.access`` so replicas drop their cached copy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from typing import Final

import asyncpg

from .envelope import LOCAL, Envelope, SealBroken

TRADE, USER_DATA, USER_STREAM = "TRADE", "USER_DATA", "USER_STREAM"
PERMISSIONS: Final = (TRADE, USER_DATA, USER_STREAM)
STREAM_PERMISSIONS: Final = frozenset({USER_DATA, USER_STREAM})  # either opens the user data stream

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

QUERY = (
    "SELECT k.user_id, k.secret_sealed, k.permissions, k.ip_allow, u.status FROM api_keys k "
    "JOIN users u USING (user_id) WHERE k.api_key = $1"
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    user_id: int
    secret: str
    permissions: frozenset[str]
    active: bool
    ip_allow: tuple[Network, ...] | None = None

    def allows_ip(self, ip: str) -> bool:
        if self.ip_allow is None:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.ip_allow)


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


def changed_key(api_key: str) -> bytes:
    """The access message: this key changed (revoked, rotated, restricted)."""
    return b"key:" + api_key.encode()


def changed_user(user_id: int) -> bytes:
    """The access message: this user changed (disabled): all their keys."""
    return b"user:" + str(user_id).encode()
