"""Turn a client's order parameters (Binance names, strings) into the canonical ``order-requests`` message.

Shared by ingestion's ``Ingestor`` (``shared/ingestor.py``, run by the ingestion service, its Lambda handler
and the gateway with ingestion in-process) and the gateway's routes and OpenAPI description (``CLIENT_ID``,
``RESP_TYPES``). Pure: no I/O.

``parse_new_order`` checks what needs no market state beyond the symbol list: mandatory and extra
parameters, enum spellings, Binance's decimal grammar and precision (``shared.amounts``), client-id syntax.
``parse_cancel``, ``parse_amend`` (with ``amend_lots``) and ``split_cancel_replace`` do the same for the
requests that change an order. ``check_filters`` then applies the market's filters (``shared.filters``), so that
an order they refuse is refused in the REST answer; the order processor applies them again when it decides
(with the markets it reads, which a filter change reaches first), and balances are its alone.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from decimal import Decimal

from shared import errors, filters
from shared.amounts import parse_amount
from shared.domain import CancelRestriction, FilterFailure, Market, OrderType, Side, StpMode, TimeInForce
from shared.errors import ApiError
from shared.messages import AmendRequest, CancelAllRequest, CancelRequest, NewOrderRequest

CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
NEW_ORDER_PARAMS = frozenset(
    {
        "symbol",
        "side",
        "type",
        "timeInForce",
        "quantity",
        "quoteOrderQty",
        "price",
        "newClientOrderId",
        "newOrderRespType",
        "selfTradePreventionMode",
        "icebergQty",
        "stopPrice",
        "trailingDelta",
        "timestamp",
        "recvWindow",
        "signature",
    }
)
CANCEL_PARAMS = frozenset(
    {
        "symbol",
        "orderId",
        "origClientOrderId",
        "newClientOrderId",
        "cancelRestrictions",
        "timestamp",
        "recvWindow",
        "signature",
    }
)
CANCEL_ALL_PARAMS = frozenset({"symbol", "timestamp", "recvWindow", "signature"})
TEST_ORDER_PARAMS = NEW_ORDER_PARAMS | {"computeCommissionRates"}
AMEND_PARAMS = frozenset(
    {"symbol", "orderId", "origClientOrderId", "newClientOrderId", "newQty", "timestamp", "recvWindow", "signature"}
)
CANCEL_REPLACE_MODES = ("STOP_ON_FAILURE", "ALLOW_FAILURE")
RATE_LIMIT_MODES = ("DO_NOTHING", "CANCEL_ONLY")
# POST /api/v3/order/cancelReplace: its own parameters, and those it hands on to the cancel and the new order
CANCEL_REPLACE_OWN = frozenset({"cancelReplaceMode", "orderRateLimitExceededMode"})
CANCEL_REPLACE_CANCEL = {  # its name -> the cancel's name
    "cancelOrderId": "orderId",
    "cancelOrigClientOrderId": "origClientOrderId",
    "cancelNewClientOrderId": "newClientOrderId",
    "cancelRestrictions": "cancelRestrictions",
}
RESP_TYPES = ("ACK", "RESULT", "FULL")


def _enum(params: Mapping[str, str], name: str, enum: type, code: int, msg: str) -> str:
    raw = params.get(name)
    if not raw:
        raise errors.mandatory(name)
    try:
        return enum(raw)
    except ValueError:
        raise ApiError(code, msg) from None


def _decimal(params: Mapping[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = parse_amount(raw, name)  # Binance's grammar and precision, before anything converts it
    if value <= 0:
        raise ApiError(errors.ILLEGAL_CHARS, f"Parameter '{name}' must be greater than zero; got '{raw}'.")
    return value


def _canonical(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


TRAILING_DELTA_MAX_DIGITS = 9  # more than any TRAILING_DELTA filter's bound: the filter refuses it, not a BIGINT


def _trailing_delta(params: Mapping[str, str]) -> int | None:
    """``trailingDelta``: a whole number of BIPS (Binance's LONG); its filter bounds are the market's."""
    raw = params.get("trailingDelta")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not raw.isascii() or len(raw) > TRAILING_DELTA_MAX_DIGITS or int(raw) <= 0:
        raise ApiError(
            errors.ILLEGAL_CHARS,
            f"Illegal characters found in parameter 'trailingDelta'; legal range is 1 to "
            f"{10**TRAILING_DELTA_MAX_DIGITS - 1}.",
        )
    return int(raw)


def check_unread(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    extra = sorted(set(params) - allowed)
    if extra:
        raise ApiError(
            errors.UNREAD_PARAMETERS, f"Not all sent parameters were read; unexpected: {', '.join(extra)[:200]}."
        )


def symbol_of(params: Mapping[str, str], symbols: Collection[str]) -> str:
    symbol = params.get("symbol", "")
    if not symbol:
        raise errors.mandatory("symbol")
    if symbol not in symbols:
        raise errors.invalid_symbol()
    return symbol


def parse_new_order(
    params: Mapping[str, str], *, user_id: int, order_id: int, ts: int, symbols: Collection[str]
) -> NewOrderRequest:
    check_unread(params, NEW_ORDER_PARAMS)
    symbol = symbol_of(params, symbols)
    side = Side(_enum(params, "side", Side, errors.INVALID_SIDE, "Invalid side."))
    otype = OrderType(_enum(params, "type", OrderType, errors.INVALID_ORDER_TYPE, "Invalid orderType."))
    price, qty, quote = _decimal(params, "price"), _decimal(params, "quantity"), _decimal(params, "quoteOrderQty")
    tif: TimeInForce | None = None
    if params.get("timeInForce"):
        tif = TimeInForce(_enum(params, "timeInForce", TimeInForce, errors.INVALID_TIF, "Invalid timeInForce."))
    stop, delta = _decimal(params, "stopPrice"), _trailing_delta(params)
    if otype.is_stop:
        if stop is None and delta is None:
            raise ApiError(
                errors.MANDATORY_PARAM, "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"
            )
        if quote is not None:
            raise errors.not_required("quoteOrderQty")
        if qty is None:
            raise errors.mandatory("quantity")
    else:
        if stop is not None:
            raise errors.not_required("stopPrice")
        if delta is not None:
            raise errors.not_required("trailingDelta")
    if otype in (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT):  # a MARKET once triggered
        if price is not None:
            raise errors.not_required("price")
        if tif is not None:
            raise errors.not_required("timeInForce")
        tif = TimeInForce.IOC
    elif otype in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):  # a LIMIT once triggered
        if tif is None:
            raise errors.mandatory("timeInForce")
        if price is None:
            raise errors.mandatory("price")
    elif otype is OrderType.LIMIT:
        if tif is None:
            raise errors.mandatory("timeInForce")
        if price is None:
            raise errors.mandatory("price")
        if qty is None:
            raise errors.mandatory("quantity")
        if quote is not None:
            raise errors.not_required("quoteOrderQty")
    elif otype is OrderType.LIMIT_MAKER:
        if price is None:
            raise errors.mandatory("price")
        if qty is None:
            raise errors.mandatory("quantity")
        if tif is not None:
            raise errors.not_required("timeInForce")
        if quote is not None:
            raise errors.not_required("quoteOrderQty")
        tif = TimeInForce.GTC
    else:  # MARKET
        if (qty is None) == (quote is None):
            raise ApiError(
                errors.MANDATORY_PARAM,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
                if qty is None
                else "Parameters 'quantity' and 'quoteOrderQty' cannot be sent together.",
            )
        if price is not None:
            raise errors.not_required("price")
        if tif is not None:
            raise errors.not_required("timeInForce")
        tif = TimeInForce.IOC
    iceberg = _decimal(params, "icebergQty")
    if iceberg is not None and otype.triggered is OrderType.MARKET:  # MARKET, STOP_LOSS, TAKE_PROFIT
        raise errors.not_required("icebergQty")
    client_id = params.get("newClientOrderId") or f"spot-{order_id}"
    if not CLIENT_ID.fullmatch(client_id):  # ``$`` alone would take a trailing newline
        raise errors.illegal("newClientOrderId")
    if params.get("newOrderRespType", "FULL") not in RESP_TYPES:
        raise ApiError(errors.ILLEGAL_CHARS, "Invalid newOrderRespType; legal values are ACK, RESULT, FULL.")
    stp = StpMode(
        _enum(
            {"x": params.get("selfTradePreventionMode") or "EXPIRE_MAKER"},
            "x",
            StpMode,
            errors.ILLEGAL_CHARS,
            "Invalid selfTradePreventionMode.",
        )
    )
    return NewOrderRequest(
        order_id=order_id,
        user_id=user_id,
        symbol=symbol,
        side=side,
        type=otype,
        tif=tif,
        price=_canonical(price),
        quantity=_canonical(qty),
        quote_order_qty=_canonical(quote),
        client_order_id=client_id,
        stp=stp,
        ts=ts,
        stop_price=_canonical(stop),
        trailing_delta=delta,
        iceberg_qty=_canonical(iceberg),
    )


def check_filters(request: NewOrderRequest, market: Market) -> None:
    """Raise the ``ApiError`` Binance answers if ``market``'s filters refuse the request's numbers."""
    kind = request.type.triggered
    sized = filters.size(market, kind, request.price, request.quantity, request.quote_order_qty)
    tif = request.tif.value if request.tif else None
    filters.iceberg(market, kind, tif, sized.qty_lots, request.iceberg_qty)
    filters.stop(market, request.type, request.side, request.stop_price, request.trailing_delta)


def cancel_restriction(params: Mapping[str, str]) -> CancelRestriction | None:
    """``cancelRestrictions``: ONLY_NEW, ONLY_PARTIALLY_FILLED, or none."""
    raw = params.get("cancelRestrictions")
    if not raw:
        return None
    try:
        return CancelRestriction(raw)
    except ValueError:
        raise ApiError(
            errors.ILLEGAL_CHARS, "Invalid cancelRestrictions; legal values are ONLY_NEW, ONLY_PARTIALLY_FILLED."
        ) from None


def parse_cancel(
    params: Mapping[str, str], *, user_id: int, request_id: int, order_id: int, ts: int, symbols: Collection[str]
) -> CancelRequest:
    """``order_id`` is resolved by the caller (from ``orderId`` or ``origClientOrderId``)."""
    check_unread(params, CANCEL_PARAMS)
    symbol = symbol_of(params, symbols)
    restriction = cancel_restriction(params)
    return CancelRequest(
        request_id=request_id, user_id=user_id, symbol=symbol, order_id=order_id, ts=ts, restriction=restriction
    )


def parse_cancel_all(
    params: Mapping[str, str], *, user_id: int, request_id: int, ts: int, symbols: Collection[str]
) -> CancelAllRequest:
    """``DELETE /api/v3/openOrders``: every open order of the caller on one symbol (Binance requires it)."""
    check_unread(params, CANCEL_ALL_PARAMS)
    symbol = symbol_of(params, symbols)
    return CancelAllRequest(request_id=request_id, user_id=user_id, symbol=symbol, ts=ts)


def amend_lots(params: Mapping[str, str], market: Market) -> int:
    """``newQty`` in lots: Binance's decimal grammar, then the market's LOT_SIZE (a step of it, within its
    bounds), as a new order's quantity is checked."""
    check_unread(params, AMEND_PARAMS)
    qty = _decimal(params, "newQty")
    if qty is None:
        raise errors.mandatory("newQty")
    try:
        return market.qty_to_lots(qty)
    except FilterFailure as f:
        raise errors.from_filter(f) from None


def parse_amend(
    params: Mapping[str, str],
    *,
    user_id: int,
    request_id: int,
    order_id: int,
    qty_lots: int,
    client_order_id: str,
    ts: int,
    symbols: Collection[str],
) -> AmendRequest:
    """``order_id`` and the client id the order takes are resolved by the caller, ``qty_lots`` by
    ``amend_lots``."""
    symbol = symbol_of(params, symbols)
    if not CLIENT_ID.fullmatch(client_order_id):
        raise errors.illegal("newClientOrderId")
    return AmendRequest(
        request_id=request_id,
        user_id=user_id,
        symbol=symbol,
        order_id=order_id,
        qty_lots=qty_lots,
        client_order_id=client_order_id,
        ts=ts,
    )


def split_cancel_replace(params: Mapping[str, str]) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """``order/cancelReplace``'s parameters: its two modes, the cancel's and the new order's (each in the
    names its own endpoint reads, so each is checked as that endpoint checks it)."""
    mode = params.get("cancelReplaceMode")
    if not mode:
        raise errors.mandatory("cancelReplaceMode")
    if mode not in CANCEL_REPLACE_MODES:
        raise ApiError(
            errors.ILLEGAL_CHARS, "Invalid cancelReplaceMode; legal values are STOP_ON_FAILURE, ALLOW_FAILURE."
        )
    on_limit = params.get("orderRateLimitExceededMode") or "DO_NOTHING"
    if on_limit not in RATE_LIMIT_MODES:
        raise ApiError(
            errors.ILLEGAL_CHARS, "Invalid orderRateLimitExceededMode; legal values are DO_NOTHING, CANCEL_ONLY."
        )
    signed = ("timestamp", "recvWindow", "signature")
    cancel = {"symbol": params.get("symbol", "")}
    new: dict[str, str] = {}
    for name, value in params.items():
        if name in CANCEL_REPLACE_OWN:
            continue
        if name in CANCEL_REPLACE_CANCEL:
            cancel[CANCEL_REPLACE_CANCEL[name]] = value
        elif name in signed:
            cancel[name] = new[name] = value
        else:
            new[name] = value
    if "orderId" not in cancel and "origClientOrderId" not in cancel:
        raise ApiError(
            errors.MANDATORY_PARAM,
            "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both were empty/null!",
        )
    check_unread(new, NEW_ORDER_PARAMS)
    return mode, on_limit, cancel, new
