"""Canonicalising order requests: Binance's mandatory/extra parameter rules and error codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import OrderType, Side, StpMode, TimeInForce
from shared.errors import ApiError
from shared.messages import NewListRequest
from shared.order_request import parse_cancel, parse_new_order, parse_order_list

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


# --- order lists ------------------------------------------------------------------------------------------
def _list(params: dict[str, str], kind: str = "oco") -> NewListRequest:
    return parse_order_list(params, kind, user_id=7, list_id=100, order_ids=[101, 102, 103], ts=5, symbols={"BTCUSDT"})


OCO = {
    "symbol": "BTCUSDT",
    "side": "SELL",
    "quantity": "0.1",
    "aboveType": "LIMIT_MAKER",
    "abovePrice": "55000",
    "belowType": "STOP_LOSS_LIMIT",
    "belowStopPrice": "45000",
    "belowPrice": "44900",
    "belowTimeInForce": "GTC",
    "listClientOrderId": "L1",
}


def test_an_oco_is_its_below_leg_then_its_above_leg_each_a_new_order() -> None:
    r = _list(OCO)
    assert (r.list_id, r.contingency, r.working, r.list_client_id) == (100, "OCO", 2, "L1")
    below, above = r.legs
    assert (below.order_id, below.type, below.stop_price, below.price) == (
        101,
        OrderType.STOP_LOSS_LIMIT,
        "45000",
        "44900",
    )
    assert (above.order_id, above.type, above.price, above.quantity) == (102, OrderType.LIMIT_MAKER, "55000", "0.1")
    assert below.client_order_id == "spot-101" and above.side is below.side is Side.SELL


def test_the_older_oco_maps_onto_the_same_legs() -> None:
    old = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "price": "45000", "stopPrice": "55000",
           "stopLimitPrice": "55100", "stopLimitTimeInForce": "GTC", "limitClientOrderId": "lim"}  # fmt: skip
    below, above = _list(old, "order/oco").legs  # a BUY: the limit below, the stop above
    assert (below.type, below.price, below.client_order_id) == (OrderType.LIMIT_MAKER, "45000", "lim")
    assert (above.type, above.stop_price, above.price) == (OrderType.STOP_LOSS_LIMIT, "55000", "55100")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"aboveType": "STOP_LOSS", "belowType": "LIMIT_MAKER", "belowPrice": "44900"}, -2010),  # pairs the wrong way
        ({"abovePrice": "40000"}, -2010),  # the above leg under the below one
        ({"aboveType": ""}, -1102),
        ({"aboveColour": "red"}, -1104),
        ({"belowTimeInForce": ""}, -1102),  # a STOP_LOSS_LIMIT needs one
        ({"listClientOrderId": "bad id"}, -1100),
        ({"aboveClientOrderId": "same", "belowClientOrderId": "same"}, -2010),
    ],
)
def test_a_list_is_refused_whole_as_binance_refuses_it(change: dict[str, str], code: int) -> None:
    params = {k: v for k, v in (OCO | change).items() if v != ""}
    with pytest.raises(ApiError) as refused:
        _list(params)
    assert refused.value.code == code


def test_oto_and_otoco_have_one_working_order() -> None:
    working = {"workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "40000", "workingQuantity": "0.05",
               "workingTimeInForce": "GTC"}  # fmt: skip
    oto = _list({"symbol": "BTCUSDT", **working, "pendingType": "MARKET", "pendingSide": "SELL",
                 "pendingQuantity": "0.05"}, "oto")  # fmt: skip
    assert (oto.contingency, oto.working, [leg.type for leg in oto.legs]) == (
        "OTO",
        1,
        [OrderType.LIMIT, OrderType.MARKET],
    )
    otoco = _list({"symbol": "BTCUSDT", **working, "pendingSide": "SELL", "pendingQuantity": "0.05",
                   "pendingAboveType": "LIMIT_MAKER", "pendingAbovePrice": "60000", "pendingBelowType": "STOP_LOSS",
                   "pendingBelowStopPrice": "30000"}, "otoco")  # fmt: skip
    assert [leg.type for leg in otoco.legs] == [OrderType.LIMIT, OrderType.STOP_LOSS, OrderType.LIMIT_MAKER]
    with pytest.raises(ApiError):
        _list({"symbol": "BTCUSDT", **working, "workingType": "MARKET", "pendingType": "LIMIT_MAKER"}, "oto")
