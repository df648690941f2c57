"""One name per service, from folder to every deployment object (STYLE.md, "Deployment files mirror
service names"): services/order_processor/ is `order-processor` as the image argument, the values
`services:` key, the Deployment, Service, PDB, VPA, ScaledObject, consumer group and compose service.

The chain is checked against the contract's list, and against the services/ folders and the project's
own shared.config / shared.messages where they exist. `chain_problems` is also run on a broken fleet
to prove it bites.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import yaml

from .contract import BROKEN, CHART, COMPOSE_FILE, KEDA_DIR, KEDA_TOPICS, ROOT, SERVICE_PORTS, TOPICS, package_name

PER_SERVICE_KINDS = ("Deployment", "Service", "PodDisruptionBudget", "VerticalPodAutoscaler")
FULLNAME = "spot-exchange"


def chain_problems(docs: list[dict[str, Any]], values: dict[str, Any], compose: dict[str, Any]) -> list[str]:
    problems = []
    expected = set(SERVICE_PORTS)
    if set(values.get("services", {})) != expected:
        problems.append(f"values services: {sorted(set(values.get('services', {})) ^ expected)} differ")
    if not expected <= set(compose.get("services", {})):
        problems.append(f"compose lacks {sorted(expected - set(compose.get('services', {})))}")
    for name in expected & set(compose.get("services", {})):
        if compose["services"][name].get("command") != [name]:
            problems.append(f"compose {name} runs {compose['services'][name].get('command')}")
    for kind in PER_SERVICE_KINDS:
        names = {d["metadata"]["name"] for d in docs if d["kind"] == kind}
        want = {f"{FULLNAME}-{s}" for s in expected}
        if names != want:
            problems.append(f"{kind} names {sorted(names ^ want)} differ")
    for doc in docs:
        component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if doc["kind"] in (*PER_SERVICE_KINDS, "ScaledObject", "HorizontalPodAutoscaler"):
            if doc["metadata"]["name"] != f"{FULLNAME}-{component}":
                problems.append(f"{doc['kind']} {doc['metadata']['name']} labelled {component}")
        if doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            if container["name"] != component or container.get("args") != [component]:
                problems.append(
                    f"Deployment {doc['metadata']['name']}: container {container['name']} runs {container.get('args')}"
                )
        if doc["kind"] == "ScaledObject":
            group = doc["spec"]["triggers"][0]["metadata"]["consumerGroup"]
            if group != component or doc["spec"]["scaleTargetRef"]["name"] != doc["metadata"]["name"]:
                problems.append(f"ScaledObject {doc['metadata']['name']}: group {group}")
    scaled = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs if d["kind"] == "ScaledObject"}
    if scaled != set(KEDA_TOPICS):
        problems.append(f"ScaledObjects {sorted(scaled ^ set(KEDA_TOPICS))} differ")
    return problems


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_names_chain_from_values_to_objects_and_compose(rendered, compose):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert not chain_problems(rendered["eks"], values, compose)


def test_broken_names_are_caught(rendered, compose):
    broken = yaml.safe_load((BROKEN / "names" / "fleet.yaml").read_text())
    problems = chain_problems(broken["objects"], broken["values"], compose)
    assert any("order_processor" in p for p in problems), problems
    assert any("consumerGroup" in p or "group order_processor" in p for p in problems), problems


def test_example_scaled_objects_use_service_names():
    for path in KEDA_DIR.glob("scaledobject-*.yaml"):
        service = path.stem.removeprefix("scaledobject-")
        doc = yaml.safe_load(path.read_text())
        assert service in SERVICE_PORTS
        assert doc["metadata"]["name"] == f"{FULLNAME}-{service}"
        assert doc["spec"]["triggers"][0]["metadata"]["consumerGroup"] == service
        assert doc["spec"]["triggers"][0]["metadata"]["topic"] == KEDA_TOPICS[service]


def test_service_folders_use_the_python_spelling_of_the_names():
    folders = {p.name for p in (ROOT / "services").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= {package_name(s) for s in SERVICE_PORTS}, folders
    for folder in folders:
        assert "-" not in folder


def test_project_settings_agree_with_the_contract():
    try:
        config = importlib.import_module("shared.config")
    except ImportError:
        pytest.skip("shared.config not written yet")
    ports = getattr(config, "SERVICE_PORTS", None)
    if ports is not None:
        assert dict(ports) == SERVICE_PORTS


def test_project_topics_agree_with_the_contract():
    try:
        messages = importlib.import_module("shared.messages")
    except ImportError:
        pytest.skip("shared.messages not written yet")
    topic = getattr(messages, "Topic", None)
    if topic is not None:
        assert {t.value for t in topic} == set(TOPICS)


def test_terraform_uses_the_same_names():
    iam = (ROOT / "infra" / "terraform" / "modules" / "iam" / "variables.tf").read_text()
    cloudwatch = (ROOT / "infra" / "terraform" / "modules" / "cloudwatch" / "variables.tf").read_text()
    for service in SERVICE_PORTS:
        assert f'"{service}"' in iam and f'"{service}"' in cloudwatch, service
    assert "order_processor" not in iam + cloudwatch
