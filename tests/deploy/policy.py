"""Rules every rendered fleet must keep, as functions returning what is wrong (empty list = fine).

They are applied to the chart's output for every profile, and to deliberately broken manifests under
fixtures/broken/ to prove each rule bites.
"""

from __future__ import annotations

from typing import Any

from .contract import HPA_SERVICES, KEDA_TOPICS, SERVICE_PORTS

Doc = dict[str, Any]


def _component(doc: Doc) -> str:
    return doc.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component", "")


def workload_problems(doc: Doc) -> list[str]:
    """A Deployment: probes on /healthz and /readyz, resources, non-root read-only, spread, right port."""
    if doc.get("kind") != "Deployment":
        return []
    name = doc["metadata"]["name"]
    pod = doc["spec"]["template"]["spec"]
    problems = []
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    spread = {c.get("topologyKey") for c in pod.get("topologySpreadConstraints", [])}
    if not {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= spread:
        problems.append(f"{name}: pods are not spread over zones and nodes (topologySpreadConstraints)")
    for container in pod.get("containers", []):
        where = f"{name}/{container.get('name')}"
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: capabilities are not all dropped")
        if security.get("runAsNonRoot") is False or security.get("runAsUser") == 0:
            problems.append(f"{where}: runs as root")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            seen = container.get(probe, {}).get("httpGet", {}).get("path")
            if seen != path:
                problems.append(f"{where}: {probe} path is {seen!r}, want {path!r}")
        resources = container.get("resources", {})
        if not resources.get("requests", {}).get("memory") or not resources.get("limits", {}).get("memory"):
            problems.append(f"{where}: memory request and limit are required")
        service = container.get("name", "")
        args = container.get("args", [])
        if args != [service]:
            problems.append(f"{where}: args {args} do not run the container's own service (`spot run {service}`)")
        port = SERVICE_PORTS.get(service)
        ports = [p.get("containerPort") for p in container.get("ports", [])]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if port is not None and (ports != [port] or env.get("PORT") != str(port)):
            problems.append(f"{where}: port {ports} / PORT={env.get('PORT')} differ from the contract's {port}")
    return problems


def scaling_problems(docs: list[Doc], partitions: int) -> list[str]:
    """HPA only for request-driven services, KEDA only for consumers on their topic, ceilings <= partitions."""
    problems = []
    for doc in docs:
        component = _component(doc)
        if doc.get("kind") == "HorizontalPodAutoscaler":
            if component not in HPA_SERVICES:
                problems.append(f"HPA for {component}, which is not request-driven")
            metrics = {m.get("resource", {}).get("name") for m in doc["spec"].get("metrics", [])}
            if metrics != {"cpu", "memory"}:
                problems.append(f"HPA {doc['metadata']['name']} scales on {sorted(metrics)}, want cpu and memory")
        if doc.get("kind") == "ScaledObject":
            spec = doc["spec"]
            if component not in KEDA_TOPICS:
                problems.append(f"ScaledObject for {component}, which is not a Kafka consumer")
                continue
            ceiling = spec.get("maxReplicaCount", 100)  # KEDA's default when unset
            if ceiling > partitions:
                problems.append(f"{doc['metadata']['name']}: maxReplicaCount {ceiling} > {partitions} partitions")
            for trigger in spec.get("triggers", []):
                meta = trigger.get("metadata", {})
                if trigger.get("type") != "kafka":
                    problems.append(f"{doc['metadata']['name']}: trigger type {trigger.get('type')}, want kafka")
                if meta.get("topic") != KEDA_TOPICS[component]:
                    problems.append(
                        f"{doc['metadata']['name']}: topic {meta.get('topic')}, want {KEDA_TOPICS[component]}"
                    )
                if meta.get("consumerGroup") != component:
                    problems.append(
                        f"{doc['metadata']['name']}: consumerGroup {meta.get('consumerGroup')}, want {component}"
                    )
    return problems
