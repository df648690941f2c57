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
from shared.messages import AmendRequest, CancelAllRequest, CancelRequest, NewListRequest, NewOrderRequest

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


# --- order lists (OCO, OTO, OTOCO) ------------------------------------------------------------------------
LIST_COMMON = frozenset(
    {
        "symbol",
        "listClientOrderId",
        "newOrderRespType",
        "selfTradePreventionMode",
        "timestamp",
        "recvWindow",
        "signature",
    }
)
LEG_FIELDS = ("Type", "ClientOrderId", "Price", "StopPrice", "TrailingDelta", "IcebergQty", "TimeInForce")
LEG_NAMES = {  # a leg's parameter suffix -> the new order's parameter
    "Type": "type",
    "ClientOrderId": "newClientOrderId",
    "Price": "price",
    "StopPrice": "stopPrice",
    "TrailingDelta": "trailingDelta",
    "IcebergQty": "icebergQty",
    "TimeInForce": "timeInForce",
    "Side": "side",
    "Quantity": "quantity",
}
IGNORED_LEG_FIELDS = ("StrategyId", "StrategyType")  # taken and not used, as ``newOrder``'s strategy fields
OCO_PARAMS = (
    LIST_COMMON
    | {"side", "quantity"}
    | {f"{leg}{f}" for leg in ("above", "below") for f in (*LEG_FIELDS, *IGNORED_LEG_FIELDS)}
)
OTO_PARAMS = LIST_COMMON | {
    f"{leg}{f}" for leg in ("working", "pending") for f in (*LEG_FIELDS, *IGNORED_LEG_FIELDS, "Side", "Quantity")
}
OTOCO_PARAMS = (
    LIST_COMMON
    | {f"working{f}" for f in (*LEG_FIELDS, *IGNORED_LEG_FIELDS, "Side", "Quantity")}
    | {"pendingSide", "pendingQuantity"}
    | {f"pending{leg}{f}" for leg in ("Above", "Below") for f in (*LEG_FIELDS, *IGNORED_LEG_FIELDS)}
)
OLD_OCO_PARAMS = LIST_COMMON | {
    "side",
    "quantity",
    "limitClientOrderId",
    "price",
    "limitIcebergQty",
    "stopClientOrderId",
    "stopPrice",
    "stopLimitPrice",
    "stopIcebergQty",
    "stopLimitTimeInForce",
    "trailingDelta",
    "limitStrategyId",
    "limitStrategyType",
    "stopStrategyId",
    "stopStrategyType",
}
OCO_UPPER = (OrderType.LIMIT_MAKER, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT)  # above a SELL, below a BUY
OCO_LOWER = (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)  # below a SELL, above a BUY
LIST_KINDS = {"oco": "orderList/oco", "oto": "orderList/oto", "otoco": "orderList/otoco", "order/oco": "order/oco"}
"""Each kind of order list and its REST path under /api/v3 (``order/oco``: the older OCO shape)."""
PRICES_WRONG_MSG = "The relationship of the prices for the orders is not correct."


def _leg(params: Mapping[str, str], prefix: str, common: Mapping[str, str]) -> dict[str, str]:
    """A leg's parameters (``prefix`` + Binance's suffix) as a new order's, with the list's ``common`` ones."""
    leg = dict(common)
    for suffix, name in LEG_NAMES.items():
        value = params.get(prefix + suffix)
        if value is not None and value != "":
            leg[name] = value
    if "type" not in leg:
        raise errors.mandatory(prefix + "Type")
    return leg


def _oco_pair(side: str, above: dict[str, str], below: dict[str, str]) -> list[dict[str, str]]:
    """An OCO's two legs, below then above (Binance's leg order), once their types fit: one a LIMIT_MAKER or
    TAKE_PROFIT(_LIMIT), the other a STOP_LOSS(_LIMIT), the first above a SELL's price, below a BUY's."""
    upper, lower = (above, below) if side == Side.SELL.value else (below, above)
    try:
        ok = OrderType(upper["type"]) in OCO_UPPER and OrderType(lower["type"]) in OCO_LOWER
    except ValueError:
        raise ApiError(errors.INVALID_ORDER_TYPE, "Invalid orderType.") from None
    if not ok:
        raise ApiError(errors.NEW_ORDER_REJECTED, "Unsupported order combination")
    return [below, above]


def _check_oco_prices(side: Side, legs: list[NewOrderRequest]) -> None:
    """The below leg's trigger must be under the above leg's (``PRICES_WRONG_MSG`` otherwise)."""

    def level(r: NewOrderRequest) -> Decimal | None:
        raw = r.stop_price if r.type.is_stop else r.price
        return Decimal(raw) if raw is not None else None

    below, above = level(legs[-2]), level(legs[-1])
    if below is not None and above is not None and below >= above:
        raise ApiError(errors.NEW_ORDER_REJECTED, PRICES_WRONG_MSG)


def list_legs(params: Mapping[str, str], kind: str) -> tuple[str, int, list[dict[str, str]]]:
    """An order list's request (``kind``: oco, oto, otoco, or the older ``order/oco``) as its contingency type,
    how many of its legs go on the book at once, and each leg's parameters as a new order's, in leg order."""
    common = {"symbol": params.get("symbol", "")}
    if params.get("selfTradePreventionMode"):
        common["selfTradePreventionMode"] = params["selfTradePreventionMode"]
    if kind == "oco":
        check_unread(params, OCO_PARAMS)
        side = _enum(params, "side", Side, errors.INVALID_SIDE, "Invalid side.")
        if not params.get("quantity"):
            raise errors.mandatory("quantity")
        pair = {**common, "side": side, "quantity": params["quantity"]}
        return "OCO", 2, _oco_pair(side, _leg(params, "above", pair), _leg(params, "below", pair))
    if kind == "order/oco":
        check_unread(params, OLD_OCO_PARAMS)
        side = _enum(params, "side", Side, errors.INVALID_SIDE, "Invalid side.")
        for name in ("quantity", "price"):
            if not params.get(name):
                raise errors.mandatory(name)
        if not params.get("stopPrice") and not params.get("trailingDelta"):
            raise ApiError(
                errors.MANDATORY_PARAM, "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"
            )
        pair = {**common, "side": side, "quantity": params["quantity"]}
        limit = {**pair, "type": OrderType.LIMIT_MAKER.value, "price": params["price"]}
        stop = {
            **pair,
            "type": (OrderType.STOP_LOSS_LIMIT if params.get("stopLimitPrice") else OrderType.STOP_LOSS).value,
        }
        for ours, theirs in (
            ("limitClientOrderId", "newClientOrderId"),
            ("limitIcebergQty", "icebergQty"),
        ):
            if params.get(ours):
                limit[theirs] = params[ours]
        for ours, theirs in (
            ("stopClientOrderId", "newClientOrderId"),
            ("stopPrice", "stopPrice"),
            ("stopLimitPrice", "price"),
            ("stopIcebergQty", "icebergQty"),
            ("stopLimitTimeInForce", "timeInForce"),
            ("trailingDelta", "trailingDelta"),
        ):
            if params.get(ours):
                stop[theirs] = params[ours]
        above, below = (limit, stop) if side == Side.SELL.value else (stop, limit)
        return "OCO", 2, _oco_pair(side, above, below)
    if kind == "oto":
        check_unread(params, OTO_PARAMS)
        return "OTO", 1, [_working(params, common), _leg(params, "pending", common)]
    if kind == "otoco":
        check_unread(params, OTOCO_PARAMS)
        side = _enum({"side": params.get("pendingSide", "")}, "side", Side, errors.INVALID_SIDE, "Invalid side.")
        if not params.get("pendingQuantity"):
            raise errors.mandatory("pendingQuantity")
        pair = {**common, "side": side, "quantity": params["pendingQuantity"]}
        above, below = _leg(params, "pendingAbove", pair), _leg(params, "pendingBelow", pair)
        return "OTOCO", 1, [_working(params, common), *_oco_pair(side, above, below)]
    raise ValueError(kind)


def _working(params: Mapping[str, str], common: Mapping[str, str]) -> dict[str, str]:
    """An OTO / OTOCO working order: a LIMIT or LIMIT_MAKER."""
    leg = _leg(params, "working", common)
    if leg["type"] not in (OrderType.LIMIT.value, OrderType.LIMIT_MAKER.value):
        raise ApiError(errors.NEW_ORDER_REJECTED, "Unsupported order combination")
    return leg


def parse_order_list(
    params: Mapping[str, str],
    kind: str,
    *,
    user_id: int,
    list_id: int,
    order_ids: list[int],
    ts: int,
    symbols: Collection[str],
) -> NewListRequest:
    """The canonical ``NewListRequest`` of an order list (``list_legs``), its legs parsed as new orders are (each
    with one of ``order_ids``); raises the client's ``ApiError``."""
    symbol_of(params, symbols)
    contingency, working, legs = list_legs(params, kind)
    if params.get("newOrderRespType", "FULL") not in RESP_TYPES:
        raise ApiError(errors.ILLEGAL_CHARS, "Invalid newOrderRespType; legal values are ACK, RESULT, FULL.")
    client_id = params.get("listClientOrderId") or f"spot-list-{list_id}"
    if not CLIENT_ID.fullmatch(client_id):
        raise errors.illegal("listClientOrderId")
    parsed = [
        parse_new_order(leg, user_id=user_id, order_id=oid, ts=ts, symbols=symbols)
        for leg, oid in zip(legs, order_ids, strict=False)
    ]
    if len({r.client_order_id for r in parsed}) < len(parsed):
        raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG)
    if contingency in ("OCO", "OTOCO"):
        _check_oco_prices(parsed[-1].side, parsed)
    return NewListRequest(
        list_id=list_id,
        user_id=user_id,
        symbol=parsed[0].symbol,
        contingency=contingency,
        list_client_id=client_id,
        working=working,
        legs=parsed,
        ts=ts,
    )


def list_size(kind: str) -> int:
    """How many orders a list of ``kind`` places (each counts towards the order rate limits and filters)."""
    return 2 if kind in ("oco", "order/oco", "oto") else 3
