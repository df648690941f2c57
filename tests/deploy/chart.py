"""Render and lint the Helm chart offline with helm-python-sdk (Helm's Go SDK as a shared library).

`render` merges value files the way `helm -f a.yaml -f b.yaml` does (later files win, maps merge) and
returns the manifests as parsed documents, each tagged with the template it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .contract import CHART

RELEASE = "spot"
NAMESPACE = "exchange"


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def values_from(files: Iterable[Path]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in files:
        values = _merge(values, yaml.safe_load(path.read_text()) or {})
    return values


@cache
def _chart(path: Path):
    import helm_python

    return helm_python.Chart.load(str(path))


def render(files: Iterable[Path] = (), *, chart: Path = CHART) -> list[dict[str, Any]]:
    """Every rendered object, with its source template under the key `__template__`."""
    manifests = _chart(chart).render(values_from(files), name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for template, text in sorted(manifests.items()):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append({**doc, "__template__": template})
    return docs


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "__template__"}


def lint(files: Iterable[Path] = (), *, chart: Path = CHART, kube_version: str) -> dict[str, Any]:
    import helm_python

    return helm_python.lint(str(chart), values_from(files), strict=True, kube_version=f"v{kube_version}")
