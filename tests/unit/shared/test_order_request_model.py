"""``shared/order_request.py`` against simple models: which parameters each order type takes, canonical numbers,
client order ids, and how ``order/cancelReplace`` splits its parameters.

The examples in ``test_order_request.py`` pin Binance's codes one by one; here every combination is drawn:

- the parameter table (valid values only, so only presence decides): LIMIT needs ``timeInForce``, ``price`` and
  ``quantity`` and refuses ``quoteOrderQty``; LIMIT_MAKER needs ``price`` and ``quantity`` and refuses
  ``timeInForce`` and ``quoteOrderQty`` (it rests as GTC); MARKET takes exactly one of ``quantity`` and
  ``quoteOrderQty`` and refuses ``price`` and ``timeInForce`` (it is IOC). A missing one is -1102, one sent when
  not required -1106, each naming its parameter, checked in that order;
- an accepted number is the same value written canonically, and parsing the canonical request gives it back;
- a client order id is taken iff it is 1 to 36 of ``[.A-Z:/a-z0-9_-]``; none gives ``spot-<orderId>``;
- every ``order/cancelReplace`` parameter goes to the cancel (under the cancel's name), to the new order, to both
  (the signature's), or nowhere (its own modes).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared import errors
from shared.domain import OrderType, TimeInForce
from shared.errors import ApiError
from shared.messages import NewOrderRequest
from shared.order_request import (
    CANCEL_REPLACE_CANCEL,
    CANCEL_REPLACE_OWN,
    CLIENT_ID,
    NEW_ORDER_PARAMS,
    parse_new_order,
    split_cancel_replace,
)

SYMBOLS = {"BTCUSDT"}
VALID = {"timeInForce": "GTC", "price": "50000.5", "quantity": "0.01", "quoteOrderQty": "100"}
TYPES = (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET)


def parse(params: dict[str, str], order_id: int = 1000) -> NewOrderRequest:
    return parse_new_order(params, user_id=7, order_id=order_id, ts=1, symbols=SYMBOLS)


def table(otype: OrderType, sent: set[str]) -> tuple[int, str] | TimeInForce:
    """The model: Binance's refusal (code, parameter), or the time in force the order takes."""
    if otype is OrderType.LIMIT:
        needs, refuses = ["timeInForce", "price", "quantity"], ["quoteOrderQty"]
    elif otype is OrderType.LIMIT_MAKER:
        needs, refuses = ["price", "quantity"], ["timeInForce", "quoteOrderQty"]
    else:
        if ("quantity" in sent) == ("quoteOrderQty" in sent):
            return errors.MANDATORY_PARAM, "quoteOrderQty"  # one of the two, never both
        needs, refuses = [], ["price", "timeInForce"]
    for name in needs:
        if name not in sent:
            return errors.MANDATORY_PARAM, name
    for name in refuses:
        if name in sent:
            return errors.PARAM_NOT_REQUIRED, name
    return {OrderType.LIMIT: TimeInForce.GTC, OrderType.LIMIT_MAKER: TimeInForce.GTC}.get(otype, TimeInForce.IOC)


@given(st.sampled_from(TYPES), st.sets(st.sampled_from(sorted(VALID))))
def test_each_order_type_takes_exactly_its_parameters(otype: OrderType, sent: set[str]) -> None:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": otype.value, **{name: VALID[name] for name in sent}}
    want = table(otype, sent)
    if isinstance(want, TimeInForce):
        r = parse(params)
        assert (r.type, r.tif) == (otype, want)
        assert (r.price is None) == (otype is OrderType.MARKET)
        return
    with pytest.raises(ApiError) as refused:
        parse(params)
    code, name = want
    assert refused.value.code == code and refused.value.http_status == 400
    assert f"'{name}'" in refused.value.msg


# a positive decimal Binance's grammar takes: up to 12 digits before the dot and 8 significant after it, written
# with any number of trailing zeros
amounts = st.tuples(st.integers(0, 10**12 - 1), st.integers(0, 10**8 - 1), st.integers(0, 6)).filter(
    lambda t: t[0] or t[1]
)


def written(whole: int, fraction: int, zeros: int) -> str:
    return f"{whole}.{fraction:08d}{'0' * zeros}" if fraction or zeros else str(whole)


@given(amounts, amounts)
@example((50000, 0, 2), (0, 1_000_000, 3))  # "50000.0000000000" and "0.01000000000"
def test_a_limit_orders_numbers_are_their_values_written_canonically(
    price: tuple[int, int, int], qty: tuple[int, int, int]
) -> None:
    raw_price, raw_qty = written(*price), written(*qty)
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC"}
    r = parse({**params, "price": raw_price, "quantity": raw_qty})
    assert r.price is not None and r.quantity is not None
    assert Decimal(r.price) == Decimal(raw_price) and Decimal(r.quantity) == Decimal(raw_qty)
    for canonical in (r.price, r.quantity):  # no exponent, no trailing zero, no trailing dot
        assert "E" not in canonical and not canonical.endswith(".")
        assert "." not in canonical or not canonical.endswith("0")
    again = parse({**params, "price": r.price, "quantity": r.quantity, "newClientOrderId": r.client_order_id})
    assert again == r


client_ids = st.one_of(
    st.from_regex(CLIENT_ID, fullmatch=True),
    st.text(alphabet="AZaz09._:/-+ =é'\"\n", max_size=40),
)


@given(client_ids)
@example("")  # none sent: the exchange names it
@example("x" * 36)
@example("x" * 37)
@example("a b")
@example("0\n")  # a trailing newline: ``$`` alone matched before it, so the order took it (found here)
def test_a_client_order_id_is_taken_iff_it_is_binances_grammar(client_id: str) -> None:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1", "newClientOrderId": client_id}
    legal = 1 <= len(client_id) <= 36 and all(c.isascii() and (c.isalnum() or c in "._:/-") for c in client_id)
    if not client_id:
        assert parse(params, order_id=42).client_order_id == "spot-42"
    elif legal:
        assert parse(params).client_order_id == client_id
    else:
        with pytest.raises(ApiError) as refused:
            parse(params)
        assert refused.value.code == errors.ILLEGAL_CHARS and "newClientOrderId" in refused.value.msg


SIGNED = ("timestamp", "recvWindow", "signature")
replace_params = st.dictionaries(
    st.sampled_from(sorted(set(CANCEL_REPLACE_CANCEL) | (NEW_ORDER_PARAMS - {"symbol"}) | CANCEL_REPLACE_OWN)),
    st.text(alphabet="ABC123", min_size=1, max_size=4),
)


@given(replace_params, st.sampled_from(["cancelOrderId", "cancelOrigClientOrderId"]))
def test_cancel_replace_gives_each_parameter_to_the_cancel_the_new_order_both_or_neither(
    params: dict[str, str], cancel_by: str
) -> None:
    params = {**params, "symbol": "BTCUSDT", cancel_by: "7", "cancelReplaceMode": "STOP_ON_FAILURE"}
    params.pop("orderRateLimitExceededMode", None)
    mode, on_limit, cancel, new = split_cancel_replace(params)
    assert (mode, on_limit) == ("STOP_ON_FAILURE", "DO_NOTHING")
    want_cancel = {"symbol": "BTCUSDT"} | {
        CANCEL_REPLACE_CANCEL[n]: v for n, v in params.items() if n in CANCEL_REPLACE_CANCEL
    }
    want_cancel |= {n: v for n, v in params.items() if n in SIGNED}
    own = set(CANCEL_REPLACE_CANCEL) | CANCEL_REPLACE_OWN
    assert cancel == want_cancel
    assert new == {n: v for n, v in params.items() if n not in own}
    assert new.get("symbol") == "BTCUSDT"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT", "cancelOrderId": "7"}, errors.MANDATORY_PARAM),  # no mode
        ({"symbol": "BTCUSDT", "cancelOrderId": "7", "cancelReplaceMode": "MAYBE"}, errors.ILLEGAL_CHARS),
        ({"symbol": "BTCUSDT", "cancelReplaceMode": "ALLOW_FAILURE"}, errors.MANDATORY_PARAM),  # nothing to cancel
        (
            {
                "symbol": "BTCUSDT",
                "cancelOrderId": "7",
                "cancelReplaceMode": "ALLOW_FAILURE",
                "orderRateLimitExceededMode": "SOMETIMES",
            },
            errors.ILLEGAL_CHARS,
        ),
        (
            {"symbol": "BTCUSDT", "cancelOrderId": "7", "cancelReplaceMode": "ALLOW_FAILURE", "junk": "1"},
            errors.UNREAD_PARAMETERS,
        ),
    ],
)
def test_cancel_replace_refuses_what_binance_refuses(params: dict[str, str], code: int) -> None:
    with pytest.raises(ApiError) as refused:
        split_cancel_replace(params)
    assert refused.value.code == code
