"""Canonicalising order requests: Binance's mandatory/extra parameter rules and error codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import OrderType, Side, StpMode, TimeInForce
from shared.errors import ApiError
from shared.order_request import parse_cancel, parse_new_order

SYMBOLS = {"BTCUSDT", "ETHUSDT"}


def parse(**params: str):  # type: ignore[no-untyped-def]
    return parse_new_order(params, user_id=7, order_id=1000, ts=1, symbols=SYMBOLS)


def code_of(**params: str) -> int:
    with pytest.raises(ApiError) as refused:
        parse(**params)
    return refused.value.code


def test_limit_order_is_canonicalised() -> None:
    r = parse(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.0100",
        price="50000.00",
        newClientOrderId="x-TKT5PX2Fd3caffba772eef049e6fc6",
        newOrderRespType="FULL",
        timestamp="1",
        recvWindow="10000",
    )
    assert (r.side, r.type, r.tif, r.price, r.quantity) == (Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "50000", "0.01")
    assert r.client_order_id == "x-TKT5PX2Fd3caffba772eef049e6fc6" and r.stp is StpMode.EXPIRE_MAKER


def test_market_orders_take_quantity_or_quote_but_not_both() -> None:
    assert parse(symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="100").quote_order_qty == "100"
    assert parse(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="1").tif is TimeInForce.IOC
    assert code_of(symbol="BTCUSDT", side="BUY", type="MARKET") == -1102
    assert code_of(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="1", quoteOrderQty="5") == -1102
    assert code_of(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="1", price="5") == -1106


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"side": "BUY", "type": "LIMIT"}, -1102),  # no symbol
        ({"symbol": "DOGEUSDT", "side": "BUY", "type": "LIMIT"}, -1121),
        ({"symbol": "BTCUSDT", "side": "HOLD", "type": "LIMIT"}, -1117),
        ({"symbol": "BTCUSDT", "side": "BUY", "type": "STOP"}, -1116),
        ({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "1"}, -1102),  # no tif
        (
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTD", "quantity": "1", "price": "1"},
            -1115,
        ),
        (
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "-1", "price": "1"},
            -1100,
        ),
        (
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0", "price": "1"},
            -1100,
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "1e3",
                "price": "1",
            },
            -1100,
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "NaN",
                "price": "1",
            },
            -1100,
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "1",
                "price": "1",
                "newClientOrderId": "a' OR 1=1 --",
            },
            -1100,
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "1",
                "icebergQty": "1",
            },
            -1106,  # an iceberg is a LIMIT or LIMIT_MAKER
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT_MAKER",
                "timeInForce": "GTC",
                "quantity": "1",
                "price": "1",
            },
            -1106,
        ),
    ],
)
def test_bad_requests_get_binance_codes(params: dict[str, str], code: int) -> None:
    assert code_of(**params) == code


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "symbol",
                "side",
                "type",
                "timeInForce",
                "quantity",
                "price",
                "quoteOrderQty",
                "newClientOrderId",
                "selfTradePreventionMode",
                "junk",
            ]
        ),
        st.text(max_size=50),
    )
)
def test_any_input_is_parsed_or_refused_with_a_code(params: dict[str, str]) -> None:
    try:
        parse(**params)
    except ApiError as refused:
        assert refused.code < 0 and refused.http_status == 400 and refused.msg


def test_cancel_needs_a_known_symbol() -> None:
    c = parse_cancel({"symbol": "BTCUSDT", "orderId": "5"}, user_id=1, request_id=9, order_id=5, ts=1, symbols=SYMBOLS)
    assert (c.order_id, c.request_id) == (5, 9)
    with pytest.raises(ApiError):
        parse_cancel({"symbol": "NOPE"}, user_id=1, request_id=9, order_id=5, ts=1, symbols=SYMBOLS)


# --- conditional orders (issue 24) ------------------------------------------------------------------------
STOP = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.1"}


def test_conditional_orders_take_a_stop_price_or_a_trailing_delta_as_binance_requires() -> None:
    r = parse(**STOP, type="STOP_LOSS", stopPrice="49000.10")
    assert (r.type, r.stop_price, r.trailing_delta, r.tif, r.price) == (
        OrderType.STOP_LOSS, "49000.1", None, TimeInForce.IOC, None,
    )  # fmt: skip
    r = parse(**STOP, type="TAKE_PROFIT_LIMIT", timeInForce="GTC", price="51000", trailingDelta="150")
    assert (r.stop_price, r.trailing_delta, r.tif) == (None, 150, TimeInForce.GTC)


@pytest.mark.parametrize(
    ("params", "code", "msg_part"),
    [
        ({"type": "STOP_LOSS"}, -1102, "'stopPrice' or 'trailingDelta'"),
        ({"type": "STOP_LOSS", "stopPrice": "1", "price": "1"}, -1106, "'price'"),
        ({"type": "STOP_LOSS", "stopPrice": "1", "timeInForce": "GTC"}, -1106, "'timeInForce'"),
        ({"type": "STOP_LOSS_LIMIT", "stopPrice": "1", "price": "1"}, -1102, "'timeInForce'"),
        ({"type": "TAKE_PROFIT_LIMIT", "stopPrice": "1", "timeInForce": "GTC"}, -1102, "'price'"),
        ({"type": "LIMIT", "stopPrice": "1", "price": "1", "timeInForce": "GTC"}, -1106, "'stopPrice'"),
        ({"type": "MARKET", "trailingDelta": "100"}, -1106, "'trailingDelta'"),
        ({"type": "STOP_LOSS", "trailingDelta": "1.5"}, -1100, "'trailingDelta'"),
        ({"type": "STOP_LOSS", "trailingDelta": "0"}, -1100, "'trailingDelta'"),
        ({"type": "STOP_LOSS", "trailingDelta": "9" * 12}, -1100, "'trailingDelta'"),
        ({"type": "STOP_LOSS", "stopPrice": "-1"}, -1100, "stopPrice"),
    ],
)
def test_conditional_orders_refused_with_binance_codes(params: dict[str, str], code: int, msg_part: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse(**STOP, **params)
    assert refused.value.code == code and msg_part in refused.value.msg, refused.value.msg
