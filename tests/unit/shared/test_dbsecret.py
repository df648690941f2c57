"""What a database secret yields: Aurora rotation's JSON, or a plain string as the password alone."""

from __future__ import annotations

import asyncio
import json

from shared.config import Settings
from shared.dbsecret import _parse, url


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
