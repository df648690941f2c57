"""The fleet's keys reach the pods that need them, the same for every pod (README "Security").

SERVICE_KEY must be one value for the gateway (which signs its calls to ingestion) and ingestion (which
verifies them); the API secrets' KEK must be one for every pod: KMS on EKS (KMS_KEY_ID, no ENVELOPE_KEY),
ENVELOPE_KEY elsewhere. Each service's connections act as its own database role (DATABASE_ROLE,
spot_<service>).
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import database_role

from .contract import PROFILES

Docs = list[dict[str, Any]]


def _deployments(docs: Docs) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Deployment"}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _secret_keys(docs: Docs) -> dict[str, set[str] | None]:
    """Secret name -> the keys the release puts in it (None: an existing Secret the chart does not render)."""
    keys: dict[str, set[str] | None] = {}
    for d in docs:
        if d["kind"] == "Secret":
            keys[d["metadata"]["name"]] = set(d.get("stringData", {})) | set(d.get("data", {}))
        elif d["kind"] == "ExternalSecret":
            keys[d["spec"]["target"]["name"]] = set(d["spec"]["target"]["template"]["data"])
    return keys


def env_source(docs: Docs, workload: dict[str, Any], name: str) -> tuple[str, str] | None:
    """Where the container's variable `name` comes from, as (Secret, key), or None when from no Secret.

    An explicit env entry wins over envFrom, and a later envFrom source over an earlier one (Kubernetes'
    order). A Secret the chart does not render (existingSecret) is taken to hold the key."""
    container = _container(workload)
    for entry in container.get("env", []):
        if entry["name"] == name:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    rendered = _secret_keys(docs)
    for source in reversed(container.get("envFrom", [])):
        ref = source.get("secretRef")
        if ref:
            keys = rendered.get(ref["name"])
            if keys is None or name in keys:
                return ref["name"], name
    return None


def _config_data(docs: Docs) -> dict[str, str]:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config"))["data"]


@pytest.mark.parametrize("profile", PROFILES)
def test_gateway_and_ingestion_read_service_key_from_the_same_secret_key(rendered, profile):
    deployments = _deployments(rendered[profile])
    sources = {
        service: env_source(rendered[profile], deployments[service], "SERVICE_KEY")
        for service in ("gateway", "ingestion")
    }
    assert sources["gateway"] is not None, "the gateway has no SERVICE_KEY: it would sign with a key file of its own"
    assert sources["gateway"] == sources["ingestion"], sources


def test_the_chart_made_secret_holds_the_configured_keys(rendered):
    secret = next(d for d in rendered["local"] if d["kind"] == "Secret")["stringData"]
    assert secret["SERVICE_KEY"] and secret["ENVELOPE_KEY"]
    assert "KMS_KEY_ID" not in _config_data(rendered["local"])


def test_eks_wraps_with_kms_and_has_no_envelope_key(rendered):
    docs = rendered["eks"]
    assert _config_data(docs)["KMS_KEY_ID"].startswith("arn:aws:kms:")
    external = next(d for d in docs if d["kind"] == "ExternalSecret")
    assert "ENVELOPE_KEY" not in external["spec"]["target"]["template"]["data"]
    assert external["spec"]["target"]["template"]["data"]["SERVICE_KEY"] == "{{ .serviceKey }}"
    remote = {r["secretKey"]: r["remoteRef"] for r in external["spec"]["data"]}
    assert remote["serviceKey"] == {
        "key": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:spot-prod/service-key-AbCdEf"
    }
    for service, deployment in _deployments(docs).items():
        assert env_source(docs, deployment, "ENVELOPE_KEY") is None, service
    init = next(d for d in docs if d["kind"] == "Job")
    env = {e["name"]: e.get("value") for e in _container(init)["env"]}
    assert env["KMS_KEY_ID"] == _config_data(docs)["KMS_KEY_ID"], "spot admin init seals with the same KEK"


@pytest.mark.parametrize("profile", PROFILES)
def test_each_service_acts_as_its_own_database_role(rendered, profile):
    """Migration 0010's roles, one per service, named as ``shared.config.database_role`` names them; the
    init Job migrates as the login user."""
    roles = {
        service: [e.get("value") for e in _container(d).get("env", []) if e["name"] == "DATABASE_ROLE"]
        for service, d in _deployments(rendered[profile]).items()
    }
    assert roles == {service: [database_role(service)] for service in roles}
    assert "gateway" in roles, "every profile runs the gateway"
    assert "DATABASE_ROLE" not in _config_data(rendered[profile])
    for d in rendered[profile]:
        if d["kind"] == "Job":
            assert "DATABASE_ROLE" not in {e["name"] for e in _container(d).get("env", [])}
