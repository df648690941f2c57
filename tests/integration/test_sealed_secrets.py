"""API secrets at rest (issue 20): sealed with the envelope key, never verifiable from the database alone.

A real Postgres: the row a new key writes holds no form of the secret that signs without the KEK, another
KEK does not open it, and migration 0009 seals the plaintext secrets an older database holds (and its
downgrade gives them back). The gateway's role reads but cannot write balances. KMS through moto's mock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator

import asyncpg
import pytest

from shared import envelope, postgres
from shared.config import Settings
from shared.envelope import Envelope, KmsKek, LocalKek, SealBroken
from spot import admin


@pytest.fixture
def env(fresh_env: dict[str, str]) -> Iterator[dict[str, str]]:
    old = dict(os.environ)
    os.environ.update(fresh_env)
    os.environ["ENVELOPE_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(old)


def _alembic(url: str, revision: str, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(postgres.ALEMBIC_INI))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    (command.downgrade if down else command.upgrade)(cfg, revision)


async def _row(url: str, api_key: str) -> asyncpg.Record:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow("SELECT * FROM api_keys WHERE api_key = $1", api_key)
    finally:
        await conn.close()


def test_no_stored_form_of_a_secret_verifies_a_signature_without_the_envelope_key(env: dict[str, str]) -> None:
    settings = Settings()
    postgres.migrate(settings.database_url)
    user = asyncio.run(admin.create_user(settings, "sealed", []))
    row = asyncio.run(_row(settings.database_url, user.api_key))
    payload = b"symbol=BTCUSDT&timestamp=1"
    signature = hmac.new(user.secret.encode(), payload, hashlib.sha256).hexdigest()
    for column, value in dict(row).items():  # no column signs, holds, or hashes the secret
        raw = value if isinstance(value, bytes) else str(value).encode()
        assert user.secret.encode() not in raw, column
        assert hashlib.sha256(user.secret.encode()).hexdigest().encode() not in raw, column
        if isinstance(value, bytes | str):
            text = raw.decode(errors="replace")
            assert hmac.new(raw, payload, hashlib.sha256).hexdigest() != signature, column
            assert hmac.new(text.encode(), payload, hashlib.sha256).hexdigest() != signature, column
    sealed = bytes(row["secret_sealed"])
    assert envelope.from_settings(settings).open(sealed, user.api_key) == user.secret
    with pytest.raises(SealBroken):  # another KEK does not open it
        Envelope(LocalKek(secrets.token_bytes(32))).open(sealed, user.api_key)
    with pytest.raises(SealBroken):  # nor does the same KEK for another key's row
        envelope.from_settings(settings).open(sealed, "another-key")


def test_migration_0009_seals_existing_plaintext_secrets_and_its_downgrade_restores_them(env: dict[str, str]) -> None:
    settings = Settings()
    _alembic(settings.database_url, "0008")
    api_key, secret = "old-key", secrets.token_hex(32)

    async def seed() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            uid = await conn.fetchval("INSERT INTO users (name, created_at) VALUES ('old', 0) RETURNING user_id")
            await conn.execute(
                "INSERT INTO api_keys (api_key, user_id, secret, permissions, created_at) "
                "VALUES ($1, $2, $3, '{TRADE}', 0)",
                api_key,
                uid,
                secret,
            )
        finally:
            await conn.close()

    asyncio.run(seed())
    _alembic(settings.database_url, "head")
    row = asyncio.run(_row(settings.database_url, api_key))
    assert "secret" not in dict(row), "the plaintext column is gone"
    assert envelope.from_settings(settings).open(bytes(row["secret_sealed"]), api_key) == secret
    _alembic(settings.database_url, "0008", down=True)
    assert asyncio.run(_row(settings.database_url, api_key))["secret"] == secret
    _alembic(settings.database_url, "head")


def test_the_gateway_role_reads_but_cannot_write_balances_or_the_ledger(env: dict[str, str]) -> None:
    settings = Settings()
    postgres.migrate(settings.database_url)
    user = asyncio.run(admin.create_user(settings, "role", [("USDT", 10**8)]))

    async def as_gateway() -> None:
        async with postgres.pool(Settings(database_role="spot_gateway"), max_size=1) as db:
            assert await db.fetchval("SELECT current_user") == "spot_gateway"
            assert await db.fetchval("SELECT available FROM balances WHERE user_id = $1", user.user_id) == 10**8
            assert await db.fetchval("SELECT nextval('order_id_blocks')") > 0  # order-id blocks, in-process ingestion
            for sql in (
                "UPDATE balances SET available = available + 1",
                "INSERT INTO ledger (ts, kind, ref, asset, amount) VALUES (0, 'x', 'x', 'USDT', 1)",
                "DELETE FROM orders",
                "UPDATE api_keys SET permissions = '{TRADE}'",
                "UPDATE users SET status = 'ACTIVE'",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await db.execute(sql)

    asyncio.run(as_gateway())


def test_kms_wraps_the_data_keys_when_configured() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        box = Envelope(KmsKek(key_id, kms))
        sealed = box.seal("s3cr3t", "key-a")
        assert b"s3cr3t" not in sealed
        assert Envelope(KmsKek(key_id, kms)).open(sealed, "key-a") == "s3cr3t"  # a new process: KMS unwraps
        with pytest.raises(SealBroken):
            Envelope(LocalKek(secrets.token_bytes(32))).open(sealed, "key-a")
