"""Every custom object (rendered by the chart for every profile, and in deploy/keda, deploy/karpenter)
matches its upstream CRD in ../shared/crds or ../shared/crds/operators (KEDA, VPA, Karpenter, Prometheus
Operator, AWS Load Balancer Controller, External Secrets), CEL rules included; every other object is a
built-in kind (test_kubernetes_objects.py). Broken objects under fixtures/broken/crds prove the check bites.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from . import chart
from .contract import BROKEN, KARPENTER_DIR, KEDA_DIR, PROFILES
from .crds import load_documents
from .test_kubernetes_objects import BUILT_IN_GROUPS

CLUSTER_FILES = sorted(KEDA_DIR.glob("*.yaml")) + sorted(KARPENTER_DIR.glob("*.yaml"))
BROKEN_CRDS = sorted((BROKEN / "crds").glob("*.yaml"))
# TriggerAuthentication has its CRD (operators/) and also the credential rules below, which a schema cannot say.
UNLISTED = {"TriggerAuthentication"}


def _expectation(path: Path) -> str:
    lines = path.read_text().splitlines()
    return next(line.removeprefix("# expect:").strip() for line in lines if line.startswith("# expect:"))


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_custom_resources_match_their_crds(rendered, crd_schemas, profile):
    checked = 0
    for doc in rendered[profile]:
        doc = chart.strip(doc)
        if crd_schemas.knows(doc):
            assert not crd_schemas.violations(doc), (
                doc["metadata"]["name"],
                [str(v) for v in crd_schemas.violations(doc)],
            )
            checked += 1
        else:
            assert doc["apiVersion"] in BUILT_IN_GROUPS, f"{doc['apiVersion']} {doc['kind']}: no CRD to check against"
    if profile == "eks":
        kinds = Counter(d["kind"] for d in rendered[profile] if crd_schemas.knows(chart.strip(d)))
        assert kinds == {
            "ScaledObject": 4,
            "TriggerAuthentication": 1,
            "VerticalPodAutoscaler": 7,
            "ServiceMonitor": 7,
            "PrometheusRule": 1,
            "TargetGroupBinding": 1,
            "SecretStore": 1,
            "ExternalSecret": 1,
        }, kinds
        assert checked == sum(kinds.values())


def test_cluster_object_files_hold_one_object_each():
    assert CLUSTER_FILES
    for path in CLUSTER_FILES:
        assert len(load_documents(path)) == 1, path


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_cluster_objects_match_their_crds(crd_schemas, path):
    (doc,) = load_documents(path)
    if doc["kind"] in UNLISTED:
        assert not trigger_authentication_problems(doc)
    assert crd_schemas.knows(doc), f"{doc['apiVersion']} {doc['kind']}"
    assert not crd_schemas.violations(doc), [str(v) for v in crd_schemas.violations(doc)]


def test_karpenter_offers_spot_and_on_demand_within_limits():
    pools = [load_documents(p)[0] for p in sorted(KARPENTER_DIR.glob("nodepool-*.yaml"))]
    capacity = set()
    for pool in pools:
        spec = pool["spec"]
        assert spec["limits"]["cpu"] and spec["limits"]["memory"], pool["metadata"]["name"]
        assert spec["disruption"]["budgets"], pool["metadata"]["name"]
        assert spec["template"]["spec"]["nodeClassRef"]["name"] == "default"
        for requirement in spec["template"]["spec"]["requirements"]:
            if requirement["key"] == "karpenter.sh/capacity-type":
                capacity |= set(requirement["values"])
    assert capacity == {"spot", "on-demand"}


def test_example_scaled_objects_reference_existing_trigger_authentications():
    names = {load_documents(p)[0]["metadata"]["name"] for p in KEDA_DIR.glob("triggerauthentication-*.yaml")}
    assert names == {"kafka-msk-iam", "kafka-scram"}
    for path in KEDA_DIR.glob("scaledobject-*.yaml"):
        for trigger in load_documents(path)[0]["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] in names, path


def test_eks_values_reference_the_msk_iam_trigger_authentication():
    values = yaml.safe_load((chart.CHART / "values-eks.yaml").read_text())
    assert values["keda"]["triggerAuthentication"] == {"create": True, "podIdentityProvider": "aws"}
    assert values["keda"]["saslTokenProvider"] == "aws_msk_iam"


def test_service_monitors_and_target_group_binding_select_real_services(rendered):
    docs = rendered["ci-all-features"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == len(services)
    for monitor in monitors:
        target = services[monitor["metadata"]["name"]]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= target["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    (binding,) = [d for d in docs if d["kind"] == "TargetGroupBinding"]
    ref = binding["spec"]["serviceRef"]
    assert ref["port"] in [p["port"] for p in services[ref["name"]]["spec"]["ports"]]
    assert ref["name"] == "spot-exchange-gateway"


@pytest.mark.parametrize("path", BROKEN_CRDS, ids=lambda p: p.name)
def test_broken_custom_resources_are_refused(crd_schemas, path):
    (doc,) = load_documents(path)
    if doc["kind"] in UNLISTED:
        problems = trigger_authentication_problems(doc)
    else:
        problems = [str(v) for v in crd_schemas.violations(doc)]
    assert any(_expectation(path) in p for p in problems), problems


def trigger_authentication_problems(doc: dict) -> list[str]:
    """KEDA's TriggerAuthentication (no CRD in ../shared/crds): exactly one credential source, well formed."""
    problems = []
    if (doc.get("apiVersion"), doc.get("kind")) != ("keda.sh/v1alpha1", "TriggerAuthentication"):
        return [f"unexpected {doc.get('apiVersion')} {doc.get('kind')}"]
    spec = doc.get("spec", {})
    unknown = set(spec) - {"podIdentity", "secretTargetRef", "env", "hashiCorpVault", "awsSecretManager"}
    if unknown:
        problems.append(f"unknown spec fields {sorted(unknown)}")
    if "podIdentity" in spec:
        if spec["podIdentity"].get("provider") not in {"aws", "azure-workload", "gcp", "none"}:
            problems.append(f"podIdentity.provider {spec['podIdentity'].get('provider')!r} is not a KEDA provider")
        if spec["podIdentity"].get("identityOwner", "keda") not in {"keda", "workload"}:
            problems.append("podIdentity.identityOwner must be keda or workload")
    for ref in spec.get("secretTargetRef", []):
        if set(ref) != {"parameter", "name", "key"}:
            problems.append(f"secretTargetRef entry {ref} needs exactly parameter, name, key")
    if not ({"podIdentity", "secretTargetRef"} & set(spec)):
        problems.append("no credential source")
    return problems
