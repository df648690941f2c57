"""infra/terraform is formatted, loads (every module through envs/prod and envs/prod-addons), validates
with the mirrored AWS provider (every module that needs only it, and envs/prod) and passes its `terraform
test` files, and keeps the house rules: four-file modules, every variable and output described, the
design's components all present. Broken trees under fixtures/broken/terraform prove each check bites.

The helm provider is not in this machine's mirror, so eks_addons and envs/prod-addons (its root) are only
loaded here, and tests/deploy/test_eks_addons.py reads their HCL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import terraform
from .contract import BROKEN, TERRAFORM

MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
COMPONENTS = {
    "vpc",
    "eks",
    "eks_addons",
    "msk",
    "aurora",
    "elasticache",
    "apigateway",
    "lambda_ingestion",
    "kinesis",
    "s3",
    "glue",
    "cloudwatch",
    "xray",
    "iam",
}
MODULE_FILES = {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
BROKEN_TF = BROKEN / "terraform"


def _blocks(text: str, kind: str) -> dict[str, str]:
    """Top-level `kind "name" { ... }` blocks by name (brace-matched; enough for variables and outputs)."""
    found = {}
    for match in re.finditer(rf'^{kind}\s+"([^"]+)"\s*\{{', text, flags=re.M):
        depth, index = 1, match.end()
        while depth and index < len(text):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        found[match.group(1)] = text[match.end() : index - 1]
    return found


def undocumented(module: Path) -> list[str]:
    problems = []
    for kind, filename in (("variable", "variables.tf"), ("output", "outputs.tf")):
        path = module / filename
        for name, body in _blocks(path.read_text() if path.exists() else "", kind).items():
            if not re.search(r'^\s*description\s*=\s*"[^"]{10,}', body, flags=re.M):
                problems.append(f"{module.name}: {kind} {name} has no description")
    return problems


def layout_problems(module: Path) -> list[str]:
    missing = MODULE_FILES - {p.name for p in module.glob("*.tf")}
    return [f"{module.name}: missing {sorted(missing)}"] if missing else []


def test_every_component_of_the_design_has_a_module():
    assert {m.name for m in MODULES} == COMPONENTS


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_module_has_four_files_and_describes_its_interface(module):
    assert not layout_problems(module) + undocumented(module)


ENVIRONMENTS = ("prod", "prod-addons")
ADDONS = {"eks_addons"}  # the helm provider's modules, applied from envs/prod-addons


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_describes_its_interface(env):
    assert not undocumented(TERRAFORM / "envs" / env)


def test_terraform_is_formatted():
    code, output = terraform.fmt_check(TERRAFORM)
    assert code == 0, output


@pytest.mark.parametrize(("env", "components"), [("prod", COMPONENTS - ADDONS), ("prod-addons", ADDONS)])
def test_environment_loads_with_its_modules(env, components):
    code, output = terraform.load(TERRAFORM, f"envs/{env}")
    assert code == 0, output
    for component in components:
        assert f"module.{component}" in output, component


def test_prod_needs_only_the_mirrored_aws_provider():
    assert _providers(TERRAFORM / "envs" / "prod") == {"hashicorp/aws"} <= terraform.mirrored_providers()


def test_prod_validates_and_its_helm_values_test_passes():
    """envs/prod with every module; tests/helm_values.tftest.hcl asserts the values handed to Helm, and
    that the fleet's keys (KMS_KEY_ID, the service-key secret) reach Helm, External Secrets and the Lambda."""
    code, output = terraform.validate_and_test(TERRAFORM, "envs/prod")
    assert code == 0, output
    assert '"helm_values_name_the_estate_and_hold_no_placeholder"... pass' in output
    assert '"the_fleet_keys_reach_helm_external_secrets_and_the_lambda"... pass' in output
    assert '"every_service_reads_the_rotated_database_secret"... pass' in output


def test_every_reader_of_the_database_is_granted_its_rotated_secret():
    """Aurora's master secret (RDS rotates it) and the KMS key it is sealed with reach the services' and the
    init job's roles (modules/iam) and the ingestion Lambda's, from the aurora module's outputs; the grants
    themselves are asserted by each module's tests (iam/tests/msk_access, lambda_ingestion/tests/wiring)."""
    main = terraform.parse(TERRAFORM / "envs" / "prod" / "main.tf")
    modules = {name: body for block in main["module"] for name, body in block.items()}
    wanted = {
        "database_secret_arn": "${module.aurora.master_user_secret_arn}",
        "database_secret_kms_key_arn": "${module.aurora.master_user_secret_kms_key_arn}",
    }
    for reader in ("iam", "lambda_ingestion"):
        assert {k: modules[reader].get(k) for k in wanted} == wanted, reader


def test_addon_inputs_are_the_variables_of_prod_addons():
    """`terraform output -json addon_inputs` of envs/prod is the tfvars file of envs/prod-addons."""
    (outputs,) = [
        o for o in terraform.parse(TERRAFORM / "envs" / "prod" / "outputs.tf")["output"] if "addon_inputs" in o
    ]
    given = set(outputs["addon_inputs"]["value"])
    wanted = {
        name for v in terraform.parse(TERRAFORM / "envs" / "prod-addons" / "variables.tf")["variable"] for name in v
    }
    assert given == wanted


def test_no_secret_values_in_code():
    pattern = re.compile(r'\b(\w*password|secret_string|auth_token|token|secret)\s*=\s*"[^"$]{6,}"', re.I)
    for path in TERRAFORM.rglob("*.tf"):
        assert not pattern.search(path.read_text()), path


def test_topics_are_made_by_the_init_job_not_by_terraform():
    """msk needs only the AWS provider; `spot admin init` (the chart's init Job) creates the topics with the
    partitions and replicas helm_values hands over from the msk module."""
    assert not [p for p in TERRAFORM.rglob("*.tf") if 'resource "kafka_topic"' in p.read_text()]
    assert _providers(TERRAFORM / "modules" / "msk") == {"hashicorp/aws"}
    outputs = (TERRAFORM / "envs" / "prod" / "outputs.tf").read_text()
    assert "replicationFactor = module.msk.replication_factor" in outputs
    assert "partitions        = module.msk.partitions" in outputs


def test_glue_table_has_the_trade_columns_and_partitions():
    text = (TERRAFORM / "modules" / "glue" / "main.tf").read_text()
    columns = dict(re.findall(r'columns \{\s*name = "(\w+)"\s*type = "([^"]+)"', text))
    partitions = dict(re.findall(r'partition_keys \{\s*name\s*=\s*"(\w+)"\s*type\s*=\s*"(\w+)"', text))
    assert partitions == {"dt": "string", "symbol": "string"}
    assert columns == {
        "trade_id": "bigint",
        "price": "decimal(38,8)",
        "qty": "decimal(38,8)",
        "quote_qty": "decimal(38,8)",
        "buyer_order_id": "bigint",
        "seller_order_id": "bigint",
        "buyer_is_maker": "boolean",
        "ts": "timestamp",
        "seq": "bigint",
        "buyer_user_id": "bigint",
        "seller_user_id": "bigint",
        "taker_side": "string",
        "buyer_fee": "decimal(38,8)",
        "seller_fee": "decimal(38,8)",
        "kafka_partition": "int",
        "kafka_offset": "bigint",
    }
    assert "ParquetHiveSerDe" in text


def test_lambda_deploys_the_prebuilt_zip_of_the_project_handler():
    module = TERRAFORM / "modules" / "lambda_ingestion"
    assert '"services.ingestion.lambda_handler.handler"' in (module / "variables.tf").read_text()
    main = (module / "main.tf").read_text()
    assert "archive_file" not in main
    assert "filebase64sha256(var.package_path)" in main
    assert _providers(module) == {"hashicorp/aws"}


def _providers(module: Path) -> set[str]:
    text = (module / "versions.tf").read_text()
    return {s.lower() for s in re.findall(r'source\s*=\s*"([\w-]+/[\w-]+)"', text)}


# Modules whose providers are all in this machine's mirror: validated and their tests/ run with mocks.
VALIDATED = [m for m in MODULES if _providers(m) <= terraform.mirrored_providers()]


def test_aws_only_modules_are_the_ones_validated_here():
    # eks_addons needs helm, which is not in the mirror; every other module needs only aws
    assert {m.name for m in MODULES} - {m.name for m in VALIDATED} == ADDONS


@pytest.mark.parametrize("module", VALIDATED, ids=lambda p: p.name)
def test_module_validates_and_its_tests_pass_with_the_mirrored_provider(module):
    code, output = terraform.validate_and_test(module)
    assert code == 0, output


@pytest.mark.parametrize(
    ("module", "test_file"),
    [
        ("eks", "wiring.tftest.hcl"),
        ("elasticache", "cluster_mode.tftest.hcl"),
        ("iam", "msk_access.tftest.hcl"),
        ("lambda_ingestion", "wiring.tftest.hcl"),
        ("apigateway", "public_paths.tftest.hcl"),
    ],
)
def test_wiring_is_asserted_by_terraform_test(module, test_file):
    text = (TERRAFORM / "modules" / module / "tests" / test_file).read_text()
    assert 'mock_provider "aws"' in text and text.count("assert {") >= 2


def test_api_gateway_routes_only_the_rest_surface():
    """Issue 20: /docs, /openapi.json, /metrics and the probes are off the public path. Every route of the
    HTTP API is under /api or /sapi (no $default route, and no quick-create target on the API, which would make
    one); modules/apigateway/tests/public_paths.tftest.hcl checks the planned values."""
    main = terraform.parse(TERRAFORM / "modules" / "apigateway" / "main.tf")
    resources = [r for block in main["resource"] for r in block.items()]
    routes = {
        name: body["route_key"]
        for kind, named in resources
        if kind == "aws_apigatewayv2_route"
        for name, body in named.items()
    }
    assert routes == {
        "rest": "ANY /api/{proxy+}",
        "wallet": "ANY /sapi/{proxy+}",
        "order_via_lambda": "POST /api/v3/order",
    }
    (api,) = [body for kind, named in resources if kind == "aws_apigatewayv2_api" for body in named.values()]
    assert "target" not in api and "route_key" not in api


# --- the checks bite -------------------------------------------------------------------------------


def test_unformatted_terraform_is_refused():
    code, output = terraform.fmt_check(BROKEN_TF / "unformatted")
    assert code != 0 and "main.tf" in output


def test_invalid_configuration_is_refused():
    code, output = terraform.load(BROKEN_TF / "invalid", ".")
    assert code != 0 and "Duplicate resource" in output


def test_undocumented_variable_is_refused():
    assert undocumented(BROKEN_TF / "undocumented") == ["undocumented: variable region has no description"]


def test_incomplete_module_is_refused():
    assert layout_problems(BROKEN_TF / "undocumented") == ["undocumented: missing ['outputs.tf', 'versions.tf']"]
