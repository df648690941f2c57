"""``isolate`` against a simple model: every good item is applied once, in order, every bad one is returned
with its error, and an outage is raised rather than isolated."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.deadletter import headers_of, isolate, unappliable

items = st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), max_size=60, unique_by=lambda i: i[0])


def _transaction(store: list[int], calls: list[int]):  # all or nothing, as a Postgres transaction is
    async def apply(chunk: Sequence[tuple[int, bool]]) -> int:
        calls.append(len(chunk))
        bad = [n for n, good in chunk if not good]
        if bad:
            raise ValueError(f"item {bad[0]} cannot be applied")
        store.extend(n for n, _ in chunk)
        return len(chunk)

    return apply


@given(items)
def test_isolate_applies_every_good_item_once_in_order_and_returns_each_bad_one(batch):
    store: list[int] = []
    calls: list[int] = []
    applied, failed = asyncio.run(isolate(batch, _transaction(store, calls)))
    assert store == [n for n, good in batch if good]  # the model: the good ones, in order
    assert [item for item, _ in failed] == [i for i in batch if not i[1]]
    assert all(isinstance(exc, ValueError) and str(item[0]) in str(exc) for item, exc in failed)
    assert [n for chunk, _ in applied for n, _ in chunk] == store
    assert all(result == len(chunk) for chunk, result in applied)
    if all(good for _, good in batch):
        assert len(calls) == (1 if batch else 0)  # a batch that applies costs one call


def test_an_outage_is_raised_not_isolated():
    async def apply(chunk: Sequence[int]) -> None:
        raise ConnectionResetError("postgres went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(isolate([1, 2, 3], apply))


@pytest.mark.parametrize(
    ("exc", "want"),
    [
        (ValueError("x"), True),
        (OverflowError("int too big"), True),
        (asyncpg.DataError("out of range"), True),
        (asyncpg.UniqueViolationError("dup"), True),
        (ConnectionRefusedError(), False),
        (TimeoutError(), False),
        (asyncpg.PostgresConnectionError("gone"), False),
    ],
)
def test_an_error_is_the_records_fault_unless_it_says_a_dependency_went_away(exc, want):
    assert unappliable(exc) is want


def test_dead_letter_headers_keep_the_records_own_and_replace_an_earlier_dead_lettering():
    own = [("traceparent", b"00-ab"), ("reason", b"old"), ("source", b"old")]
    assert headers_of(own, "ValueError: x", "matched-events", 3, 17, 2, "market-data") == [
        ("traceparent", b"00-ab"),
        ("reason", b"ValueError: x"),
        ("source", b"matched-events/3/17"),
        ("source-index", b"2"),
        ("consumer", b"market-data"),
    ]
