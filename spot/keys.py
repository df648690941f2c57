"""``spot admin key``: API keys created, listed, restricted, rotated and revoked; users disabled.

A key is created with the permissions it needs (``shared.apikeys.PERMISSIONS``: TRADE, USER_DATA,
USER_STREAM, WITHDRAW) and optionally an IP allow-list. An HMAC key's secret is shown once and stored only
sealed (``shared.envelope``); an Ed25519 key is registered from the client's public key (the client keeps the
private key, as on Binance), and nothing secret is stored. Every change is published on the access
channel, so each gateway replica drops its cached copy and ends the streams the key opened within a
second (``services/gateway/access.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from shared import apikeys, envelope
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import now_ms


class NoSuchKey(LookupError):
    """The command named an API key that does not exist."""


@dataclass(frozen=True)
class NewKey:
    user_id: int
    api_key: str
    secret: str | None  # None: an Ed25519 key, whose private key only the client holds
    permissions: list[str]
    ip_allow: list[str] | None

    def as_json(self) -> dict[str, object]:
        kind = {"secret": self.secret} if self.secret is not None else {"keyType": apikeys.ED25519}
        return {
            "userId": self.user_id,
            "apiKey": self.api_key,
            **kind,
            "permissions": self.permissions,
            "ipAllow": self.ip_allow,
        }


async def publish(settings: Settings, *messages: bytes) -> None:
    """Tell every gateway replica what changed."""
    cache = aioredis.Redis.from_url(settings.redis_url)
    try:
        channel = sredis.Channels(settings.topic_suffix).access
        for m in messages:
            await cache.publish(channel, m)
    finally:
        await cache.aclose()


async def insert(
    conn: asyncpg.Connection,
    box: envelope.Envelope,
    user_id: int,
    permissions: list[str],
    ip_allow: list[str] | None = None,
    ed25519_pem: str | None = None,
) -> NewKey:
    """A new key for ``user_id`` (inside the caller's transaction): HMAC, or Ed25519 with the client's
    public key ``ed25519_pem``."""
    permissions = apikeys.check_permissions(permissions)
    nets = apikeys.networks(ip_allow)
    allow = None if nets is None else [str(n) for n in nets]
    api_key = secrets.token_urlsafe(48)
    secret: str | None = None
    if ed25519_pem is None:
        secret = secrets.token_hex(32)
        kind, sealed, public = apikeys.HMAC, box.seal(secret, api_key), None
    else:
        kind, sealed, public = apikeys.ED25519, None, apikeys.ed25519_public_key(ed25519_pem)
    await conn.execute(
        "INSERT INTO api_keys (api_key, user_id, key_type, secret_sealed, public_key, permissions, ip_allow, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        api_key,
        user_id,
        kind,
        sealed,
        public,
        permissions,
        allow,
        now_ms(),
    )
    return NewKey(user_id, api_key, secret, permissions, allow)


async def create(
    settings: Settings,
    user_id: int,
    permissions: list[str],
    ip_allow: list[str] | None = None,
    ed25519_pem: str | None = None,
) -> NewKey:
    conn = await asyncpg.connect(settings.database_url)
    try:
        if await conn.fetchval("SELECT 1 FROM users WHERE user_id = $1", user_id) is None:
            raise NoSuchKey(f"no user {user_id}")
        box = envelope.from_settings(settings)
        return await insert(conn, box, user_id, permissions, ip_allow, ed25519_pem)
    finally:
        await conn.close()


async def listed(settings: Settings, user_id: int | None = None) -> list[dict[str, object]]:
    """Keys without their secrets (which are never shown again)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT api_key, user_id, key_type, permissions, ip_allow, created_at FROM api_keys "
            "WHERE $1::bigint IS NULL OR user_id = $1 ORDER BY user_id, created_at",
            user_id,
        )
    finally:
        await conn.close()
    return [
        {
            "apiKey": r["api_key"],
            "userId": r["user_id"],
            "keyType": r["key_type"],
            "permissions": list(r["permissions"]),
            "ipAllow": None if r["ip_allow"] is None else list(r["ip_allow"]),
            "createdAt": r["created_at"],
        }
        for r in rows
    ]


async def _changed(settings: Settings, sql: str, api_key: str, *args: object) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        status = await conn.execute(sql, api_key, *args)
    finally:
        await conn.close()
    if status.endswith(" 0"):
        raise NoSuchKey(f"no API key {api_key[:12]}...")
    await publish(settings, apikeys.changed_key(api_key))


async def revoke(settings: Settings, api_key: str) -> None:
    await _changed(settings, "DELETE FROM api_keys WHERE api_key = $1", api_key)


async def restrict(settings: Settings, api_key: str, permissions: list[str]) -> None:
    checked = apikeys.check_permissions(permissions)
    await _changed(settings, "UPDATE api_keys SET permissions = $2 WHERE api_key = $1", api_key, checked)


async def allow_ips(settings: Settings, api_key: str, ip_allow: list[str] | None) -> None:
    """Restrict ``api_key`` to ``ip_allow`` (None: from anywhere)."""
    nets = apikeys.networks(ip_allow)
    allow = None if nets is None else [str(n) for n in nets]
    await _changed(settings, "UPDATE api_keys SET ip_allow = $2 WHERE api_key = $1", api_key, allow)


async def rotate(settings: Settings, api_key: str) -> NewKey:
    """A new HMAC key with the old one's user, permissions and allow-list; the old one revoked, in one
    transaction. (An Ed25519 key is rotated by registering the client's new public key and revoking it.)"""
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "DELETE FROM api_keys WHERE api_key = $1 RETURNING user_id, key_type, permissions, ip_allow", api_key
            )
            if row is None:
                raise NoSuchKey(f"no API key {api_key[:12]}...")
            if row["key_type"] != apikeys.HMAC:  # raising rolls the DELETE back
                raise ValueError("an Ed25519 key is rotated by creating one with the new public key, then revoking")
            allow = None if row["ip_allow"] is None else list(row["ip_allow"])
            new = await insert(conn, envelope.from_settings(settings), row["user_id"], list(row["permissions"]), allow)
    finally:
        await conn.close()
    await publish(settings, apikeys.changed_key(api_key))
    return new


async def set_user_status(settings: Settings, user_id: int, active: bool) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        status = await conn.execute(
            "UPDATE users SET status = $2 WHERE user_id = $1", user_id, "ACTIVE" if active else "DISABLED"
        )
    finally:
        await conn.close()
    if status.endswith(" 0"):
        raise NoSuchKey(f"no user {user_id}")
    await publish(settings, apikeys.changed_user(user_id))
