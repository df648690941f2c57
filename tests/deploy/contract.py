"""The service contract the deployment files must match, stated once for every deploy test.

Service names are dashed everywhere outside Python (image argument, Helm `services:` key, every Kubernetes
object, consumer group, compose service); the Python package is the same name with underscores.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "exchange"
KEDA_DIR = ROOT / "deploy" / "keda"
KARPENTER_DIR = ROOT / "deploy" / "karpenter"
TERRAFORM = ROOT / "infra" / "terraform"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "services" / "Dockerfile"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BROKEN = FIXTURES / "broken"
TEST_KEYS = FIXTURES / "test-keys.yaml"
# CI clones the project elsewhere with ../shared beside it, so the CRDs are found relative to the root.
CRD_DIR = ROOT.parent / "shared" / "crds"

SERVICE_PORTS: dict[str, int] = {
    "gateway": 8000,
    "ingestion": 8001,
    "order-processor": 8002,
    "matcher": 8003,
    "settlement": 8004,
    "market-data": 8005,
    "trade-archiver": 8006,
}
SERVICES = tuple(SERVICE_PORTS)

TOPICS = ("order-requests", "validated-orders", "matched-events", "trade-execution")

# Section 4 of the design: HPA on CPU and memory for the request-driven services, KEDA on Kafka lag for
# the consumers (topic = the one whose lag drives the service).
HPA_SERVICES = ("gateway", "ingestion")
KEDA_TOPICS: dict[str, str] = {
    "order-processor": "order-requests",
    "matcher": "validated-orders",
    "settlement": "matched-events",
    "market-data": "matched-events",
}

# Built-in kinds are checked against this Kubernetes release's OpenAPI schemas (kubernetes-validate).
KUBERNETES_VERSION = "1.35.0"

# Value files the chart must render with: the defaults, both profiles, and every ci/ scenario.
PROFILES: dict[str, list[Path]] = {
    # values.yaml, with the two keys it cannot default (fixtures/test-keys.yaml)
    "default": [TEST_KEYS],
    "local": [CHART / "values-local.yaml"],
    # The EKS profile with what `spot deploy values` makes of `terraform output -json` (fixtures/).
    "eks": [CHART / "values-eks.yaml", FIXTURES / "values-from-terraform.yaml"],
    **{f"ci-{p.name.removesuffix('-values.yaml')}": [p] for p in sorted((CHART / "ci").glob("*-values.yaml"))},
}


def package_name(service: str) -> str:
    """The Python package under services/ for a dashed service name."""
    return service.replace("-", "_")
