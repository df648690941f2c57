"""The audit CronJob: `spot admin audit` on a schedule, one run at a time, as locked down as the init Job, listening
on nothing; off with `audit.enabled: false`, and then no alert waits for its runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from . import chart
from .contract import TEST_KEYS


def _one(docs, kind, suffix):
    found = [chart.strip(d) for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix, [d["metadata"]["name"] for d in docs if d["kind"] == kind])
    return found[0]


@pytest.mark.parametrize("profile", ["default", "eks"])
def test_the_audit_runs_spot_admin_audit_on_a_schedule_one_at_a_time(rendered, profile):
    cron = _one(rendered[profile], "CronJob", "-audit")
    assert cron["spec"]["schedule"] == "*/10 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "a failed audit is a finding, not a fault to retry"
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["spot", "admin", "audit", "--wait", "10"]
    assert pod["restartPolicy"] == "Never"


@pytest.mark.parametrize("profile", ["default", "eks"])
def test_the_audit_pod_is_configured_and_locked_down_as_the_init_job(rendered, profile):
    audit_pod = _one(rendered[profile], "CronJob", "-audit")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    init_pod = _one(rendered[profile], "Job", "-init")["spec"]["template"]["spec"]
    for key in ("serviceAccountName", "automountServiceAccountToken", "securityContext"):
        assert audit_pod[key] == init_pod[key], key
    (audit,), (init,) = audit_pod["containers"], init_pod["containers"]
    assert audit["env"] == init["env"] and audit["envFrom"] == init["envFrom"], "the same settings and secrets"
    assert audit["securityContext"] == init["securityContext"]
    assert audit["securityContext"]["readOnlyRootFilesystem"] is True
    assert audit["resources"]["limits"]["memory"]
    template = _one(rendered[profile], "CronJob", "-audit")["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "audit"


def test_the_audit_pod_admits_no_ingress(rendered):
    policy = _one(rendered["eks"], "NetworkPolicy", "-audit")
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "audit"


def test_audit_off_renders_no_cronjob_and_no_alert_waiting_for_it(tmp_path: Path):
    off = tmp_path / "audit-off.yaml"
    off.write_text(yaml.safe_dump({"audit": {"enabled": False}, "prometheusRule": {"enabled": True}}))
    docs = chart.render([TEST_KEYS, off])
    assert not [d for d in docs if d["kind"] == "CronJob"]
    assert not [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-audit")]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert "AuditFailed" in alerts and "AuditNotRun" not in alerts
