"""The gateway's limits that need no Redis, against simple models: depth weight, used-weight headers, and the
per-connection WebSocket message rate."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from services.gateway.ratelimit import depth_weight, used_headers
from services.gateway.ws import MAX_MESSAGES_PER_S, MessageRate

# Binance's table for GET /api/v3/depth: limit range -> weight
BINANCE_DEPTH = ((range(1, 101), 5), (range(101, 501), 25), (range(501, 1001), 50), (range(1001, 5001), 250))


@given(st.integers(1, 5000))
@example(100)
@example(101)
@example(500)
@example(501)
@example(1000)
@example(1001)
@example(5000)
def test_depth_weight_is_binances_table(limit: int) -> None:
    assert depth_weight(limit) == next(weight for limits, weight in BINANCE_DEPTH if limit in limits)


@given(st.integers(1, 10**6), st.integers(1, 10**6))
def test_a_deeper_book_never_weighs_less(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert depth_weight(low) <= depth_weight(high) <= 250


def test_used_headers_say_what_the_request_spent() -> None:
    assert used_headers({}) == []
    assert used_headers({"weight": 7}) == [(b"x-mbx-used-weight-1m", b"7")]
    assert used_headers({"weight": 7, "orders": 2}) == [
        (b"x-mbx-used-weight-1m", b"7"),
        (b"x-mbx-order-count-10s", b"2"),
    ]


gaps = st.lists(st.sampled_from([0.0, 0.001, 0.1, 0.2, 0.25, 0.5, 0.999, 1.0, 1.5]), max_size=60)


@given(gaps, st.integers(1, 8))
def test_message_rate_allows_at_most_n_in_any_second_and_refuses_only_then(steps: list[float], n: int) -> None:
    """Model: a message is allowed while fewer than ``n`` allowed ones arrived in the second before it."""
    rate, allowed, now = MessageRate(n), [], 1000.0
    for gap in steps:
        now += gap
        recent = sum(1 for t in allowed if now - t < 1.0)
        want = recent < n
        assert rate.allows(now) == want
        if want:
            allowed.append(now)


def test_message_rate_default_is_binances_five_a_second() -> None:
    rate = MessageRate()
    assert all(rate.allows(10.0) for _ in range(MAX_MESSAGES_PER_S))
    assert not rate.allows(10.5)
    assert rate.allows(11.0)
