"""The Helm chart lints, renders every profile, keeps the workload rules, and scales as section 4 says.

Broken inputs under fixtures/broken/ prove each check bites: values the schema or the templates must
refuse, and manifests the policy rules must flag.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from . import chart
from .contract import BROKEN, HPA_SERVICES, KEDA_TOPICS, KUBERNETES_VERSION, PROFILES, SERVICES, TEST_KEYS
from .policy import scaling_problems, workload_problems

BROKEN_VALUES = sorted((BROKEN / "values").glob("*.yaml"))
BROKEN_POLICY = sorted((BROKEN / "policy").glob("*.yaml"))


def _expectation(path: Path) -> str:
    """The `# expect: <text>` line of a broken fixture: what the refusal must mention."""
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return line.removeprefix("# expect:").strip()
    raise AssertionError(f"{path} has no '# expect:' line")


def _merged_values(profile: str) -> dict:
    import helm_python

    return helm_python.Chart.load(str(chart.CHART)).merge_values(chart.values_from(PROFILES[profile]))


@pytest.mark.parametrize("profile", PROFILES)
def test_chart_lints_without_warnings(profile):
    report = chart.lint(PROFILES[profile], kube_version=KUBERNETES_VERSION)
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert not findings and not report["errors"], (findings, report["errors"])


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_renders_a_deployment_and_service_per_enabled_service(rendered, profile):
    values = _merged_values(profile)
    enabled = {name for name, svc in values["services"].items() if svc["enabled"]}
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        components = {
            d["metadata"]["labels"]["app.kubernetes.io/component"] for d in rendered[profile] if d["kind"] == kind
        }
        assert components == enabled, (kind, components ^ enabled)


@pytest.mark.parametrize("profile", PROFILES)
def test_workloads_keep_probes_resources_and_non_root(rendered, profile):
    problems = [p for doc in rendered[profile] for p in workload_problems(doc)]
    assert not problems, problems


@pytest.mark.parametrize("profile", PROFILES)
def test_scaling_follows_the_design_and_stays_within_partitions(rendered, profile):
    partitions = _merged_values(profile)["kafka"]["partitions"]
    assert not scaling_problems(rendered[profile], partitions)


def test_eks_profile_scales_every_service_as_section_4_says(rendered):
    docs = rendered["eks"]
    by_kind: dict[str, set[str]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], set()).add(doc["metadata"]["labels"].get("app.kubernetes.io/component", ""))
    assert by_kind["HorizontalPodAutoscaler"] == set(HPA_SERVICES)
    assert by_kind["ScaledObject"] == set(KEDA_TOPICS)
    assert by_kind["VerticalPodAutoscaler"] == set(SERVICES)
    modes = {d["spec"]["updatePolicy"]["updateMode"] for d in docs if d["kind"] == "VerticalPodAutoscaler"}
    assert modes <= {"Auto", "Initial"}, modes
    scaled = {d["metadata"]["name"] for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")}
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        if deployment["metadata"]["name"] in scaled:
            assert "replicas" not in deployment["spec"], "an autoscaler owns the replica count"


def test_init_hook_runs_spot_admin_init_after_install_and_before_upgrade(rendered):
    jobs = [d for d in rendered["default"] if d["kind"] == "Job"]
    assert len(jobs) == 1
    job = jobs[0]
    # after install: its Secret and ServiceAccount are ordinary objects (test_release_shape.py)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["spot", "admin", "init"]
    env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"KAFKA_BOOTSTRAP", "KAFKA_PARTITIONS", "HOST"} <= env


def test_config_carries_every_setting_of_the_contract(rendered):
    config = next(d for d in rendered["eks"] if d["kind"] == "ConfigMap")["data"]
    assert {
        "KAFKA_BOOTSTRAP",
        "KAFKA_PARTITIONS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "INGESTION_URL",
        "HOST",
        "LOG_LEVEL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    } <= set(config)
    assert config["INGESTION_URL"] == "http://spot-exchange-ingestion:8001"
    assert config["INGESTION_IN_GATEWAY"] == "true"  # the default fleet: what `make dev` runs and the bench measures
    deployment = next(d for d in rendered["eks"] if d["kind"] == "Deployment")
    refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"name": "spot-exchange-secrets"} in [r.get("secretRef") for r in refs]
    assert not [d for d in rendered["eks"] if d["kind"] == "Secret"], "EKS uses existingSecret"
    secret = next(d for d in rendered["ci-all-features"] if d["kind"] == "Secret")
    assert {"DATABASE_URL", "REDIS_URL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= set(secret["stringData"])


def test_ingress_routes_rest_and_websocket_paths_to_the_gateway(rendered):
    ingresses = {d["metadata"]["name"]: d for d in rendered["ci-all-features"] if d["kind"] == "Ingress"}
    paths = {
        name: {p["path"] for rule in d["spec"]["rules"] for p in rule["http"]["paths"]} for name, d in ingresses.items()
    }
    assert paths == {
        "spot-exchange-gateway-rest": {"/api", "/sapi"},
        "spot-exchange-gateway-websocket": {"/ws", "/ws-api", "/stream"},
    }
    backends = {
        p["backend"]["service"]["name"]
        for d in ingresses.values()
        for r in d["spec"]["rules"]
        for p in r["http"]["paths"]
    }
    assert backends == {"spot-exchange-gateway"}


# What the gateway serves that is not for the internet (issue 20): Swagger UI and its schema, metrics, probes;
# none of it may be reachable through an Ingress (API Gateway routes /api only: terraform's
# modules/apigateway/tests/public_paths.tftest.hcl).
PRIVATE_PATHS = ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/metrics", "/readyz", "/healthz")


def ingress_routes(rule: dict, url: str) -> bool:
    """Whether an Ingress path rule sends ``url`` on: Exact by equality, Prefix (and, as a controller may
    read it, ImplementationSpecific) by whole path elements."""
    path = rule["path"]
    if rule.get("pathType") == "Exact":
        return url == path
    return path == "/" or url == path.rstrip("/") or url.startswith(path.rstrip("/") + "/")


def test_ingress_path_matching_is_by_whole_elements():
    assert ingress_routes({"path": "/api", "pathType": "Prefix"}, "/api/v3/order")
    assert not ingress_routes({"path": "/api", "pathType": "Prefix"}, "/apidocs")
    assert ingress_routes({"path": "/", "pathType": "Prefix"}, "/metrics")
    assert not ingress_routes({"path": "/docs", "pathType": "Exact"}, "/docs/x")


@pytest.mark.parametrize("profile", PROFILES)
def test_no_ingress_routes_docs_metrics_or_probes(rendered, profile):
    routed = [
        (d["metadata"]["name"], p["path"], url)
        for d in rendered[profile]
        if d["kind"] == "Ingress"
        for rule in d["spec"]["rules"]
        for p in rule["http"]["paths"]
        for url in PRIVATE_PATHS
        if ingress_routes(p, url)
    ]
    assert not routed, routed


@pytest.mark.parametrize("path", BROKEN_VALUES, ids=lambda p: p.name)
def test_broken_values_are_refused(path):
    import helm_python

    with pytest.raises(helm_python.HelmError) as refusal:
        chart.render([TEST_KEYS, path])  # the keys the chart cannot default, so each refusal is its own
    assert _expectation(path) in str(refusal.value)


@pytest.mark.parametrize("path", BROKEN_POLICY, ids=lambda p: p.name)
def test_policy_rules_flag_broken_manifests(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    problems = [p for d in docs for p in workload_problems(d)] + scaling_problems(docs, partitions=4)
    assert any(_expectation(path) in p for p in problems), problems


def test_every_broken_fixture_kind_is_present():
    assert len(BROKEN_VALUES) >= 5 and len(BROKEN_POLICY) >= 3
