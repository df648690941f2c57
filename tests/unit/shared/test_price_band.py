"""PERCENT_PRICE_BY_SIDE and MARKET price protection: the band is exactly Binance's inequalities, in ticks."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import price_band
from shared.domain import Side
from shared.errors import ApiError
from shared.postgres import DEFAULT_MARKETS

BTC = replace(DEFAULT_MARKETS[0], bid_up=Decimal("1.05"), bid_down=Decimal("0.8"), ask_up=Decimal("1.25"),
              ask_down=Decimal("0.95"))  # fmt: skip
multipliers = st.decimals(min_value=Decimal("1"), max_value=Decimal("5"), places=3)
downs = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1"), places=3)


@given(
    avg=st.fractions(min_value=1, max_value=10**9),
    price=st.integers(1, 2 * 10**9),
    side=st.sampled_from(Side),
    up=multipliers,
    down=downs,
)
def test_a_limit_price_passes_exactly_when_binances_inequalities_hold(
    avg: Fraction, price: int, side: Side, up: Decimal, down: Decimal
) -> None:
    m = replace(BTC, bid_up=up, bid_down=down, ask_up=up, ask_down=down)
    within = avg * Fraction(down) <= price <= avg * Fraction(up)
    try:
        price_band.check_limit(m, side, price, avg)
        passed = True
    except ApiError as refused:
        assert (refused.code, refused.msg) == (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
        passed = False
    assert passed == within


def test_the_band_uses_each_sides_multipliers_and_no_average_means_no_band() -> None:
    avg = Fraction(100_00)  # 100.00 in ticks
    assert price_band.bounds(BTC, Side.BUY, avg) == (80_00, 105_00)
    assert price_band.bounds(BTC, Side.SELL, avg) == (95_00, 125_00)
    assert price_band.market_limit(BTC, Side.BUY, avg) == 105_00  # a MARKET BUY takes asks up to here
    assert price_band.market_limit(BTC, Side.SELL, avg) == 95_00  # a MARKET SELL takes bids down to here
    assert price_band.market_limit(BTC, Side.BUY, None) == 0
    price_band.check_limit(BTC, Side.BUY, 10**9, None)  # before the first trade, nothing to compare with
    with pytest.raises(ApiError):
        price_band.check_limit(BTC, Side.BUY, 105_01, avg)


def test_the_average_is_volume_weighted_else_the_last_price() -> None:
    assert price_band.average(3, 3 * 100 + 0, 7) == Fraction(100)
    assert price_band.average(4, 100 + 3 * 200, 7) == Fraction(700, 4)
    assert price_band.average(0, 0, 7) == Fraction(7)
    assert price_band.average(0, 0, None) is None
