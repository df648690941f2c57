"""One path from the estate to the pods: Terraform's `helm_values` output, `spot deploy values`, the chart's env.

fixtures/terraform-output.json stands for `terraform output -json` of envs/prod (its `helm_values` has the
shape outputs.tf gives it, checked here); `spot deploy values` turns it into fixtures/values-from-terraform.yaml,
the EKS profile's second values file (contract.PROFILES). Aurora's rotated credentials are followed along it:
every service and the init job get DATABASE_SECRET_ID, the secret External Secrets reads too.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from shared import config, dbsecret
from spot import deploy_values

from . import terraform
from .contract import FIXTURES, TERRAFORM
from .test_msk_clients import _eks_envs

OUTPUT_JSON = FIXTURES / "terraform-output.json"
VALUES_YAML = FIXTURES / "values-from-terraform.yaml"


def _shape(value: Any) -> Any:
    """The keys of nested maps (lists and leaves compared by kind only)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return "list" if isinstance(value, list) else "value"


def test_the_output_fixture_has_the_shape_terraform_gives_helm_values():
    (declared,) = [
        o for o in terraform.parse(TERRAFORM / "envs" / "prod" / "outputs.tf")["output"] if "helm_values" in o
    ]
    given = yaml.safe_load(OUTPUT_JSON.read_text())["helm_values"]["value"]
    assert _shape(given) == _shape(declared["helm_values"]["value"])


def test_spot_deploy_values_writes_the_eks_profiles_values_file():
    assert deploy_values.render(OUTPUT_JSON.read_text()) == VALUES_YAML.read_text()


def test_every_pod_reads_auroras_rotated_secret_named_by_terraform(rendered):
    values = yaml.safe_load(VALUES_YAML.read_text())
    secret = values["config"]["databaseSecretId"]
    assert secret == values["externalSecrets"]["database"]["secretArn"]  # the one External Secrets reads
    docs = rendered["eks"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"]["DATABASE_SECRET_ID"] == secret
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"name": config["metadata"]["name"]} in [r.get("configMapRef") for r in container["envFrom"]]
        assert "DATABASE_SECRET_ID" not in {e["name"] for e in container.get("env", [])}  # one source only
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (init,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "DATABASE_SECRET_ID", "value": secret} in init["env"]


def test_without_a_database_secret_no_pod_is_told_of_one(rendered):
    config = next(d for d in rendered["default"] if d["kind"] == "ConfigMap")
    assert "DATABASE_SECRET_ID" not in config["data"]


@pytest.mark.parametrize("who", ["services", "init job"])
def test_each_process_takes_the_secret_into_its_settings(who: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a pod gets, read as the process reads it (``shared.config``): its database credentials
    come from the secret (``shared.dbsecret``), in the secret's own region."""
    secret = yaml.safe_load(VALUES_YAML.read_text())["config"]["databaseSecretId"]
    monkeypatch.delenv("DATABASE_SECRET_ARN", raising=False)
    for name, value in _eks_envs()[who].items():
        monkeypatch.setenv(name, value)
    settings = config.load()
    assert settings.database_secret_id == secret
    assert (settings.aws_region or dbsecret.region_of(secret)) == "eu-west-1"
