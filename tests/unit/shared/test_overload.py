"""``shared.overload``: a bounded admission never lets more than its limit in and refuses, after its wait,
with Binance's -1008, a 503 and ``Retry-After``; the warning lines of an expected fault are one per kind per
interval, and together with the count each line carries, account for every occurrence."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import errors
from shared.overload import REFUSALS, Admission, Overloaded, Warnings, refuse

# a step: admit one more holder (True) or let the oldest go (False)
steps = st.lists(st.booleans(), max_size=40)


@given(limit=st.integers(1, 5), plan=steps)
def test_admission_holds_at_most_its_limit_and_refuses_only_when_full(limit: int, plan: list[bool]) -> None:
    async def run() -> None:
        admission = Admission("probe", limit, wait_s=0.001)
        held = 0  # the model: how many are inside
        for admit in plan:
            if admit:
                if held < limit:
                    await admission.__aenter__()
                    held += 1
                else:
                    with pytest.raises(Overloaded) as refused:
                        await admission.__aenter__()
                    assert refused.value.resource == "probe"
            elif held:
                await admission.__aexit__(None, None, None)
                held -= 1
            assert admission.in_use == held <= limit

    asyncio.run(run())


def test_a_waiting_request_gets_the_place_freed_within_its_wait() -> None:
    async def run() -> None:
        admission = Admission("probe", 1, wait_s=1.0)
        await admission.__aenter__()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: asyncio.ensure_future(admission.__aexit__(None, None, None)))
        started = loop.time()
        async with admission:
            assert admission.in_use == 1
        assert 0.04 <= loop.time() - started < 0.9
        assert admission.in_use == 0

    asyncio.run(run())


def test_a_refusal_is_binances_overload_answer_and_is_counted() -> None:
    before = REFUSALS.labels("test pool")._value.get()
    refused = refuse("test pool", 0.5)
    assert refused.body() == {"code": errors.SERVER_BUSY, "msg": refused.msg}
    assert refused.code == -1008 and refused.http_status == 503 and refused.headers == {"Retry-After": "1"}
    assert "overloaded" in refused.msg
    assert REFUSALS.labels("test pool")._value.get() == before + 1


# events: (seconds since the previous one, kind)
events = st.lists(st.tuples(st.floats(0, 3, allow_nan=False), st.sampled_from("ab")), max_size=60)


@given(every_s=st.floats(0.5, 5), seen=events)
def test_warnings_are_one_line_per_kind_per_interval_and_count_every_occurrence(
    every_s: float, seen: list[tuple[float, str]]
) -> None:
    now = [0.0]
    warnings = Warnings(every_s, clock=lambda: now[0])
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("shared.overload")
    logger.addHandler(handler)
    try:
        last: dict[str, float] = {}
        for gap, kind in seen:
            now[0] += gap
            model = kind not in last or now[0] - last[kind] >= every_s
            assert warnings.warn(kind, kind) is model
            if model:
                last[kind] = now[0]
    finally:
        logger.removeHandler(handler)
    for kind in "ab":  # each line stands for itself and the ones it says were not logged; the rest are pending
        said = [m for m in logged if m.startswith(kind)]
        told = sum(1 + (int(m.split("(")[1].split()[0]) if "(" in m else 0) for m in said)
        assert told + warnings._unsaid.get(kind, 0) == sum(1 for _, k in seen if k == kind)


def test_a_warning_line_says_how_many_were_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warnings = Warnings(5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="shared.overload"):
        for t in (0.0, 1.0, 2.0, 6.0):
            now[0] = t
            warnings.warn("k", "pool empty")
    assert [r.getMessage() for r in caplog.records] == ["pool empty", "pool empty (2 more since the last such line)"]
