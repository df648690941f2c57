"""Aurora's rotated credentials: the fleet takes the database password from Secrets Manager (moto, over HTTP)
and keeps settling orders after the secret is rotated, the role's password changed and every connection cut.

Postgres checks passwords for a role of the test's own (a ``pg_hba.conf`` line for it alone, removed after),
so a service still holding the old password is refused; the old password is checked to be refused too.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import boto3
import pytest
from moto.server import ThreadedMotoServer

from shared.config import SERVICE_PORTS, database_role
from spot import admin
from tests.client import Client
from tests.e2e.conftest import RunningFleet, _run
from tests.faults import free_port

pytestmark = pytest.mark.e2e

REGION = "us-east-1"
SERVICE_ROLES = [database_role(service) for service in SERVICE_PORTS]
MOTO_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto takes any


def _secrets_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION, **MOTO_KEYS)


@pytest.fixture
def secrets_manager() -> Iterator[str]:
    """moto in server mode: a real HTTP endpoint the services reach as they would AWS's."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    try:
        yield f"http://127.0.0.1:{server._port}"
    finally:
        server.stop()


def _as_role(url: str, role: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))


async def _sql(url: str, *statements: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await conn.fetch(statement)
        return rows
    finally:
        await conn.close()


@pytest.fixture
def rotating_role(fresh_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A login role that owns the test's database and must give its password (scram), and its first one."""
    role, password = f"spot_rotating_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    database = urllib.parse.urlsplit(fresh_env["DATABASE_URL"]).path.lstrip("/")
    superuser = fresh_env["DATABASE_URL"]
    hba = Path(asyncio.run(_sql(superuser, "SHOW hba_file"))[0][0])
    if not hba.is_file() or not os.access(hba, os.W_OK):
        pytest.skip(f"the test Postgres' pg_hba.conf is not on this machine ({hba}): it cannot require a password")
    lines = f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n"
    original = hba.read_text()
    asyncio.run(
        _sql(
            superuser,
            "SET password_encryption = 'scram-sha-256'",
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
            f'ALTER DATABASE "{database}" OWNER TO {role}',
            # each service takes its own role (migration 0010); the app's login user is a member of each, as
            # the deploy README has an operator grant where the migrating user could not create them
            *(
                statement
                for service_role in SERVICE_ROLES
                for statement in (
                    f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{service_role}') THEN "
                    f"CREATE ROLE {service_role} NOLOGIN; END IF; "
                    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
                    f"GRANT {service_role} TO {role}",
                )
            ),
        )
    )
    hba.write_text(lines + original)  # first match wins: this role alone must authenticate
    asyncio.run(_sql(superuser, "SELECT pg_reload_conf()"))
    try:
        yield role, password
    finally:
        hba.write_text(hba.read_text().replace(lines, ""))
        asyncio.run(_sql(superuser, "SELECT pg_reload_conf()"))


@pytest.fixture
def rotated_fleet(
    fresh_env: dict[str, str], rotating_role: tuple[str, str], secrets_manager: str
) -> Iterator[tuple[RunningFleet, str]]:
    role, password = rotating_role
    sm = _secrets_client(secrets_manager)
    arn = sm.create_secret(Name=f"spot/{role}", SecretString=json.dumps({"username": role, "password": password}))[
        "ARN"
    ]
    env = dict(
        fresh_env,
        DATABASE_URL=_as_role(fresh_env["DATABASE_URL"], role),  # no password in the URL: the secret has it
        DATABASE_SECRET_ARN=arn,
        AWS_ENDPOINT_URL=secrets_manager,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID=MOTO_KEYS["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=MOTO_KEYS["aws_secret_access_key"],
    )
    for running in _run(env):
        yield running, arn


def free(account: dict, asset: str) -> Decimal:
    return next((Decimal(b["free"]) for b in account["balances"] if b["asset"] == asset), Decimal(0))


async def _trade(maker: Client, taker: Client, price: str) -> None:
    """One resting sell and one buy that takes it; both owners hear FILLED, settlement moves the money."""
    _, before = await maker.signed("GET", "account")
    maker_stream, taker_stream = await maker.user_stream(), await taker.user_stream()
    try:
        ask = await maker.order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price=price
        )
        bid = await taker.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=price
        )
        assert bid["status"] == "FILLED", bid
        for stream, order_id in ((maker_stream, ask["orderId"]), (taker_stream, bid["orderId"])):
            await stream.wait_for(
                lambda e, o=order_id: e.get("e") == "executionReport" and e["i"] == o and e["X"] == "FILLED", within=30
            )
    finally:
        await maker_stream.close()
        await taker_stream.close()
    for _ in range(100):  # settlement writes the maker's proceeds to Postgres
        status, after = await maker.signed("GET", "account")
        if status == 200 and free(after, "USDT") > free(before, "USDT"):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the maker's USDT never settled: {before} -> {after}")


@pytest.mark.timeout(240)
async def test_rotated_secret_and_password_the_fleet_reconnects_and_keeps_settling(
    rotated_fleet: tuple[RunningFleet, str],
    fresh_env: dict[str, str],
    rotating_role: tuple[str, str],
    secrets_manager: str,
) -> None:
    running, arn = rotated_fleet
    role, old_password = rotating_role
    maker_u = await admin.create_user(running.settings, "rotation-maker", [("BTC", 10**8)])
    taker_u = await admin.create_user(running.settings, "rotation-taker", [("USDT", 100_000 * 10**8)])
    maker, taker = (
        Client(running.base, maker_u.api_key, maker_u.secret),
        Client(running.base, taker_u.api_key, taker_u.secret),
    )
    try:
        await _trade(maker, taker, "50000")

        # the rotation: a new AWSCURRENT version, the role's password changed, every session of the role cut
        new_password = secrets.token_urlsafe(16)
        sm = _secrets_client(secrets_manager)
        sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": role, "password": new_password}))
        cut = await _sql(
            fresh_env["DATABASE_URL"],
            f"ALTER ROLE {role} PASSWORD '{new_password}'",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
        )
        assert cut, "no session of the role to cut: the fleet did not connect as it"
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(_as_role(fresh_env["DATABASE_URL"], role), password=old_password)

        await _trade(maker, taker, "50001")
        sessions = await _sql(
            fresh_env["DATABASE_URL"], f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"
        )
        assert sessions[0][0] > 0
    finally:
        await maker.close()
        await taker.close()
    logs = "\n".join(line for tail in running.fleet.tails.values() for line in tail)
    assert old_password not in logs and new_password not in logs
