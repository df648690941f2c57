"""Market filters and hold sizing: exact units, Binance's filter names, never more than available."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.order_processor.validation import check, size_hold
from shared.domain import Market, OrderType, Side, TimeInForce
from shared.errors import ApiError
from shared.messages import NewOrderRequest

BTC = Market(
    "BTCUSDT",
    "BTC",
    "USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_price=Decimal("0.01"),
    max_price=Decimal("1000000"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
)


def req(
    side: Side = Side.BUY,
    type: OrderType = OrderType.LIMIT,
    price: str | None = "50000",
    qty: str | None = "0.1",
    quote: str | None = None,
) -> NewOrderRequest:
    return NewOrderRequest(
        order_id=1,
        user_id=2,
        symbol="BTCUSDT",
        side=side,
        type=type,
        tif=TimeInForce.GTC if type is not OrderType.MARKET else TimeInForce.IOC,
        price=price,
        quantity=qty,
        quote_order_qty=quote,
        client_order_id="c",
        ts=0,
    )


def refusal(r: NewOrderRequest) -> str:
    with pytest.raises(ApiError) as refused:
        check(r, BTC)
    return refused.value.msg


def test_limit_buy_holds_price_times_quantity_in_quote() -> None:
    spec = check(req(), BTC)
    assert (spec.price_ticks, spec.qty_lots, spec.hold_asset) == (5_000_000, 10_000, "USDT")
    assert spec.hold_atoms == 5_000 * 10**8
    hold = size_hold(spec, Side.BUY, BTC, 6_000 * 10**8)
    assert (hold.atoms, hold.budget) == (5_000 * 10**8, 5_000_000 * 10_000)


def test_sell_holds_the_quantity_in_base() -> None:
    spec = check(req(Side.SELL), BTC)
    assert (spec.hold_asset, spec.hold_atoms) == ("BTC", 10**7)


def test_filters_refuse_with_their_names() -> None:
    assert refusal(req(price="50000.001")) == "Filter failure: PRICE_FILTER"
    assert refusal(req(price="2000000")) == "Filter failure: PRICE_FILTER"
    assert refusal(req(qty="0.000001")) == "Filter failure: LOT_SIZE"
    assert refusal(req(qty="10000")) == "Filter failure: LOT_SIZE"
    assert refusal(req(price="1", qty="1")) == "Filter failure: NOTIONAL"
    assert refusal(req(type=OrderType.MARKET, price=None, qty=None, quote="4.99")) == "Filter failure: NOTIONAL"


def test_market_buy_by_quantity_holds_everything_available_in_whole_units() -> None:
    spec = check(req(type=OrderType.MARKET, price=None), BTC)
    assert spec.hold_atoms is None
    hold = size_hold(spec, Side.BUY, BTC, 1234567891)
    assert hold.atoms == 1234567890 and hold.budget == 1234567890 // BTC.atoms_per_nu


def test_insufficient_balance_is_binances_message() -> None:
    with pytest.raises(ApiError) as refused:
        size_hold(check(req(), BTC), Side.BUY, BTC, 4_999 * 10**8)
    assert (refused.value.code, refused.value.msg) == (-2010, "Account has insufficient balance for requested action.")


@given(st.integers(1, 10**8), st.integers(1, 10**6), st.integers(0, 10**14), st.sampled_from(Side))
def test_a_hold_never_exceeds_what_is_available(ticks: int, lots: int, available: int, side: Side) -> None:
    r = req(side, price=str(BTC.ticks_to_price(ticks)), qty=str(BTC.lots_to_qty(lots)))
    try:
        spec = check(r, BTC)
        hold = size_hold(spec, side, BTC, available)
    except ApiError:
        return
    assert 0 < hold.atoms <= available
    unit = BTC.atoms_per_nu if side is Side.BUY else BTC.atoms_per_lot
    assert hold.budget * unit == hold.atoms


def test_percent_price_by_side_refuses_a_limit_outside_the_band_and_bounds_a_market_order() -> None:
    m = replace(BTC, bid_up=Decimal("1.1"), ask_down=Decimal("0.9"))
    avg = Fraction(50_000_00)  # 50,000.00 in ticks
    assert check(req(price="55000"), m, avg).price_ticks == 55_000_00
    with pytest.raises(ApiError) as refused:
        check(req(price="55000.01"), m, avg)
    assert (refused.value.code, refused.value.msg) == (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
    buy = check(req(type=OrderType.MARKET, price=None, qty="0.1"), m, avg)
    assert buy.price_ticks == 55_000_00 and buy.capped  # holds at most 0.1 at the band, not the whole balance
    assert buy.hold_atoms == m.limit_hold_atoms(Side.BUY, 55_000_00, 10_000)
    assert size_hold(buy, Side.BUY, m, 10**12).atoms == buy.hold_atoms
    assert size_hold(buy, Side.BUY, m, 1000 * 10**8).atoms == 1000 * 10**8  # less available: all of it
    sell = check(req(side=Side.SELL, type=OrderType.MARKET, price=None, qty="0.1"), m, avg)
    assert sell.price_ticks == 45_000_00
    assert check(req(type=OrderType.MARKET, price=None, qty="0.1"), m, None).price_ticks == 0  # never traded


# --- conditional orders (issue 24) ------------------------------------------------------------------------
def stop_req(type: OrderType, side: Side, price: str | None, stop: str | None, delta: int | None) -> NewOrderRequest:
    limit = type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
    return msgspec.structs.replace(
        req(side=side, type=type, price=price),
        tif=TimeInForce.GTC if limit else TimeInForce.IOC,
        stop_price=stop,
        trailing_delta=delta,
    )


def test_a_stop_limit_holds_as_the_limit_it_becomes_and_carries_its_stop() -> None:
    spec = check(stop_req(OrderType.STOP_LOSS_LIMIT, Side.BUY, "50000", "49000", None), BTC)
    limit = check(req(side=Side.BUY, price="50000"), BTC)
    assert (spec.hold_atoms, spec.price_ticks, spec.stop_ticks, spec.trailing_delta) == (
        limit.hold_atoms, limit.price_ticks, 4_900_000, 0,
    )  # fmt: skip


def test_a_market_stop_buy_holds_as_a_market_buy_does() -> None:
    spec = check(stop_req(OrderType.TAKE_PROFIT, Side.BUY, None, None, 250), BTC)
    assert spec.hold_atoms is None and (spec.stop_ticks, spec.trailing_delta) == (0, 250)
    bounded = check(stop_req(OrderType.STOP_LOSS, Side.BUY, None, "51000", None), BTC, Fraction(5_000_000))
    market = check(req(type=OrderType.MARKET, price=None), BTC, Fraction(5_000_000))
    assert (bounded.hold_atoms, bounded.capped, bounded.price_ticks) == (
        market.hold_atoms, True, market.price_ticks,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("type", "side", "delta", "pair"),
    [
        (OrderType.STOP_LOSS, Side.BUY, 9, "Above"),
        (OrderType.TAKE_PROFIT, Side.SELL, 2001, "Above"),
        (OrderType.STOP_LOSS, Side.SELL, 2001, "Below"),
        (OrderType.TAKE_PROFIT_LIMIT, Side.BUY, 5, "Below"),
    ],
)
def test_trailing_delta_outside_its_filter_is_refused(type: OrderType, side: Side, delta: int, pair: str) -> None:
    price = "50000" if type is OrderType.TAKE_PROFIT_LIMIT else None
    with pytest.raises(ApiError) as refused:
        check(stop_req(type, side, price, None, delta), BTC)
    assert (refused.value.code, refused.value.msg) == (-1013, "Filter failure: TRAILING_DELTA")
    check(stop_req(type, side, price, None, 10), BTC)  # the bounds themselves pass
    check(stop_req(type, side, price, None, 2000), BTC)
