"""The observability artefacts, offline: the Grafana dashboard, the collector config, the chart's OTEL wiring.

The dashboard must be importable dashboard JSON covering the golden signals and consumer lag, and every
metric it queries must be one the services really expose: the names are taken from the prometheus
registry after importing every service, so a renamed metric fails here, not on a blank panel.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "helm" / "exchange" / "dashboards").glob("*.json"))
COLLECTOR = ROOT / "deploy" / "otel-collector" / "config.yaml"
SERVICE_MODULES = (
    "services.gateway.app",
    "services.ingestion.app",
    "services.order_processor.__main__",
    "services.matcher.__main__",
    "services.settlement.__main__",
    "services.market_data.__main__",
)
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "table", "bargauge", "heatmap"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}


def exposed_names() -> set[str]:
    """Every sample name the services can expose (their modules imported, as each process does)."""
    for module in SERVICE_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, ranges and by/without lists,
    that are not functions or keywords."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    found = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", stripped):  # not the unit of a duration (5m)
        rest = stripped[m.end() :].lstrip()
        if rest.startswith("(") or m.group() in PROMQL_WORDS:
            continue
        found.add(m.group())
    return found


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    flat = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        flat += panel.get("panels", [])
    return flat


def test_there_is_a_dashboard() -> None:
    assert DASHBOARDS, "no dashboard under deploy/helm/exchange/dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard.get("id") is None, "an exported id makes the import overwrite another dashboard"
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        targets = panel["targets"]
        assert targets, f"{panel['title']} queries nothing"
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_covers_the_golden_signals_and_consumer_lag(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert {"Traffic", "Errors", "Latency", "Saturation"} <= rows
    queried = {n for p in panels(dashboard) for t in p.get("targets", []) for n in metric_names(t["expr"])}
    assert {
        "spot_http_requests_total",  # traffic and errors
        "spot_http_request_seconds_bucket",  # latency
        "spot_match_latency_seconds_bucket",
        "spot_postgres_call_seconds_bucket",
        "spot_redis_call_seconds_bucket",
        "spot_kafka_call_seconds_bucket",
        "spot_kafka_consumer_lag",  # saturation
    } <= queried


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_the_dashboard_queries_exists_in_the_code(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    exposed = exposed_names()
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    variable_queries = [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    for expr in exprs + variable_queries:
        label_values = re.fullmatch(r"label_values\(([^,]+),\s*\w+\)", expr)
        names = metric_names(label_values[1] if label_values else expr)
        assert names, f"no metric in {expr}"
        unknown = names - exposed
        assert not unknown, f"{sorted(unknown)} (in {expr}) is exposed by no service"


def test_metric_name_extraction_sees_through_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, job) (rate(spot_x_bucket{job=~"a|b", le!="1"}[$__rate_interval])))'
    assert metric_names(expr) == {"spot_x_bucket"}
    assert metric_names("sum(a) / on (job) group_left sum(b_total offset 5m)") == {"a", "b_total"}
    assert "spot_renamed_total" not in exposed_names()


def test_collector_pipelines_use_only_defined_parts_and_reach_xray_and_cloudwatch() -> None:
    config = yaml.safe_load(COLLECTOR.read_text())
    service = config["service"]
    for name in service.get("extensions", []):
        assert name in config["extensions"], name
    for pipeline, parts in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for name in parts.get(kind, []):
                assert name in config[kind], f"{pipeline}: {kind[:-1]} {name} is not defined"
        processors = parts.get("processors", [])
        assert processors[0] == "memory_limiter" and processors[-1] == "batch", pipeline
    pipelines = service["pipelines"]
    assert "otlp" in pipelines["traces"]["receivers"] and pipelines["traces"]["exporters"] == ["awsxray"]
    assert pipelines["metrics"]["exporters"] == ["awsemf"]
    emf = config["exporters"]["awsemf"]
    assert emf["namespace"] and emf["metric_declarations"]
    for declaration in emf["metric_declarations"]:
        for selector in declaration["metric_name_selectors"]:
            re.compile(selector)
    lag = [d for d in emf["metric_declarations"] if any("consumer_lag" in s for s in d["metric_name_selectors"])]
    assert lag, "consumer lag does not reach CloudWatch"
    exposed = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exposed_names()}
    for declaration in emf["metric_declarations"]:
        for selector in declaration["metric_name_selectors"]:
            assert any(re.match(selector, n) or re.match(selector, n + "_total") for n in exposed), selector


def test_the_chart_points_every_service_at_the_collector_over_otlp_http(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    config = yaml.safe_load(COLLECTOR.read_text())
    http_port = int(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1])
    eks = rendered["eks"]
    data = next(d for d in eks if d["kind"] == "ConfigMap")["data"]
    endpoint = urlparse(data["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.scheme == "http" and endpoint.port == http_port, "the services speak OTLP/HTTP, not gRPC"
    assert 0 < float(data["OTEL_TRACES_SAMPLER_ARG"]) <= 1
    for deployment in (d for d in eks if d["kind"] == "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["OTEL_SERVICE_NAME"] == container["args"][0], deployment["metadata"]["name"]
    default = next(d for d in rendered["default"] if d["kind"] == "ConfigMap")["data"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in default, "tracing is off unless a collector is configured"
