"""docker-compose.yml is valid Compose (the compose-spec JSON Schema, bundled in schemas/) and starts the
fleet as designed: KRaft Kafka, Postgres, Redis, a one-shot init, every service healthy-gated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared.config import database_role

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


def _podman_compose_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``podman-compose config``: the file as podman-compose resolves it (anchors merged, variables set)."""
    tool = Path(sys.executable).with_name("podman-compose")  # the dev extra's
    return subprocess.run(
        [str(tool), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        cwd=path.parent,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_podman_compose_resolves_the_file_as_docker_compose_would():
    done = _podman_compose_config(COMPOSE_FILE, {"POSTGRES_PASSWORD": "from-env"})
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert not fleet_problems(resolved)
    for name in SERVICE_PORTS:  # every service has the hardening and settings of the shared anchors
        service = resolved["services"][name]
        assert service["image"] == "spot-exchange:local" and service["read_only"] is True, name
        assert service["user"] == "10001:10001" and service["cap_drop"] == ["ALL"], name
        assert service["environment"]["DATABASE_URL"] == "postgresql://spot:from-env@postgres:5432/spot", name
        assert service["environment"]["PORT"] == str(SERVICE_PORTS[name]), name


def test_podman_compose_refuses_a_file_that_is_not_compose(tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  gateway:\n    <<: *undefined-anchor\n")
    assert _podman_compose_config(broken).returncode != 0


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


def test_compose_runs_each_service_as_its_own_database_role():
    """Migration 0010: each service acts as ``spot_<service>`` (only what its statements need); ``init``
    migrates and seeds as the login user."""
    services = _load(COMPOSE_FILE)["services"]
    roles = {name: services[name]["environment"].get("DATABASE_ROLE") for name in SERVICE_PORTS}
    assert roles == {name: database_role(name) for name in SERVICE_PORTS}
    assert "DATABASE_ROLE" not in services["init"]["environment"]
