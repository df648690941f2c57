"""The chart's alert rules: a PrometheusRule that the Prometheus Operator's CRD accepts, whose every expression
queries metrics the services really expose, with SettlementHalted among them (a symbol whose settlement
stopped at a record it cannot apply) and AuditFailed (the last `spot admin audit` found a difference)."""

from __future__ import annotations

import pytest

from . import chart
from .contract import CRD_DIR
from .crds import CustomResourceSchemas
from .test_observability import exposed_names, metric_names

WITH_RULES = ("eks", "ci-all-features")


@pytest.fixture(scope="module")
def operator_crds() -> CustomResourceSchemas:
    return CustomResourceSchemas(CRD_DIR / "operators")


def _rules(rendered: dict, profile: str) -> list[dict]:
    return [chart.strip(d) for d in rendered[profile] if d["kind"] == "PrometheusRule"]


@pytest.mark.parametrize("profile", WITH_RULES)
def test_prometheus_rule_matches_its_crd_and_queries_exposed_metrics(rendered, operator_crds, profile):
    (rule,) = _rules(rendered, profile)
    assert operator_crds.knows(rule)
    assert not operator_crds.violations(rule), [str(v) for v in operator_crds.violations(rule)]
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    exposed = exposed_names()
    for name, alert in alerts.items():
        assert metric_names(alert["expr"]) <= exposed, (name, metric_names(alert["expr"]) - exposed)
    halted = alerts["SettlementHalted"]
    assert metric_names(halted["expr"]) == {"spot_settlement_halted"}
    assert halted["labels"]["severity"] == "critical"
    assert "spot admin settlement resolve" in halted["annotations"]["description"]


def test_alert_rules_are_off_unless_asked_for(rendered):
    assert not _rules(rendered, "default")


@pytest.mark.parametrize("profile", WITH_RULES)
def test_alerts_cover_lag_errors_outages_halts_dead_letters_and_audits(rendered, profile):
    (rule,) = _rules(rendered, profile)
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "ConsumerLagHigh",
        "DeadLetterGrowth",
        "HttpErrorRateHigh",
        "DependencyOutage",
        "SettlementHalted",
        "AuditFailed",
        "AuditNotRun",
    }
    assert metric_names(alerts["AuditFailed"]["expr"]) == {"spot_audit_ok"}
    assert alerts["AuditFailed"]["labels"]["severity"] == "critical"
    assert metric_names(alerts["AuditNotRun"]["expr"]) == {"spot_audit_last_run_timestamp_seconds"}
    assert metric_names(alerts["ConsumerLagHigh"]["expr"]) == {"spot_kafka_consumer_lag"}
    assert metric_names(alerts["DeadLetterGrowth"]["expr"]) == {"spot_dlq_messages_total"}
    assert metric_names(alerts["DependencyOutage"]["expr"]) == {"spot_dependency_outages_total"}
    assert 'status=~"5.."' in alerts["HttpErrorRateHigh"]["expr"]
    assert all(a["labels"]["severity"] in {"warning", "critical"} for a in alerts.values())
