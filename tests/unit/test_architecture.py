"""The import contracts (``[tool.importlinter]`` in pyproject.toml) hold: services share only ``shared/``.

``lint-imports`` reads the imports statically (no module is run), so this belongs with the pure tests; a new
import from one service into another, from ``shared/`` into a service, or from a service into ``spot`` fails
here and in ``make lint``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout, done.stdout


def test_every_service_is_in_the_independence_contract() -> None:
    """A service added under services/ without joining the contract could import the others unseen."""
    services = sorted(p.parent.name for p in (ROOT / "services").glob("*/__init__.py"))
    listed = sorted(str(m).removeprefix("services.") for m in _contracts()["services-independent"]["modules"])  # type: ignore[attr-defined]
    assert listed == services
