"""`spot deploy lambda-package`: the ingestion Lambda's zip, built before `terraform apply`.

Terraform names the file (envs/prod `lambda_package_path`) instead of zipping the tree itself, so the
configuration needs no archive provider and the zip is built once by the pipeline that tests it. It holds
the project's own Python and Alembic's templates under services/ and shared/, never caches, tests or the
virtualenv; third-party packages come in Lambda layers. Entries carry a fixed timestamp, so one tree
gives one zip and Terraform's source_code_hash changes only when the code does.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

PACKAGES = ("services", "shared")
SUFFIXES = {".py", ".ini", ".mako"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record


def files(root: Path) -> list[Path]:
    """The files the zip holds, relative to `root`, in a stable order."""
    found = (
        p.relative_to(root)
        for package in PACKAGES
        for p in (root / package).rglob("*")
        if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
    )
    return sorted(found)


def build(root: Path, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    members = files(root)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            info = zipfile.ZipInfo(member.as_posix(), date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (root / member).read_bytes())
    return members
