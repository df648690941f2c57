"""Every ScaledObject's Kafka trigger (rendered for every profile, and the examples in deploy/keda) reads
as KEDA's Kafka scaler reads it (../shared/crds/keda-kafka-scaler-params.md). On EKS: MSK IAM
(oauthbearer + aws_msk_iam + tls + awsRegion) through a TriggerAuthentication with the `aws` pod identity
provider, a lag threshold and an activation threshold, and a fallback for when lag cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import chart
from .contract import BROKEN, KEDA_DIR, PROFILES
from .crds import load_documents
from .kafka_scaler import auth_params, trigger_problems

EXAMPLES = [load_documents(p)[0] for p in sorted(KEDA_DIR.glob("*.yaml"))]
BROKEN_KEDA = sorted((BROKEN / "keda").glob("*.yaml"))


def _problems(docs: list[dict]) -> list[str]:
    auths = {d["metadata"]["name"]: d for d in docs if d["kind"] == "TriggerAuthentication"}
    problems = []
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] != "kafka":
                continue
            ref = trigger.get("authenticationRef", {}).get("name")
            if ref and ref not in auths:
                problems.append(f"{scaled['metadata']['name']}: TriggerAuthentication {ref} is not there")
            params = auth_params(auths.get(ref))
            problems += [f"{scaled['metadata']['name']}: {p}" for p in trigger_problems(trigger["metadata"], params)]
    return problems


def _with_cluster_objects(docs: list[dict]) -> list[dict]:
    """A release that names an existing TriggerAuthentication relies on deploy/keda's (kafka-scram)."""
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "TriggerAuthentication"}
    return docs + [d for d in EXAMPLES if d["kind"] == "TriggerAuthentication" and d["metadata"]["name"] not in names]


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_kafka_triggers_read_as_the_scaler_reads_them(rendered, profile):
    docs = [chart.strip(d) for d in rendered[profile]]
    assert not _problems(_with_cluster_objects(docs))


def test_example_kafka_triggers_read_as_the_scaler_reads_them():
    assert not _problems(EXAMPLES)


def test_eks_scales_on_msk_with_iam_through_the_keda_operators_pod_identity(rendered):
    docs = [chart.strip(d) for d in rendered["eks"]]
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    (auth,) = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    assert auth["spec"]["podIdentity"]["provider"] == "aws"
    assert len(scaled) == 4
    for doc in scaled:
        name = doc["metadata"]["name"]
        (trigger,) = doc["spec"]["triggers"]
        metadata = trigger["metadata"]
        assert metadata["sasl"] == "oauthbearer", name
        assert metadata["saslTokenProvider"] == "aws_msk_iam", name
        assert metadata["tls"] == "enable", name
        assert metadata["awsRegion"], name
        assert int(metadata["lagThreshold"]) > 0 and int(metadata["activationLagThreshold"]) >= 0, name
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"], "kind": "TriggerAuthentication"}
        fallback = doc["spec"]["fallback"]
        assert fallback["failureThreshold"] >= 1, name
        assert doc["spec"]["minReplicaCount"] <= fallback["replicas"] <= doc["spec"]["maxReplicaCount"], name


@pytest.mark.parametrize("path", BROKEN_KEDA, ids=lambda p: p.name)
def test_broken_kafka_triggers_are_refused(path: Path):
    docs = load_documents(path)
    expected = next(
        line.removeprefix("# expect:").strip() for line in path.read_text().splitlines() if line.startswith("# expect:")
    )
    problems = _problems(docs)
    assert any(expected in p for p in problems), problems
