"""What a release on EKS must hold beyond its schemas: one ALB per Ingress scheme, no long-lived object as a
Helm hook, a NetworkPolicy per Deployment admitting only its callers, the order path held over three zones
with its PriorityClass, PDBs, a preStop that outlasts target deregistration, and Karpenter pools that match
the image (amd64) and keep the order path's nodes to it (taint)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from . import chart
from .contract import BROKEN, KARPENTER_DIR, PROFILES, SERVICES
from .crds import load_documents

Doc = dict[str, Any]
GROUP = "alb.ingress.kubernetes.io/group.name"
SCHEME = "alb.ingress.kubernetes.io/scheme"
# Who calls whom inside the cluster (services/gateway/app.py reaches ingestion over HTTP; nothing else is
# called: the consumers only read Kafka). The gateway's callers are the load balancers, outside the cluster.
CALLERS: dict[str, set[str]] = {service: set() for service in SERVICES} | {"ingestion": {"gateway"}}
ORDER_PATH = ("gateway", "ingestion", "order-processor", "matcher", "settlement")
SHORT_LIVED_HOOK_KINDS = {"Job", "Pod"}


def _docs(rendered: dict, profile: str) -> list[Doc]:
    return [chart.strip(d) for d in rendered[profile]]


def scheme_conflicts(docs: list[Doc]) -> list[str]:
    schemes: dict[str, set[str]] = defaultdict(set)
    for doc in docs:
        annotations = doc["metadata"].get("annotations") or {}
        if doc["kind"] == "Ingress" and GROUP in annotations:
            schemes[annotations[GROUP]].add(annotations.get(SCHEME, "internal"))
    return [f"group {group}: schemes {sorted(s)}" for group, s in schemes.items() if len(s) > 1]


def long_lived_hooks(docs: list[Doc]) -> list[str]:
    return [
        f"{d['kind']} {d['metadata']['name']}"
        for d in docs
        if "helm.sh/hook" in (d["metadata"].get("annotations") or {}) and d["kind"] not in SHORT_LIVED_HOOK_KINDS
    ]


def _selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get("matchExpressions")


def network_policy_problems(docs: list[Doc], metrics_from: list[dict] | None = None) -> list[str]:
    """Every Deployment is selected by a NetworkPolicy whose pod peers are exactly its callers; other peers
    may only be the gateway's load balancers (ipBlock) and the metrics scrapers (namespaceSelector)."""
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Deployment"}
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    problems = []
    for name, labels in pod_labels.items():
        mine = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        if not mine:
            problems.append(f"{name}: no NetworkPolicy selects it")
            continue
        admitted: set[str] = set()
        for policy in mine:
            if "Ingress" not in policy["spec"].get("policyTypes", ["Ingress"]):
                problems.append(f"{name}: {policy['metadata']['name']} does not restrict ingress")
            for rule in policy["spec"].get("ingress") or []:  # none: nobody is admitted
                peers = rule.get("from")
                if not peers and name != "gateway":
                    problems.append(f"{name}: a rule admits every source")
                for peer in peers or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        admitted |= {n for n, other in pod_labels.items() if _selects(peer["podSelector"], other)}
                    elif "ipBlock" in peer and name != "gateway":
                        problems.append(
                            f"{name}: admits addresses {peer['ipBlock']}, only the gateway has outside callers"
                        )
                    elif "namespaceSelector" in peer and peer not in (metrics_from or []):
                        problems.append(f"{name}: admits namespace {peer} that is not the metrics scraper")
        if admitted != CALLERS[name]:
            problems.append(f"{name}: admits pods of {sorted(admitted)}, its callers are {sorted(CALLERS[name])}")
    return problems


@pytest.mark.parametrize("profile", PROFILES)
def test_the_two_ingress_schemes_never_share_an_alb_group(rendered, profile):
    assert not scheme_conflicts(_docs(rendered, profile))


def test_eks_makes_an_internal_and_an_internet_facing_alb(rendered):
    ingresses = [d for d in _docs(rendered, "eks") if d["kind"] == "Ingress"]
    schemes = {d["metadata"]["annotations"][GROUP]: d["metadata"]["annotations"][SCHEME] for d in ingresses}
    assert sorted(schemes.values()) == ["internal", "internet-facing"]


@pytest.mark.parametrize("profile", PROFILES)
def test_nothing_long_lived_is_a_helm_hook(rendered, profile):
    assert not long_lived_hooks(_docs(rendered, profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_deployment_has_a_network_policy_admitting_only_its_callers(rendered, profile):
    values = chart.values_from([chart.CHART / "values.yaml", *PROFILES[profile]])
    assert not network_policy_problems(_docs(rendered, profile), values["networkPolicy"]["metricsFrom"])


def test_eks_gateway_admits_only_the_vpc_and_the_metrics_scraper(rendered):
    docs = _docs(rendered, "eks")
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-gateway")]
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert {"ipBlock": {"cidr": "10.40.0.0/16"}} in peers


def test_eks_holds_the_order_path_over_three_zones_with_priority_and_drains_before_it_stops(rendered):
    docs = _docs(rendered, "eks")
    (priority,) = [d for d in docs if d["kind"] == "PriorityClass"]
    budgets = {
        d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs if d["kind"] == "PodDisruptionBudget"
    }
    assert budgets == set(SERVICES)
    for doc in (d for d in docs if d["kind"] == "Deployment"):
        name = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = doc["spec"]["template"]["spec"]
        (zone,) = [c for c in pod["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
        (container,) = pod["containers"]
        sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert sleep >= 10 and pod["terminationGracePeriodSeconds"] >= sleep + 20, name
        if name in ORDER_PATH:
            assert (zone["whenUnsatisfiable"], zone.get("minDomains")) == ("DoNotSchedule", 3), name
            assert pod["priorityClassName"] == priority["metadata"]["name"], name
        else:
            assert "priorityClassName" not in pod, name
        if pod.get("nodeSelector", {}).get("karpenter.sh/nodepool") == "critical":
            assert {
                "key": "spot.exchange/critical",
                "operator": "Equal",
                "value": "true",
                "effect": "NoSchedule",
            } in pod["tolerations"], name


def test_critical_pool_is_tainted_and_the_general_pool_is_amd64_only():
    pools = {
        load_documents(p)[0]["metadata"]["name"]: load_documents(p)[0] for p in KARPENTER_DIR.glob("nodepool-*.yaml")
    }
    critical = pools["critical"]["spec"]["template"]["spec"]
    assert {"key": "spot.exchange/critical", "value": "true", "effect": "NoSchedule"} in critical["taints"]
    for pool in pools.values():
        (arch,) = [r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == "kubernetes.io/arch"]
        assert arch == {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}, pool["metadata"]["name"]


# --- the checks bite ---------------------------------------------------------------------------------


def test_shared_group_with_two_schemes_is_found_and_refused_by_the_chart():
    import helm_python

    ingress = lambda scheme: {  # noqa: E731
        "kind": "Ingress",
        "metadata": {"name": scheme, "annotations": {GROUP: "spot-exchange", SCHEME: scheme}},
    }
    assert scheme_conflicts([ingress("internal"), ingress("internet-facing")])
    with pytest.raises(helm_python.HelmError, match="conflicting schemes"):
        chart.render([*PROFILES["eks"], BROKEN / "values" / "ingress-shared-group.yaml"])


def test_hooked_secret_and_open_policy_are_found():
    secret = {"kind": "Secret", "metadata": {"name": "s", "annotations": {"helm.sh/hook": "pre-install"}}}
    assert long_lived_hooks([secret]) == ["Secret s"]
    labels = {"app.kubernetes.io/component": "matcher"}
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "m", "labels": labels},
        "spec": {"template": {"metadata": {"labels": labels}}},
    }
    open_policy = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "m"},
        "spec": {"podSelector": {"matchLabels": labels}, "ingress": [{"from": [{"podSelector": {}}]}]},
    }
    assert network_policy_problems([deployment]) == ["matcher: no NetworkPolicy selects it"]
    assert network_policy_problems([deployment, open_policy])
