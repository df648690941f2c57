"""Every built-in object the chart renders validates strictly against Kubernetes' own OpenAPI schemas
(kubernetes-validate, release KUBERNETES_VERSION): unknown fields and wrong types are errors."""

from __future__ import annotations

import pytest
import yaml

from . import chart
from .contract import BROKEN, KUBERNETES_VERSION, PROFILES

BUILT_IN_GROUPS = (
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "autoscaling/v2",
    "networking.k8s.io/v1",
    "scheduling.k8s.io/v1",
)
BROKEN_OBJECTS = sorted((BROKEN / "kubernetes").glob("*.yaml"))


def _validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("profile", PROFILES)
def test_built_in_objects_validate_strictly(rendered, profile):
    built_in = [chart.strip(d) for d in rendered[profile] if d["apiVersion"] in BUILT_IN_GROUPS]
    assert built_in
    for doc in built_in:
        _validate(doc)


@pytest.mark.parametrize("path", BROKEN_OBJECTS, ids=lambda p: p.name)
def test_broken_built_in_objects_are_refused(path):
    import kubernetes_validate

    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(doc)
