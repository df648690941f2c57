"""The Lambda's URLs from its secrets: any password and token survive the trip into the URL, and the URLs
have the shape the fleet's ExternalSecret gives (TLS to Aurora and to ElastiCache)."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from services.ingestion.lambda_credentials import load, urls
from shared.config import Settings

ENV = {
    "DATABASE_HOST": "spot-prod.cluster-c0ffee.eu-west-1.rds.amazonaws.com",
    "DATABASE_PORT": "5432",
    "DATABASE_NAME": "spot",
    "REDIS_HOST": "master.spot-prod.c0ffee.euw1.cache.amazonaws.com",
    "REDIS_PORT": "6379",
}
printable = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@given(user=printable, password=printable, token=printable)
def test_any_credentials_come_back_out_of_the_urls(user: str, password: str, token: str) -> None:
    built = urls(ENV, json.dumps({"username": user, "password": password}), token)
    database, redis = urlsplit(built["database_url"]), urlsplit(built["redis_url"])
    assert (unquote(database.username or ""), unquote(database.password or "")) == (user, password)
    assert (database.hostname, database.port, database.path, database.query) == (
        ENV["DATABASE_HOST"],
        5432,
        "/spot",
        "sslmode=require",
    )
    assert (redis.scheme, unquote(redis.password or ""), redis.hostname, redis.port) == (
        "rediss",
        token,
        ENV["REDIS_HOST"],
        6379,
    )
    assert Settings(**built).database_url == built["database_url"]


def test_a_local_run_without_secret_arns_adds_nothing() -> None:
    assert load({}) == {}
