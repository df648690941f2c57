"""Signed endpoints that test or change an order: ``order/test``, ``order/cancelReplace``,
``order/amend/keepPriority``; and ``myPreventedMatches``, the matches self-trade prevention stopped.

None of them has order logic of its own. ``order/test`` runs a new order's checks (``check_new_order``: the
parameters, then the market's filters, as ``POST /order`` does before it hands the order on) and places
nothing. ``order/cancelReplace`` is ``orders.cancel_as`` then ``orders.place_order``, with Binance's answers for
each outcome of the two halves. ``order/amend/keepPriority`` goes the way of a cancel (ingestion, the matcher,
settlement) as its own request kind: the matcher shrinks the resting order in place, so it keeps its place in
its queue, and settlement releases what the cut lots held, once, from the REPLACED update.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Mapping
from typing import Any

from fastapi import APIRouter, Request

from shared import errors
from shared.domain import Market, OrderStatus
from shared.errors import ApiError, ApiErrorWithData
from shared.lifecycle import now_ms
from shared.order_request import (
    CLIENT_ID,
    TEST_ORDER_PARAMS,
    amend_lots,
    check_filters,
    check_unread,
    parse_new_order,
    split_cancel_replace,
)

from ..deps import (
    ApiKeyHeader,
    BodyReader,
    Caller,
    Gateway,
    GatewayDep,
    authenticate,
    client_ip,
    int_param,
    read_body,
)
from ..ingest import Budget
from . import spec
from .orders import cancel_as, find, outcome_of, place_order, rate, tier_rates

router = APIRouter(prefix="/api/v3", responses=spec.ERRORS)

TEST_WEIGHT, TEST_RATES_WEIGHT = 1, 20  # Binance's: computeCommissionRates costs 20
AMEND_WEIGHT = 4
CANCEL_REPLACE_WEIGHT = 1
PARTIAL_MSG = "Order cancel-replace partially failed."
FAILED_MSG = "Order cancel-replace failed."


def _reader(request: Request, gw: Gateway) -> BodyReader:
    def body() -> Awaitable[bytes]:
        return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

    return body


def _flag(params: Mapping[str, str], name: str) -> bool:
    raw = (params.get(name) or "false").lower()
    if raw not in ("true", "false"):
        raise ApiError(errors.ILLEGAL_CHARS, f"Invalid value for parameter '{name}'; legal values are true, false.")
    return raw == "true"


def check_new_order(gw: Gateway, user_id: int, params: Mapping[str, str]) -> Market:
    """Every check ``POST /order`` makes before it hands an order on (parameters, then filters); its market.
    Balances are the order processor's, as for a real order."""
    request = parse_new_order(params, user_id=user_id, order_id=0, ts=now_ms(), symbols=gw.markets)
    market = gw.markets[request.symbol]
    check_filters(request, market)
    return market


def commission_for_order(m: Market, tier: tuple[int, int] | None = None) -> dict[str, Any]:
    """``computeCommissionRates``: the caller's fee tier's maker and taker rates, or the market's (no tax, no
    discount asset in use)."""
    zero = "0.00000000"
    maker, taker = tier or (m.maker_fee_bps, m.taker_fee_bps)
    return {
        "standardCommissionForOrder": {"maker": rate(maker), "taker": rate(taker)},
        "taxCommissionForOrder": {"maker": zero, "taker": zero},
        "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB", "discount": zero},
    }


@router.post(
    "/order/test",
    **spec.returns(spec.TestOrderRates | spec.Empty),
    openapi_extra=spec.in_form(*spec.TEST_ORDER, example=spec.NEW_ORDER_EXAMPLE),
)
async def test_order(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> dict[str, Any]:
    """``POST /api/v3/order/test``: weight 1 (20 with ``computeCommissionRates``), no order count."""
    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    caller = await authenticate(gw, header, request.url.query.encode(), _reader(request, gw), "TRADE", 1, 0, ip)
    return await test_as(gw, caller)


async def test_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """``order/test`` for an authenticated caller who has spent nothing yet (REST and the WebSocket API)."""
    params = dict(caller.params)
    try:
        compute = _flag(params, "computeCommissionRates")
    except ApiError:
        await gw.limiter.spend(caller.budget, TEST_WEIGHT, 0)
        raise
    await gw.limiter.spend(caller.budget, TEST_RATES_WEIGHT if compute else TEST_WEIGHT, 0)
    check_unread(params, TEST_ORDER_PARAMS)
    params.pop("computeCommissionRates", None)
    market = check_new_order(gw, caller.user_id, params)
    return commission_for_order(market, await tier_rates(gw, caller.user_id)) if compute else {}


@router.post(
    "/order/cancelReplace",
    response_model=Any,
    responses={
        200: {"model": spec.CancelReplace, "description": "Both halves done."},
        "4XX": {"model": spec.CancelReplaceRefused, "description": "Refused, or -2022 (neither half done)."},
        409: {"model": spec.CancelReplaceRefused, "description": "-2021: one half done, the other failed."},
    },
    openapi_extra=spec.in_form(*spec.CANCEL_REPLACE),
)
async def cancel_replace(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> dict[str, Any]:
    """``POST /api/v3/order/cancelReplace``: weight 1, and one order of the order count (spent with the new
    order, as ``POST /order`` spends it)."""
    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    reader = _reader(request, gw)
    caller = await authenticate(gw, header, request.url.query.encode(), reader, "TRADE", CANCEL_REPLACE_WEIGHT, 1, ip)
    return await cancel_replace_as(gw, caller)


def _failure(exc: ApiError) -> dict[str, Any]:
    return {"code": exc.code, "msg": exc.msg}


async def cancel_replace_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """Cancel, then place, for an authenticated caller who has spent nothing yet.

    The whole request is checked first (its modes, both halves' parameters, the new order's filters): a
    request refused there cancels nothing. ``orderRateLimitExceededMode=DO_NOTHING`` (the default) refuses it
    too when the order count has no room; with CANCEL_ONLY the cancel goes ahead and the new order fails with
    the -1015. ``STOP_ON_FAILURE`` places nothing after a failed cancel; ``ALLOW_FAILURE`` places anyway.
    """
    try:
        mode, on_limit, cancel_params, new_params = split_cancel_replace(caller.params)
        check_new_order(gw, caller.user_id, new_params)
    except ApiError:
        await gw.limiter.spend(caller.budget, CANCEL_REPLACE_WEIGHT, 1)
        raise
    await gw.limiter.spend(caller.budget, CANCEL_REPLACE_WEIGHT, 0)
    if on_limit == "DO_NOTHING":
        await gw.limiter.check_orders(caller.budget)
    cancel_response: dict[str, Any]
    try:
        cancel_response = await cancel_as(gw, dataclasses.replace(caller, params=cancel_params))
        canceled = True
    except ApiError as exc:
        cancel_response, canceled = _failure(exc), False
    if not canceled and mode == "STOP_ON_FAILURE":
        data = {
            "cancelResult": "FAILURE",
            "newOrderResult": "NOT_ATTEMPTED",
            "cancelResponse": cancel_response,
            "newOrderResponse": None,
        }
        raise ApiErrorWithData(errors.CANCEL_REPLACE_FAILED, FAILED_MSG, 400, data)
    new_response: dict[str, Any]
    try:
        budget = Budget(gw.limiter, caller.budget, weight=0, orders=1)  # the weight was spent above
        new_response = await place_order(gw, dataclasses.replace(caller, params=new_params), budget)
        placed = True
    except ApiError as exc:
        new_response, placed = _failure(exc), False
    data = {
        "cancelResult": "SUCCESS" if canceled else "FAILURE",
        "newOrderResult": "SUCCESS" if placed else "FAILURE",
        "cancelResponse": cancel_response,
        "newOrderResponse": new_response,
    }
    if canceled and placed:
        return data
    if canceled or placed:
        raise ApiErrorWithData(errors.CANCEL_REPLACE_PARTIAL, PARTIAL_MSG, 409, data)
    raise ApiErrorWithData(errors.CANCEL_REPLACE_FAILED, FAILED_MSG, 400, data)


@router.put(
    "/order/amend/keepPriority",
    **spec.returns(spec.Amended),
    openapi_extra=spec.in_query_or_form(*spec.AMEND_ORDER),
)
async def amend_keep_priority(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> dict[str, Any]:
    """``PUT /api/v3/order/amend/keepPriority``: weight 4, no order count."""
    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    reader = _reader(request, gw)
    caller = await authenticate(gw, header, request.url.query.encode(), reader, "TRADE", AMEND_WEIGHT, 0, ip)
    await gw.limiter.spend(caller.budget, AMEND_WEIGHT, 0)
    return await amend_as(gw, caller)


async def amend_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """An amend from an authenticated caller who has spent its weight; Binance's answer.

    The new quantity is checked here against the order as Postgres last settled it, and again by the matcher
    in sequence (a fill may have come between). The client id the order takes (``newClientOrderId``, or a
    fresh random one as Binance makes) is claimed before the amend goes out, unless it is the order's own."""
    m = gw.market(caller.params.get("symbol"))
    qty_lots = amend_lots(caller.params, m)
    new_client_id = caller.params.get("newClientOrderId") or secrets.token_urlsafe(16)[:22]
    if not CLIENT_ID.fullmatch(new_client_id):
        raise errors.illegal("newClientOrderId")
    row = await find(gw, caller, m)
    if row is None or not OrderStatus(row["status"]).is_open:
        raise ApiError(errors.NO_SUCH_ORDER, "Order does not exist.", 400)
    if qty_lots >= row["qty_lots"]:
        raise ApiError(-2038, "Order amend (quantity increase) is not supported.", 400)
    claim = new_client_id != row["client_order_id"]
    if claim and await gw.db.fetchval(
        "SELECT 1 FROM orders WHERE user_id = $1 AND client_order_id = $2", caller.user_id, new_client_id
    ):
        raise ApiError(errors.NEW_ORDER_REJECTED, errors.DUPLICATE_ORDER_MSG, 400)
    ack = await gw.ingest.amend(caller.user_id, row["order_id"], qty_lots, new_client_id, claim, caller.params)
    outcome = await outcome_of(gw, ack)
    order: dict[str, Any] = outcome["order"]
    return {
        "transactTime": order["transactTime"],
        "executionId": outcome.get("executionId", 0),
        "amendedOrder": {
            "symbol": order["symbol"],
            "orderId": order["orderId"],
            "orderListId": -1,
            "origClientOrderId": order.get("origClientOrderId", row["client_order_id"]),
            "clientOrderId": order["clientOrderId"],
            "price": order["price"],
            "qty": order["origQty"],
            "executedQty": order["executedQty"],
            "preventedQty": order.get("preventedQuantity", m.fmt_qty(0)),
            "quoteOrderQty": order["origQuoteOrderQty"],
            "cumulativeQuoteQty": order["cummulativeQuoteQty"],
            "status": order["status"],
            "timeInForce": order["timeInForce"],
            "type": order["type"],
            "side": order["side"],
            "workingTime": order["workingTime"],
            "selfTradePreventionMode": row["stp"],
        },
    }


@router.get(
    "/myPreventedMatches",
    **spec.returns(list[spec.PreventedMatch]),
    openapi_extra=spec.in_query(*spec.PREVENTED_MATCHES),
)
async def my_prevented_matches(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> list[dict[str, Any]]:
    """``GET /api/v3/myPreventedMatches``: weight 2 by ``preventedMatchId``, 20 by ``orderId``."""
    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    reader = _reader(request, gw)
    caller = await authenticate(gw, header, request.url.query.encode(), reader, "USER_DATA", 2, 0, ip)
    return await prevented_as(gw, caller)


async def prevented_as(gw: Gateway, caller: Caller) -> list[dict[str, Any]]:
    """The caller's prevented matches of a symbol: one by ``preventedMatchId``, or those of ``orderId`` (as taker
    or maker) from ``fromPreventedMatchId`` on, at most ``limit``; Binance's combinations only."""
    params = caller.params
    by_id = int_param(params, "preventedMatchId")
    order_id = int_param(params, "orderId")
    await gw.limiter.spend(caller.budget, 2 if by_id is not None else 20, 0)
    m = gw.market(params.get("symbol"))
    if (by_id is None) == (order_id is None):
        raise ApiError(errors.BAD_COMBINATION, "Exactly one of 'preventedMatchId' and 'orderId' must be sent.")
    if by_id is not None and ("fromPreventedMatchId" in params or "limit" in params):
        raise ApiError(errors.BAD_COMBINATION, "'fromPreventedMatchId' and 'limit' go with 'orderId' only.")
    from_id = int_param(params, "fromPreventedMatchId", 0)
    limit = int_param(params, "limit", 500, 1, 1000)
    rows = await gw.db.fetch(
        "SELECT * FROM prevented_matches WHERE user_id = $1 AND symbol = $2 "
        "AND ($3::bigint IS NULL OR prevented_match_id = $3) "
        "AND ($4::bigint IS NULL OR taker_order_id = $4 OR maker_order_id = $4) "
        "AND prevented_match_id >= $5 ORDER BY prevented_match_id LIMIT $6",
        caller.user_id,
        m.symbol,
        by_id,
        order_id,
        from_id,
        limit,
    )
    return [
        {
            "symbol": m.symbol,
            "preventedMatchId": r["prevented_match_id"],
            "takerOrderId": r["taker_order_id"],
            "makerSymbol": m.symbol,
            "makerOrderId": r["maker_order_id"],
            "tradeGroupId": -1,
            "selfTradePreventionMode": r["mode"],
            "price": m.fmt_price(r["price_ticks"]),
            "makerPreventedQuantity": m.fmt_qty(r["maker_prevented_lots"]),
            "transactTime": r["ts"],
        }
        for r in rows
    ]
