"""Outcomes that arrive before their caller waits are kept for ``EARLY_KEEP_S`` and at most ``EARLY_KEPT``
of them: the map is a window, so a gateway's memory is flat whatever the rate and the length of the run."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway import outcomes
from services.gateway.outcomes import Outcomes

# arrivals: seconds since the previous outcome
gaps = st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=80)


@given(gaps=gaps, kept=st.integers(1, 30))
def test_early_outcomes_are_a_window_of_time_and_count(gaps: list[float], kept: int) -> None:
    now = [1000.0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outcomes.time, "monotonic", lambda: now[0])
        mp.setattr(outcomes, "EARLY_KEPT", kept)
        box = Outcomes()
        arrived: list[tuple[int, float]] = []
        for request_id, gap in enumerate(gaps):
            now[0] += gap
            box.deliver(orjson.dumps({"requestId": request_id, "order": {}}))
            arrived.append((request_id, now[0]))
        model = [i for i, at in arrived if at >= now[0] - outcomes.EARLY_KEEP_S][-kept:]
        assert list(box._early) == model
        last = len(gaps) - 1  # the newest is always there for its caller
        assert asyncio.run(box.wait(last, 0.01)) == {"requestId": last, "order": {}}
