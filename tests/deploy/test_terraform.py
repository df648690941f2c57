"""infra/terraform is formatted, loads (every module through envs/prod), and keeps the house rules:
four-file modules, every variable and output described, the design's components all present.
Broken trees under fixtures/broken/terraform prove each check bites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import terraform
from .contract import BROKEN, TERRAFORM, TOPICS

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


def test_environment_describes_its_interface():
    assert not undocumented(TERRAFORM / "envs" / "prod")


def test_terraform_is_formatted():
    code, output = terraform.fmt_check(TERRAFORM)
    assert code == 0, output


def test_prod_environment_loads_with_every_module():
    code, output = terraform.load(TERRAFORM, "envs/prod")
    assert code == 0, output
    for component in COMPONENTS:
        assert f"module.{component}" in output, component


def test_no_secret_values_in_code():
    pattern = re.compile(r'\b(\w*password|secret_string|auth_token|token|secret)\s*=\s*"[^"$]{6,}"', re.I)
    for path in TERRAFORM.rglob("*.tf"):
        assert not pattern.search(path.read_text()), path


def test_msk_creates_the_four_topics_and_their_dead_letter_topics():
    text = (TERRAFORM / "modules" / "msk" / "main.tf").read_text()
    for topic in TOPICS:
        assert f'"{topic}"' in text
    assert 'name               = "${each.value}.dlq"' in text


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


def test_lambda_is_packaged_from_the_project_handler():
    text = (TERRAFORM / "modules" / "lambda_ingestion" / "variables.tf").read_text()
    assert '"services.ingestion.lambda_handler.handler"' in text
    assert 'data "archive_file" "code"' in (TERRAFORM / "modules" / "lambda_ingestion" / "main.tf").read_text()


def _providers(module: Path) -> set[str]:
    text = (module / "versions.tf").read_text()
    return {s.lower() for s in re.findall(r'source\s*=\s*"([\w-]+/[\w-]+)"', text)}


# Modules whose providers are all in this machine's mirror: validated and their tests/ run with mocks.
VALIDATED = [m for m in MODULES if _providers(m) <= terraform.mirrored_providers()]


def test_aws_only_modules_are_the_ones_validated_here():
    # helm (eks_addons), Mongey/kafka (msk topics) and archive (lambda package) are not in the mirror
    assert {m.name for m in VALIDATED} >= {"eks", "elasticache", "vpc", "iam", "aurora", "apigateway"}


@pytest.mark.parametrize("module", VALIDATED, ids=lambda p: p.name)
def test_module_validates_and_its_tests_pass_with_the_mirrored_provider(module):
    code, output = terraform.validate_and_test(module)
    assert code == 0, output


def test_eks_wiring_is_asserted_by_terraform_test():
    assert (TERRAFORM / "modules" / "eks" / "tests" / "wiring.tftest.hcl").is_file()


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
