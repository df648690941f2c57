"""A market's filters on an order's numbers: maxQty (LOT_SIZE, MARKET_LOT_SIZE), maxNotional (LIMIT and MARKET by
quote), minNotional, and every amount they let through fits a BIGINT, checked against Decimal arithmetic."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.domain import INT64_MAX, Market, OrderType
from shared.errors import ApiError
from shared.filters import ICEBERG_PARTS_LIMIT, Sized, iceberg, size
from shared.postgres import DEFAULT_MARKETS

BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")  # tick 0.01, step 0.00001, maxQty 9000
SMALL = replace(BTC, max_notional=Decimal(100_000))  # a maxNotional below maxPrice * maxQty
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


def refusal(
    market: Market, order_type: OrderType, price: str | None, qty: str | None, quote: str | None = None
) -> tuple[int, str]:
    with pytest.raises(ApiError) as refused:
        size(market, order_type, price, qty, quote)
    return refused.value.code, refused.value.msg


def test_max_qty_is_lot_size_for_a_limit_and_market_lot_size_for_a_market_order() -> None:
    assert size(BTC, LIMIT, "1", "9000", None) == Sized(100, 900_000_000, 0)
    assert refusal(BTC, LIMIT, "1", "9000.00001") == (-1013, "Filter failure: LOT_SIZE")
    assert refusal(BTC, OrderType.LIMIT_MAKER, "1", "900000") == (-1013, "Filter failure: LOT_SIZE")
    assert size(BTC, MARKET, None, "9000", None) == Sized(0, 900_000_000, 0)
    assert refusal(BTC, MARKET, None, "9000.00001") == (-1013, "Filter failure: MARKET_LOT_SIZE")
    assert refusal(BTC, MARKET, None, "900000") == (-1013, "Filter failure: MARKET_LOT_SIZE")  # 9e10 lots
    assert refusal(BTC, MARKET, None, "0.000001") == (-1013, "Filter failure: MARKET_LOT_SIZE")  # off the step


def test_max_notional_refuses_a_limit_order_past_it() -> None:
    assert size(SMALL, LIMIT, "100000", "1", None).price_ticks * 1 == 10_000_000
    assert refusal(SMALL, LIMIT, "100000", "1.00001") == (-1013, "Filter failure: NOTIONAL")
    assert refusal(SMALL, LIMIT, "1000000", "9000") == (-1013, "Filter failure: NOTIONAL")


def test_notional_applies_its_min_and_max_to_a_market_order_by_quote() -> None:
    assert size(BTC, MARKET, None, None, "5") == Sized(0, 0, 50_000_000)
    assert refusal(BTC, MARKET, None, None, "4.99999999") == (-1013, "Filter failure: NOTIONAL")
    assert size(BTC, MARKET, None, None, "9000000000") == Sized(0, 0, 9 * 10**16)
    assert refusal(BTC, MARKET, None, None, "9000000000.00000001") == (-1013, "Filter failure: NOTIONAL")
    assert refusal(BTC, MARKET, None, None, "1000000000000") == (-1013, "Filter failure: NOTIONAL")  # was 1e19 nu
    assert refusal(SMALL, MARKET, None, None, "100001") == (-1013, "Filter failure: NOTIONAL")


def test_price_and_min_notional_keep_their_names() -> None:
    assert refusal(BTC, LIMIT, "1000000.01", "1") == (-1013, "Filter failure: PRICE_FILTER")
    assert refusal(BTC, LIMIT, "0", "1") == (-1013, "Filter failure: PRICE_FILTER")
    assert refusal(BTC, LIMIT, "1", "1") == (-1013, "Filter failure: NOTIONAL")


def test_numbers_off_the_grammar_are_refused_before_any_filter() -> None:
    assert refusal(BTC, LIMIT, "50000.0000000000000000000000000001", "1")[0] == -1111
    assert refusal(BTC, LIMIT, "1e5", "1")[0] == -1100
    assert refusal(BTC, MARKET, None, None, "\u0661\u0660\u0660")[0] == -1100


def test_an_order_type_takes_its_own_numbers() -> None:
    assert refusal(BTC, LIMIT, None, "1")[0] == -1102
    assert refusal(BTC, LIMIT, "1", None)[0] == -1102
    assert refusal(BTC, LIMIT, "1", "1", "5")[0] == -1106
    assert refusal(BTC, MARKET, None, None, None)[0] == -1102
    assert refusal(BTC, MARKET, None, "1", "5")[0] == -1102
    assert refusal(BTC, MARKET, "1", "1", None)[0] == -1106


def test_a_market_whose_largest_order_passes_a_bigint_is_refused() -> None:
    with pytest.raises(ValueError, match="BIGINT"):
        replace(BTC, max_notional=Decimal(10**12))  # 1e19 notional units of one atom each
    with pytest.raises(ValueError, match="BIGINT"):
        replace(BTC, max_qty=Decimal(10**14))  # 1e19 lots
    with pytest.raises(ValueError, match="BIGINT"):
        replace(BTC, tick_size=Decimal("0.00000001"), step_size=Decimal(1), max_price=Decimal(10**11))  # 1e19 ticks


amounts = st.one_of(
    st.none(),
    st.decimals(min_value=0, max_value=10**13, places=8).map(lambda d: format(d, "f")),
    st.sampled_from(["0", "0.00000001", "9000", "9000.00001", "1000000", "9000000000", "9223372036854775807"]),
)


@given(st.sampled_from(list(OrderType)), amounts, amounts, amounts, st.sampled_from([BTC, SMALL]))
@example(MARKET, None, None, "1000000000000", BTC)
@example(MARKET, None, "900000", None, BTC)
@example(LIMIT, "1000000", "9000", None, BTC)
def test_what_the_filters_let_through_is_within_them_and_fits_a_bigint(
    order_type: OrderType, price: str | None, qty: str | None, quote: str | None, market: Market
) -> None:
    try:
        sized = size(market, order_type, price, qty, quote)
    except ApiError as refused:
        assert refused.code in (-1013, -1100, -1102, -1106, -1111)
        return
    unit = market.tick_size * market.step_size
    if price is not None:
        assert sized.price_ticks * market.tick_size == Decimal(price) <= market.max_price
    if qty is not None:
        assert sized.qty_lots * market.step_size == Decimal(qty) <= market.max_qty
    if quote is not None:
        assert market.min_notional <= Decimal(quote) <= market.max_notional
        assert sized.quote_nu * unit <= Decimal(quote) < (sized.quote_nu + 1) * unit
    if order_type is not MARKET:
        assert market.min_notional <= Decimal(price or 0) * Decimal(qty or 0) <= market.max_notional
    for atoms in (
        sized.price_ticks * sized.qty_lots * market.atoms_per_nu,
        sized.quote_nu * market.atoms_per_nu,
        sized.qty_lots * market.atoms_per_lot,
    ):
        assert 0 <= atoms <= INT64_MAX


@pytest.mark.parametrize(
    ("otype", "tif", "qty_lots", "iceberg_qty", "expected"),
    [
        (OrderType.LIMIT, "GTC", 5_000, None, 0),  # not an iceberg
        (OrderType.LIMIT, "GTC", 5_000, "0.02", 2_000),  # 3 parts
        (OrderType.LIMIT_MAKER, "GTC", 5_000, "0.005", 500),  # 10 parts: the most
        (OrderType.LIMIT, "GTC", 5_000, "0.00499", (-1013, "Filter failure: ICEBERG_PARTS")),  # 11 parts
        (OrderType.LIMIT, "GTC", 5_000, "0.05", (-1013, "Filter failure: ICEBERG_PARTS")),  # one part
        (OrderType.LIMIT, "GTC", 5_000, "0.000001", (-1013, "Filter failure: LOT_SIZE")),  # off the step
        (OrderType.LIMIT, "IOC", 5_000, "0.02", (-2010, "Unsupported order combination")),
        (OrderType.MARKET, "IOC", 5_000, "0.02", (-2010, "Unsupported order combination")),
    ],
)
def test_iceberg_parts(otype: OrderType, tif: str, qty_lots: int, iceberg_qty: str | None, expected: object) -> None:
    assert ICEBERG_PARTS_LIMIT == 10
    if isinstance(expected, int):
        assert iceberg(BTC, otype, tif, qty_lots, iceberg_qty) == expected
    else:
        with pytest.raises(ApiError) as refused:
            iceberg(BTC, otype, tif, qty_lots, iceberg_qty)
        assert (refused.value.code, refused.value.msg) == expected
