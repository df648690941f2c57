"""`spot deploy values`: the Helm values of one environment, from `terraform output -json`.

Terraform composes them (envs/prod output `helm_values`: ECR repository, MSK bootstrap, region, secret
ARNs, endpoints, target group, bucket, stream, VPC range, REDIS_CLUSTER), so there is one path from the
estate to `helm install` and no hand-copied ARN. This only unwraps and writes them as YAML.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

OUTPUT = "helm_values"


class NotTerraformOutput(ValueError):
    """The input is not `terraform output -json` of an environment that has `helm_values`."""


def from_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    entry = outputs.get(OUTPUT)
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), dict):
        raise NotTerraformOutput(
            f"no output {OUTPUT!r}: give `terraform -chdir=infra/terraform/envs/prod output -json`"
        )
    return entry["value"]


def render(text: str) -> str:
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotTerraformOutput(f"not JSON: {exc}") from exc
    if not isinstance(outputs, dict):
        raise NotTerraformOutput("not a JSON object of outputs")
    header = "# Written by `spot deploy values` from `terraform output -json`; do not edit, run it again.\n"
    return header + yaml.safe_dump(from_outputs(outputs), sort_keys=True, default_flow_style=False)
