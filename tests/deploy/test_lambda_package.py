"""The ingestion Lambda's zip (`spot deploy lambda-package`, Terraform's lambda_package_path): the handler
imports from the zip alone, nothing but the project's code is in it, and one tree gives one zip."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from spot import lambda_package

from .contract import ROOT

HANDLER = "services.ingestion.lambda_handler"


def test_the_handler_imports_from_the_zip(tmp_path: Path) -> None:
    out = tmp_path / "order-ingestion.zip"
    lambda_package.build(ROOT, out)
    probe = f"import sys; sys.path.insert(0, {str(out)!r}); import {HANDLER} as h; print(h.__file__)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(out)), result.stdout


def test_the_zip_holds_only_the_projects_code_and_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    lambda_package.build(ROOT, first)
    lambda_package.build(ROOT, second)
    names = zipfile.ZipFile(first).namelist()
    assert "services/ingestion/lambda_handler.py" in names and "shared/config.py" in names
    assert any(n.endswith("alembic.ini") or n.endswith(".mako") for n in names)
    assert all(n.split("/")[0] in {"services", "shared"} and "__pycache__" not in n for n in names)
    assert first.read_bytes() == second.read_bytes()
