"""The chart's prerequisites come with the estate (modules/eks_addons, applied from envs/prod-addons): each
is a helm_release with an exact chart version, and each that calls AWS has its own Pod Identity role,
External Secrets' limited to the fleet's secrets. The helm provider is not in this machine's mirror,
so the module is read as HCL (python-hcl2) here, and loaded by test_terraform.py."""

from __future__ import annotations

import re

import pytest

from . import terraform
from .contract import TERRAFORM

MODULE = TERRAFORM / "modules" / "eks_addons"
# what the chart relies on (deploy/README.md), by chart name
PREREQUISITES = {
    "aws-load-balancer-controller",  # Ingress -> ALB, TargetGroupBinding
    "external-secrets",  # ExternalSecret, SecretStore
    "keda",  # ScaledObject, TriggerAuthentication
    "kube-prometheus-stack",  # ServiceMonitor, PrometheusRule CRDs; Grafana's dashboard sidecar
    "opentelemetry-collector",  # the ADOT collector: X-Ray and CloudWatch
    "karpenter",
    "vpa",
}
WITH_AWS_CALLS = {"aws-load-balancer-controller", "external-secrets", "adot-collector"}
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")


def _releases() -> dict[str, dict]:
    blocks = terraform.parse(MODULE / "main.tf")["resource"]
    return {name: body for block in blocks for name, body in block.get("helm_release", {}).items()}


def _variables() -> dict[str, dict]:
    return {
        name: body for block in terraform.parse(MODULE / "variables.tf")["variable"] for name, body in block.items()
    }


def _policies() -> dict[str, dict]:
    blocks = terraform.parse(MODULE / "iam.tf")["data"]
    return {name: body for block in blocks for name, body in block.get("aws_iam_policy_document", {}).items()}


def pinned_version(release: dict, variables: dict[str, dict]) -> str | None:
    """The release's chart version: a literal, or the default of the variable it names; None if not exact."""
    version = release.get("version", "")
    named = re.fullmatch(r"\$\{var\.(\w+)\}", version)
    if named:
        version = variables.get(named.group(1), {}).get("default", "")
    return version if EXACT_VERSION.match(version) else None


def test_every_prerequisite_is_a_release():
    assert {r["chart"] for r in _releases().values()} == PREREQUISITES


@pytest.mark.parametrize("name", sorted(_releases()))
def test_every_release_has_an_exact_chart_version(name):
    assert pinned_version(_releases()[name], _variables()), name


def test_an_unpinned_version_is_refused():
    variables = {"v": {"default": "~> 1.14"}}
    assert pinned_version({"version": "${var.v}"}, variables) is None
    assert pinned_version({"version": ""}, {}) is None
    assert pinned_version({"version": "1.14.0"}, {}) == "1.14.0"


def test_each_controller_that_calls_aws_has_a_pod_identity_role():
    iam = terraform.parse(MODULE / "iam.tf")
    identities = iam["locals"][0]["pod_identities"]
    assert set(identities) == WITH_AWS_CALLS
    resources = {kind for block in iam["resource"] for kind in block}
    assert {"aws_iam_role", "aws_iam_role_policy", "aws_eks_pod_identity_association"} <= resources
    policies = iam["locals"][1]["pod_identity_policies"]
    assert set(policies) == WITH_AWS_CALLS
    # each release runs as the ServiceAccount its role is bound to, and waits for the binding
    releases = _releases()
    for release in ("aws_load_balancer_controller", "external_secrets", "adot_collector"):
        assert "${aws_eks_pod_identity_association.controller}" in releases[release]["depends_on"]


def test_external_secrets_reads_only_the_fleets_secrets():
    statements = _policies()["external_secrets"]["statement"]
    reads = [s for s in statements if any(a.startswith("secretsmanager:") for a in s["actions"])]
    assert [s["resources"] for s in reads] == ["${var.secret_arns}"]
    assert all("*" not in str(s["resources"]) for s in statements)
    (kms,) = [s for s in statements if s["actions"] == ["kms:Decrypt"]]
    assert kms["condition"][0]["variable"] == "kms:ViaService"


def test_the_collector_exports_to_xray_and_cloudwatch():
    actions = {a for s in _policies()["adot_collector"]["statement"] for a in s["actions"]}
    assert {"xray:PutTraceSegments", "logs:PutLogEvents"} <= actions
    release = _releases()["adot_collector"]
    assert "aws-otel-collector" in release["values"][0] and "var.collector_config" in release["values"][0]
    addons_root = (TERRAFORM / "envs" / "prod-addons" / "main.tf").read_text()
    assert "deploy/otel-collector/config.yaml" in addons_root


def test_load_balancer_controller_changes_only_what_its_cluster_tagged():
    for statement in _policies()["load_balancer_controller"]["statement"]:
        changes = [a for a in statement["actions"] if re.search(r":(Delete|Modify|Set|Revoke|Authorize)", a)]
        if changes and statement["sid"] != "RegisterTargets":
            assert statement["condition"][0]["values"] == ["${var.cluster_name}"], statement["sid"]
