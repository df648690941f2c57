"""Shared fixtures of the deployment checks: the chart rendered once per profile, the CRD schemas."""

from __future__ import annotations

from typing import Any

import pytest

from . import chart
from .contract import CRD_DIR, PROFILES
from .crds import CustomResourceSchemas


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every profile's rendered objects (default, local, eks, ci-*)."""
    return {profile: chart.render(files) for profile, files in PROFILES.items()}


@pytest.fixture(scope="session")
def crd_schemas() -> CustomResourceSchemas:
    if not CRD_DIR.is_dir():
        pytest.fail(f"CRDs not found at {CRD_DIR}: ../shared/crds must sit beside the checkout")
    return CustomResourceSchemas(CRD_DIR)
