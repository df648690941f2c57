"""Settlement tells a record it cannot apply (its symbol halts) from an outage or a passing condition in
Postgres (waited out or retried: no symbol halts for those)."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError

from services.settlement.batch import unappliable
from services.settlement.ledger import HoldShortfall, UnknownOrder


def _caused(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    "exc",
    [
        UnknownOrder("order 7 has no row"),
        HoldShortfall("order 7: holds 1, its lots need 2"),
        asyncpg.DataError("value out of range for type bigint"),
        asyncpg.exceptions.CheckViolationError("held_not_negative"),
        KeyError("XRPUSDT"),  # a symbol settlement has no market for
    ],
    ids=type,
)
def test_a_record_that_cannot_be_applied_is_unappliable(exc: Exception) -> None:
    assert unappliable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.PostgresConnectionError("connection lost"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        TimeoutError(),
        ConnectionRefusedError(),
        RedisConnectionError(),
        KafkaConnectionError(),
        _caused(RuntimeError("wrapped"), OSError("network is unreachable")),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    ],
    ids=type,
)
def test_an_outage_or_a_passing_condition_is_not(exc: Exception) -> None:
    assert not unappliable(exc)
