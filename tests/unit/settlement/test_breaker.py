"""The circuit breaker against a brute-force model: it trips at the first trade that moved more than the share
from any price traded within the window before it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.settlement.breaker import Breaker
from shared.postgres import DEFAULT_MARKETS

BTC = replace(DEFAULT_MARKETS[0], breaker_pct=Decimal("0.1"), breaker_window_s=10)


def first_trip(trades: list[tuple[int, int]], share: Decimal, window_ms: int) -> int | None:
    """Brute force: the index of the first trade more than ``share`` away from a price within the window."""
    for i, (ts, price) in enumerate(trades):
        for earlier_ts, earlier in trades[:i]:
            if earlier_ts >= ts - window_ms and abs(price - earlier) > earlier * share:
                return i
    return None


steps = st.lists(st.tuples(st.integers(0, 4000), st.integers(90, 112)), max_size=60)


@given(steps)
def test_the_breaker_trips_where_the_brute_force_model_does(raw: list[tuple[int, int]]) -> None:
    trades, ts = [], 0
    for gap, price in raw:
        ts += gap
        trades.append((ts, price))
    expected = first_trip(trades, BTC.breaker_pct, BTC.breaker_window_s * 1000)
    breaker = Breaker()
    tripped_at = None
    for i, trade in enumerate(trades):  # one trade per batch: the window carries over between batches
        if breaker.observe(BTC, [trade]):
            tripped_at = i
            break
    assert tripped_at == expected


def test_a_breaker_that_is_off_or_a_market_not_trading_never_trips() -> None:
    jump = [(0, 100), (1, 1000)]
    assert not Breaker().observe(replace(BTC, breaker_pct=Decimal(0)), jump)
    assert not Breaker().observe(replace(BTC, status="HALT"), jump)
    assert Breaker().observe(BTC, jump)
