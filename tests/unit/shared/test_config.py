"""Settings that the estate hands over: a fleet told Redis runs in cluster mode stops at boot (its client
is not cluster-aware), and the topics' replication factor is read from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings


def test_cluster_mode_redis_is_refused_at_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    with pytest.raises(ValidationError, match="not cluster-aware"):
        Settings()


def test_replication_factor_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "false")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    settings = Settings()
    assert (settings.redis_cluster, settings.kafka_replication_factor) == (False, 3)
