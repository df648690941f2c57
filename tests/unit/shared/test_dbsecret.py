"""What a database secret yields: Aurora rotation's JSON, or a plain string as the password alone."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from shared.config import Settings
from shared.dbsecret import SecretUnavailable, _on_daemon_thread, _parse, region_of, url


def test_rotation_json_gives_user_and_password_and_ignores_the_rest():
    secret = {"engine": "postgres", "host": "db", "username": "spot_app", "password": "p@ss:w/rd", "port": 5432}
    assert _parse(json.dumps(secret)) == {"user": "spot_app", "password": "p@ss:w/rd"}


def test_a_plain_string_is_the_password():
    assert _parse("just-a-password") == {"password": "just-a-password"}


def test_json_without_a_password_gives_nothing_to_connect_with():
    assert _parse(json.dumps({"username": "spot_app"})) == {}


def test_without_a_secret_the_url_is_the_settings_own(monkeypatch):
    monkeypatch.delenv("DATABASE_SECRET_ID", raising=False)
    monkeypatch.delenv("DATABASE_SECRET_ARN", raising=False)
    settings = Settings(database_url="postgresql://spot@db:5432/spot")
    assert asyncio.run(url(settings)) == "postgresql://spot@db:5432/spot"


def test_either_variable_names_the_secret(monkeypatch):
    monkeypatch.setenv("DATABASE_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:spot-db")
    assert Settings().database_secret_id == "arn:aws:secretsmanager:eu-west-1:1:secret:spot-db"
    monkeypatch.setenv("DATABASE_SECRET_ID", "spot/db")
    assert Settings().database_secret_id == "spot/db"


def test_the_region_comes_from_the_secrets_arn_when_none_is_set():
    assert region_of("arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-0a1b") == "eu-west-1"
    assert region_of("arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:spot/db") == "cn-north-1"
    assert region_of("spot/db") is None  # a name: boto3's own chain (AWS_REGION) decides


def test_a_secret_read_that_hangs_is_abandoned_and_never_holds_the_exit():
    """A read on an endpoint that never answers: cancelling its await returns at once, and its thread is a
    daemon (Python joins ``asyncio.to_thread``'s threads at exit, which would wait out boto3's timeouts)."""
    release = threading.Event()

    def hangs(_: Settings) -> dict[str, str]:
        release.wait(10)
        return {"password": "late"}

    async def abandon() -> list[threading.Thread]:
        reading = asyncio.ensure_future(_on_daemon_thread(hangs, Settings()))
        await asyncio.sleep(0.05)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        return [t for t in threading.enumerate() if t.name == "database-secret"]

    threads = asyncio.run(abandon())
    assert threads and all(t.daemon for t in threads)
    release.set()
    for t in threads:
        t.join(5)  # the late result finds its loop closed, and is dropped quietly


def test_a_secret_read_hands_back_its_result_or_its_error():
    def fails(_: Settings) -> dict[str, str]:
        raise SecretUnavailable("database secret spot/db: EndpointConnectionError")

    assert asyncio.run(_on_daemon_thread(lambda _: {"password": "p"}, Settings())) == {"password": "p"}
    with pytest.raises(SecretUnavailable, match="spot/db"):
        asyncio.run(_on_daemon_thread(fails, Settings()))
