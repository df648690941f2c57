"""docker-compose.yml is valid Compose (the compose-spec JSON Schema, bundled in schemas/) and starts the
fleet as designed: KRaft Kafka, Postgres, Redis, a one-shot init, every service healthy-gated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .contract import BROKEN, COMPOSE_FILE, SERVICE_PORTS

SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
BROKEN_COMPOSE = sorted((BROKEN / "compose").glob("*.yml"))
BACKING = ("kafka", "postgres", "redis")


def schema_errors(doc: Any) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    found = []
    for error in validator.iter_errors(doc):
        # oneOf/anyOf failures carry the reasons of each branch in their context.
        for leaf in [error, *error.context]:
            found.append(f"{'/'.join(map(str, leaf.absolute_path))}: {leaf.message}")
    return found


def fleet_problems(doc: dict) -> list[str]:
    services = doc.get("services", {})
    problems = []
    missing = set(SERVICE_PORTS) | set(BACKING) | {"init"} - set(services)
    if missing - set(services):
        problems.append(f"missing services {sorted(missing - set(services))}")
    kafka = services.get("kafka", {})
    if not str(kafka.get("image", "")).startswith("apache/kafka:") or "KAFKA_PROCESS_ROLES" not in kafka.get(
        "environment", {}
    ):
        problems.append("kafka is not apache/kafka in KRaft mode")
    init = services.get("init", {})
    if init.get("entrypoint") != ["spot", "admin", "init"]:
        problems.append(f"init runs {init.get('entrypoint')}, want spot admin init")
    for name in BACKING:
        if "healthcheck" not in services.get(name, {}):
            problems.append(f"{name} has no healthcheck")
    for name, port in SERVICE_PORTS.items():
        service = services.get(name, {})
        if service.get("command") != [name]:
            problems.append(f"{name}: command {service.get('command')}, want [{name!r}] (spot run {name})")
        if str(service.get("environment", {}).get("PORT")) != str(port):
            problems.append(f"{name}: PORT {service.get('environment', {}).get('PORT')}, want {port}")
        if "test" not in service.get("healthcheck", {}):
            problems.append(f"{name} has no healthcheck")
        depends = service.get("depends_on", {})
        if (
            not isinstance(depends, dict)
            or depends.get("init", {}).get("condition") != "service_completed_successfully"
        ):
            problems.append(f"{name} does not wait for init to complete successfully")
        for backing in BACKING:
            if not isinstance(depends, dict) or depends.get(backing, {}).get("condition") != "service_healthy":
                problems.append(f"{name} does not wait for {backing} to be healthy")
        env = service.get("environment", {})
        for key in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP", "KAFKA_PARTITIONS", "INGESTION_URL", "HOST"):
            if key not in env:
                problems.append(f"{name}: {key} not set")
    if "8000:8000" not in services.get("gateway", {}).get("ports", []):
        problems.append("gateway is not published on port 8000")
    return problems


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_compose_file_is_valid_compose():
    assert not schema_errors(_load(COMPOSE_FILE))


def test_compose_starts_the_fleet_as_designed():
    assert not fleet_problems(_load(COMPOSE_FILE))


@pytest.mark.parametrize("path", BROKEN_COMPOSE, ids=lambda p: p.name)
def test_broken_compose_files_are_refused(path):
    expect = next(
        line.removeprefix("# expect:").strip() for line in path.read_text().splitlines() if line.startswith("# expect:")
    )
    doc = _load(path)
    problems = schema_errors(doc) or fleet_problems(doc)
    assert any(expect in p for p in problems), problems


def test_compose_publishes_only_the_gateway_on_every_interface():
    """Issue 20: the broker has no authentication; a port of it on 0.0.0.0 let anyone on the network
    produce orders. Only the gateway is public; anything else is bound to 127.0.0.1 or not published."""
    services = _load(COMPOSE_FILE)["services"]
    public = {
        name: port
        for name, service in services.items()
        for port in service.get("ports", [])
        if not str(port).startswith("127.0.0.1:")
    }
    assert public == {"gateway": "8000:8000"}
    assert "127.0.0.1:29092:29092" in services["kafka"]["ports"]


def test_compose_keys_live_in_a_volume_not_in_the_file():
    services = _load(COMPOSE_FILE)["services"]
    for name in ("init", "gateway", "ingestion"):  # they seal, open and sign with them
        assert "spot-keys:/var/lib/spot/keys" in services[name].get("volumes", []), name
        env = services[name]["environment"]
        assert "ENVELOPE_KEY" not in env and "SERVICE_KEY" not in env, name
