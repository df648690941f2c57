"""What the EKS release brings besides the fleet: the Grafana dashboard as a ConfigMap the sidecar loads,
a `helm test` pod that asks the gateway's /readyz (and is let through its NetworkPolicy), and the topics'
replication factor handed to the init Job."""

from __future__ import annotations

import json

from . import chart
from .test_observability import DASHBOARDS


def _one(docs, kind, suffix):
    (doc,) = [chart.strip(d) for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return doc


def test_the_dashboard_is_a_configmap_the_grafana_sidecar_loads(rendered):
    config = _one(rendered["eks"], "ConfigMap", "-dashboards")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {json.loads(v)["uid"] for v in config["data"].values()} == {
        json.loads(p.read_text())["uid"] for p in DASHBOARDS
    }


def test_helm_test_asks_the_gateway_readyz_through_its_service(rendered):
    pod = _one(rendered["eks"], "Pod", "-test-gateway-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["args"][-1] == "http://spot-exchange-gateway:8000/readyz"
    gateway_policy = _one(rendered["eks"], "NetworkPolicy", "-gateway")
    admitted = [
        peer["podSelector"]["matchLabels"]
        for rule in gateway_policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "podSelector" in peer
    ]
    assert {k: pod["metadata"]["labels"][k] for k in admitted[0]} == admitted[0]


def test_the_init_job_creates_topics_with_the_estates_replication_factor(rendered):
    config = _one(rendered["eks"], "ConfigMap", "-config")
    assert config["data"]["KAFKA_REPLICATION_FACTOR"] == "3"
    default = _one(rendered["default"], "ConfigMap", "-config")
    assert default["data"]["KAFKA_REPLICATION_FACTOR"] == "1"
