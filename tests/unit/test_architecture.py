"""The architecture as written down holds: the import contracts, and the README's path of one order.

The import contracts (``[tool.importlinter]`` in pyproject.toml) keep services sharing only ``shared/``.
``lint-imports`` reads the imports statically (no module is run), so this belongs with the pure tests; a new
import from one service into another, from ``shared/`` into a service, or from a service into ``spot`` fails
here and in ``make lint``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> dict[str, dict[str, Any]]:
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
    listed = sorted(m.removeprefix("services.") for m in _contracts()["services-independent"]["modules"])
    assert listed == services


def _section(markdown: str, title: str) -> str:
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


# A repository path in backticks: folders and a file name, or a folder ending in "/" (``services/gateway/``,
# ``tests/unit/test_architecture.py``); not an endpoint (``/api/v3/order``) nor a topic (``order-requests``).
PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)*(?:/|\.\w+))`")
# A function named in backticks (``submit_order``, ``decide_batch``): snake case, so neither a Binance field
# (``newClientOrderId``) nor a setting (``INGESTION_IN_GATEWAY``).
FUNCTION = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")


def _paths(section: str) -> list[str]:
    return [p for p in PATH.findall(section) if "/" in p]


def test_the_path_pattern_takes_files_and_folders_and_leaves_endpoints() -> None:
    text = (
        "`services/gateway/` `shared/ids.py` `tests/unit/x.py` `/api/v3/order` `order-requests` `a.b` `(symbol, seq)`"
    )
    assert _paths(text) == ["services/gateway/", "shared/ids.py", "tests/unit/x.py"]


def test_how_an_order_travels_names_only_files_that_exist() -> None:
    """The README's walk through one order names the file of every step; each must exist, so a move or a
    rename that forgets the README fails here."""
    section = _section((ROOT / "README.md").read_text(), "How an order travels")
    named = re.findall(r"`((?:services|shared|spot)/[\w/]+\.py)`", section)
    missing = [path for path in _paths(section) if not (ROOT / path).exists()]
    assert not missing, f"the README names files that do not exist: {missing}"
    # every stage of the path is there, in the order an order meets them
    stages = [
        "services/gateway/fastpath.py",
        "services/gateway/routes/orders.py",
        "shared/ingestor.py",
        "services/order_processor/__main__.py",
        "services/matcher/__main__.py",
        "services/settlement/__main__.py",
        "services/market_data/__main__.py",
        "services/gateway/ws.py",
    ]
    positions = [named.index(stage) for stage in stages]
    assert positions == sorted(positions), [named[p] for p in positions]


def test_how_an_order_travels_names_only_functions_its_files_define() -> None:
    """A step named by its function (``submit_order`` in ``routes/orders.py``) is defined in a file the section
    names, so renaming it without the README fails here."""
    section = _section((ROOT / "README.md").read_text(), "How an order travels")
    sources = "\n".join((ROOT / p).read_text() for p in _paths(section) if p.endswith(".py"))
    functions = set(FUNCTION.findall(section))
    assert functions, "the section names no function"
    undefined = sorted(f for f in functions if not re.search(rf"^\s*(?:async )?def {f}\(", sources, re.MULTILINE))
    assert not undefined, f"the README names functions none of its files define: {undefined}"
