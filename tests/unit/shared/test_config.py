"""Settings that the estate hands over: Redis' cluster mode and the topics' replication factor are read from
the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings


@pytest.mark.parametrize("cluster", [True, False])
def test_cluster_mode_and_replication_factor_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, cluster: bool
) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", str(cluster).lower())
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    settings = Settings()
    assert (settings.redis_cluster, settings.kafka_replication_factor) == (cluster, 3)


def test_a_replication_factor_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(ValidationError):
        Settings()
