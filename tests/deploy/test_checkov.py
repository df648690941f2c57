"""checkov finds nothing in infra/terraform beyond the reasoned skip list in infra/terraform/.checkov.yaml,
nor in the rendered EKS manifests beyond deploy/helm/exchange/.checkov.yaml, and does refuse an insecure
configuration (fixtures/broken/terraform/insecure) and a privileged pod."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from . import chart
from .contract import BROKEN, CHART, TERRAFORM

CONFIG = TERRAFORM / ".checkov.yaml"
# scripts/install-deploy-tools.sh installs checkov in its own virtualenv (it pins packaging<24).
DEFAULT_CHECKOV = Path("/opt/spot-deploy-tools/checkov/bin/checkov")


def checkov(directory: Path) -> dict:
    binary = shutil.which("checkov") or (str(DEFAULT_CHECKOV) if DEFAULT_CHECKOV.exists() else None)
    if binary is None:
        pytest.fail("checkov not found: run scripts/install-deploy-tools.sh")
    result = subprocess.run(
        [binary, "-d", str(directory), "--config-file", str(CONFIG), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    (terraform,) = [r for r in reports if r.get("check_type") == "terraform"]
    return terraform


def test_skip_list_is_short_and_every_skip_has_a_reason():
    lines = CONFIG.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]
    assert 0 < len(skips) <= 10
    for index in skips:
        assert lines[index - 1].strip().startswith("#"), f"no reason above {lines[index].strip()}"


def test_terraform_passes_checkov():
    report = checkov(TERRAFORM)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100


def test_insecure_terraform_is_refused():
    report = checkov(BROKEN / "terraform" / "insecure")
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert {"CKV_AWS_19", "CKV_AWS_43"} & failed or {"CKV_AWS_145", "CKV_AWS_185"} & failed, failed


CHART_CONFIG = CHART / ".checkov.yaml"


def test_chart_skip_list_is_short_and_every_skip_has_a_reason():
    lines = CHART_CONFIG.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]
    assert 0 < len(skips) <= 6
    for index in skips:
        above = lines[index - 1].strip()
        assert above.startswith("#") or above.startswith("- CKV"), f"no reason above {lines[index].strip()}"


def _checkov_manifests(docs: list[dict], tmp_path: Path) -> dict:
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump_all(docs))
    binary = shutil.which("checkov") or str(DEFAULT_CHECKOV)
    result = subprocess.run(
        [binary, "-d", str(tmp_path), "--config-file", str(CHART_CONFIG), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout)
    (kubernetes,) = [r for r in (report if isinstance(report, list) else [report]) if r["check_type"] == "kubernetes"]
    return kubernetes


def test_rendered_eks_manifests_pass_checkov(rendered, tmp_path):
    report = _checkov_manifests([chart.strip(d) for d in rendered["eks"]], tmp_path)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["passed"] > 500


def test_a_privileged_pod_is_refused_by_the_chart_checks(tmp_path):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "exchange"},
        "spec": {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]},
    }
    failed = {c["check_id"] for c in _checkov_manifests([pod], tmp_path)["results"]["failed_checks"]}
    assert "CKV_K8S_16" in failed
