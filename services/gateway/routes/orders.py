"""Signed trading and account endpoints: order (POST, GET, DELETE), openOrders (GET, DELETE), allOrders,
account, myTrades.

``POST /api/v3/order`` is ``submit_order`` and ``DELETE /api/v3/order`` is ``submit_cancel``: the gateway serves
both on its fast path (``fastpath.py`` hands them the raw ASGI request, past FastAPI's layers), and FastAPI's
routes ``new_order`` and ``cancel_order`` (the OpenAPI description, and an app served without the fast path)
call the same functions, so the two cannot answer differently.
New orders and cancels go to ingestion (the seed's Lambda; over HTTP or in-process, see ``ingest.py``);
the reply waits, up to ``order_result_timeout_ms``, for the settled outcome so that ``newOrderRespType``
RESULT and FULL answer with the order's state and fills as Binance does. Reads come from Postgres and
are always filtered by the caller's user id: nobody sees or cancels another user's orders.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from shared import errors
from shared.binance import fee_asset, order_from_row
from shared.domain import BPS, Market, OrderStatus, fmt_amount
from shared.errors import ApiError
from shared.order_request import CLIENT_ID

from ..deps import (
    ApiKeyHeader,
    BodyReader,
    Caller,
    DataCaller,
    Gateway,
    GatewayDep,
    authenticate,
    client_ip,
    int_param,
    read_body,
    signed,
)
from ..ingest import Budget
from . import spec

router = APIRouter(prefix="/api/v3", responses=spec.ERRORS)

ORDER_COLUMNS = (
    "order_id, user_id, symbol, client_order_id, side, type, tif, price_ticks, qty_lots, quote_nu, "
    "status, executed_lots, cum_nu, stp, created_ts, updated_ts, stop_ticks, trailing_delta, working_ts, "
    "iceberg_lots, prevented_lots, order_list_id"
)
OPEN = [OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value, OrderStatus.PENDING_NEW.value]
CANCEL_WEIGHT = 1


def _raise_refusal(outcome: dict[str, Any]) -> None:
    err = outcome.get("error")
    if err:
        raise ApiError(int(err["code"]), str(err["msg"]), 400)


@router.post(
    "/order",
    **spec.returns(spec.OrderAck | spec.OrderResult),
    openapi_extra=spec.in_form(*spec.NEW_ORDER, example=spec.NEW_ORDER_EXAMPLE),
)
async def new_order(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> dict[str, Any]:
    """``submit_order`` through FastAPI. The gateway's server answers this path on its fast path instead
    (``fastpath.OrderFastPath``), with the same function."""

    def body() -> Awaitable[bytes]:
        return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    return await submit_order(gw, header, request.url.query.encode(), body, ip)


async def submit_order(gw: Gateway, header: str | None, query: bytes, body: BodyReader, ip: str) -> dict[str, Any]:
    """``POST /api/v3/order``: a SIGNED call with the TRADE permission, weight 1 and one order of the key's
    order count, all spent with the order itself (``place_order``); the answer Binance gives."""
    caller = await authenticate(gw, header, query, body, "TRADE", 1, 1, ip)
    return await place_order(gw, caller)


async def place_order(gw: Gateway, caller: Caller, budget: Budget | None = None) -> dict[str, Any]:
    """A new order from an authenticated caller who has not spent ``budget`` yet (by default the weight and
    order count of ``POST /order``); the answer Binance gives."""
    budget = budget or Budget(gw.limiter, caller.budget)
    try:
        gw.market(caller.params.get("symbol"))
    except ApiError:
        await budget.spend()
        raise
    ack = await gw.ingest.new_order(caller.user_id, caller.params, budget)
    resp_type = caller.params.get("newOrderRespType") or "FULL"
    if resp_type == "ACK":
        return ack
    outcome = await gw.outcomes.wait(ack["orderId"], gw.settings.order_result_timeout_ms / 1000)
    if outcome is None:
        return ack  # still in flight: the user stream and GET /order will tell
    _raise_refusal(outcome)
    order: dict[str, Any] = outcome["order"]
    if resp_type == "RESULT":
        order.pop("fills", None)
    return order


async def outcome_of(gw: Gateway, ack: dict[str, Any]) -> dict[str, Any]:
    """Settlement's outcome of a cancel, a mass cancel or an amend handed on as ``ack``; Binance's -1007 when it
    does not come within ``order_result_timeout_ms``, and the matcher's refusal as its ``ApiError``."""
    outcome = await gw.outcomes.wait(ack["requestId"], gw.settings.order_result_timeout_ms / 1000)
    if outcome is None:
        raise ApiError(
            errors.TIMEOUT,
            "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
            503,
        )
    _raise_refusal(outcome)
    return outcome


async def find(gw: Gateway, caller: Caller, m: Market) -> dict[str, Any] | None:
    order_id = int_param(caller.params, "orderId")
    client_id = caller.params.get("origClientOrderId")
    if order_id is None and not client_id:
        raise ApiError(
            errors.MANDATORY_PARAM, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    if order_id is not None:
        row = await gw.db.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1 AND user_id = $2 "  # noqa: S608
            "AND symbol = $3",
            order_id,
            caller.user_id,
            m.symbol,
        )
    elif CLIENT_ID.fullmatch(client_id or ""):
        row = await gw.db.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND client_order_id = $2 "  # noqa: S608
            "AND symbol = $3",
            caller.user_id,
            client_id,
            m.symbol,
        )
    else:
        row = None  # no order has such a client id, and Postgres would refuse a NUL in it with a 500
    return None if row is None else dict(row)


@router.get(
    "/order",
    **spec.returns(spec.Order),
    openapi_extra=spec.in_query(spec.SYMBOL, spec.ORDER_ID, spec.ORIG_CLIENT_ORDER_ID, *spec.SIGNED),
)
async def get_order(gw: GatewayDep, caller: DataCaller) -> dict[str, Any]:
    return await status_as(gw, caller)


async def status_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """One of the caller's orders, by ``orderId`` or ``origClientOrderId`` (REST and the WebSocket API)."""
    m = gw.market(caller.params.get("symbol"))
    row = await find(gw, caller, m)
    if row is None:
        raise ApiError(errors.NO_SUCH_ORDER, "Order does not exist.", 400)
    return order_from_row(m, row)


@router.delete("/order", **spec.returns(spec.CanceledOrder), openapi_extra=spec.in_query_or_form(*spec.CANCEL_ORDER))
async def cancel_order(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> dict[str, Any]:
    """``submit_cancel`` through FastAPI. The gateway's server answers this path on its fast path instead
    (``fastpath.OrderFastPath``), with the same function."""

    def body() -> Awaitable[bytes]:
        return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    return await submit_cancel(gw, header, request.url.query.encode(), body, ip)


async def submit_cancel(gw: Gateway, header: str | None, query: bytes, body: BodyReader, ip: str) -> dict[str, Any]:
    """``DELETE /api/v3/order``: a SIGNED call with the TRADE permission and weight 1, spent before the
    order is looked up; the canceled order as Binance answers it."""
    caller = await authenticate(gw, header, query, body, "TRADE", CANCEL_WEIGHT, 0, ip)
    await gw.limiter.spend(caller.budget, CANCEL_WEIGHT, 0)
    return await cancel_as(gw, caller)


async def cancel_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """A cancel from an authenticated caller who has spent its weight; the canceled order as Binance answers
    it, or its ``ApiError`` (``order/cancelReplace`` runs its cancel half with it)."""
    m = gw.market(caller.params.get("symbol"))
    new_client_id = caller.params.get("newClientOrderId")
    if new_client_id and not CLIENT_ID.fullmatch(new_client_id):  # echoed back as clientOrderId below
        raise errors.illegal("newClientOrderId")
    row = await find(gw, caller, m)
    if row is None or not OrderStatus(row["status"]).is_open:
        raise ApiError(errors.CANCEL_REJECTED, "Unknown order sent.", 400)
    ack = await gw.ingest.cancel(caller.user_id, row["order_id"], caller.params)
    outcome = await outcome_of(gw, ack)
    order: dict[str, Any] = outcome["order"]
    order.pop("fills", None)
    order["origClientOrderId"] = order["clientOrderId"]
    order["clientOrderId"] = new_client_id or order["clientOrderId"]
    return order


@router.get(
    "/openOrders", **spec.returns(list[spec.Order]), openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, *spec.SIGNED)
)
async def open_orders(gw: GatewayDep, caller: DataCaller) -> list[dict[str, Any]]:
    symbol = caller.params.get("symbol")
    if symbol:
        gw.market(symbol)
    rows = await gw.db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND status = ANY($2::text[]) "  # noqa: S608
        "AND ($3::text IS NULL OR symbol = $3) ORDER BY order_id",
        caller.user_id,
        OPEN,
        symbol or None,
    )
    return [order_from_row(gw.markets[r["symbol"]], r) for r in rows]


@router.delete(
    "/openOrders",
    **spec.returns(list[spec.CanceledOrder]),
    openapi_extra=spec.in_query_or_form(spec.SYMBOL, *spec.SIGNED),
)
async def cancel_open_orders(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> list[dict[str, Any]]:
    """``DELETE /api/v3/openOrders``: every open order of the caller on one symbol, canceled by the matcher in
    one step of the symbol's sequence (``CancelAllOrders``), answered as Binance does: the canceled orders,
    each as ``DELETE /order`` answers it; -2011 when none is open. Weight 1, TRADE."""

    def body() -> Awaitable[bytes]:
        return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

    ip = client_ip(request, gw.settings.trusted_proxy_hops)
    caller = await authenticate(gw, header, request.url.query.encode(), body, "TRADE", CANCEL_WEIGHT, 0, ip)
    await gw.limiter.spend(caller.budget, CANCEL_WEIGHT, 0)
    return await cancel_all_as(gw, caller)


async def cancel_all_as(gw: Gateway, caller: Caller) -> list[dict[str, Any]]:
    """A mass cancel from an authenticated caller who has spent its weight (REST's ``DELETE openOrders``, the
    WebSocket API's ``openOrders.cancelAll``): the canceled orders, or its ``ApiError``."""
    m = gw.market(caller.params.get("symbol"))
    any_open = await gw.db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE user_id = $1 AND symbol = $2 AND status = ANY($3::text[]))",
        caller.user_id,
        m.symbol,
        OPEN,
    )
    if not any_open:
        raise ApiError(errors.CANCEL_REJECTED, "Unknown order sent.", 400)
    ack = await gw.ingest.cancel_all(caller.user_id, caller.params)
    outcome = await outcome_of(gw, ack)
    canceled: list[dict[str, Any]] = outcome.get("orders") or [outcome["order"]]
    for order in canceled:
        order.pop("fills", None)
        order["origClientOrderId"] = order["clientOrderId"]
    return canceled


@router.get(
    "/allOrders",
    **spec.returns(list[spec.Order]),
    openapi_extra=spec.in_query(
        spec.SYMBOL,
        spec.FROM_ORDER_ID,
        spec.START_TIME,
        spec.END_TIME,
        spec.limit(500, 1000),
        *spec.SIGNED,
    ),
)
async def all_orders(gw: GatewayDep, caller: DataCaller) -> list[dict[str, Any]]:
    m = gw.market(caller.params.get("symbol"))
    limit = int_param(caller.params, "limit", 500, 1, 1000)
    from_id = int_param(caller.params, "orderId", 0)
    start, end = int_param(caller.params, "startTime", 0), int_param(caller.params, "endTime", 2**62)
    rows = await gw.db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND symbol = $2 AND order_id >= $3 "  # noqa: S608
        "AND created_ts BETWEEN $4 AND $5 AND status <> 'REJECTED' ORDER BY order_id LIMIT $6",
        caller.user_id,
        m.symbol,
        from_id,
        start,
        end,
        limit,
    )
    return [order_from_row(m, r) for r in rows]


TIER_RATES = (
    "SELECT f.maker_fee_bps, f.taker_fee_bps FROM users u JOIN fee_tiers f ON f.tier = u.fee_tier WHERE u.user_id = $1"
)
ZERO_RATE = "0.00000000"
COMMISSION_WEIGHT = 20  # Binance's for account/commission
CommissionCaller = Annotated[Caller, Depends(signed("USER_DATA", weight=COMMISSION_WEIGHT))]


def rate(bps: int) -> str:
    """A rate in basis points as Binance prints one: 10 -> "0.00100000"."""
    return f"{bps // BPS}.{bps % BPS * 10**4:08d}"


async def tier_rates(gw: Gateway, user_id: int) -> tuple[int, int] | None:
    """The (maker, taker) bps of the user's fee tier (``spot admin user set-tier``), None for the markets'
    own. The processor stamps the same on each order it accepts, which is what the matcher charges."""
    row = await gw.db.fetchrow(TIER_RATES, user_id)
    return None if row is None else (row["maker_fee_bps"], row["taker_fee_bps"])


async def commission_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """``account/commission`` (REST and the WebSocket API's ``account.commission``): the caller's rates on a
    symbol, their tier's or the market's; no tax, no discount asset in use."""
    m = gw.market(caller.params.get("symbol"))
    maker, taker = await tier_rates(gw, caller.user_id) or (m.maker_fee_bps, m.taker_fee_bps)
    zero = {"maker": ZERO_RATE, "taker": ZERO_RATE, "buyer": ZERO_RATE, "seller": ZERO_RATE}
    return {
        "symbol": m.symbol,
        "standardCommission": {"maker": rate(maker), "taker": rate(taker), "buyer": ZERO_RATE, "seller": ZERO_RATE},
        "taxCommission": zero,
        "discount": {
            "enabledForAccount": False,
            "enabledForSymbol": False,
            "discountAsset": "BNB",
            "discount": ZERO_RATE,
        },
    }


@router.get(
    "/account/commission",
    **spec.returns(spec.AccountCommission),
    openapi_extra=spec.in_query(spec.SYMBOL, *spec.SIGNED),
)
async def account_commission(gw: GatewayDep, caller: CommissionCaller) -> dict[str, Any]:
    return await commission_as(gw, caller)


@router.get("/account", **spec.returns(spec.Account), openapi_extra=spec.in_query(*spec.SIGNED))
async def account(gw: GatewayDep, caller: DataCaller) -> dict[str, Any]:
    """``commissionRates``: the caller's fee tier's, or else the markets' (their highest where they differ:
    ``account/commission`` says each symbol's)."""
    rows = await gw.db.fetch(
        "SELECT asset, available, held, updated_at FROM balances WHERE user_id = $1 ORDER BY asset", caller.user_id
    )
    markets = gw.markets.values()
    maker, taker = await tier_rates(gw, caller.user_id) or (
        max((m.maker_fee_bps for m in markets), default=0),
        max((m.taker_fee_bps for m in markets), default=0),
    )
    return {
        "makerCommission": maker,
        "takerCommission": taker,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": rate(maker), "taker": rate(taker), "buyer": ZERO_RATE, "seller": ZERO_RATE},
        "canTrade": True,
        "canWithdraw": True,  # with a key that has WITHDRAW (routes/capital.py)
        "canDeposit": True,  # credited by the operator, once per reference (spot admin deposit)
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": max((r["updated_at"] for r in rows), default=0),
        "accountType": "SPOT",
        "balances": [
            {"asset": r["asset"], "free": fmt_amount(r["available"]), "locked": fmt_amount(r["held"])} for r in rows
        ],
        "permissions": ["SPOT"],
        "uid": caller.user_id,
    }


@router.get(
    "/myTrades",
    **spec.returns(list[spec.MyTrade]),
    openapi_extra=spec.in_query(
        spec.SYMBOL,
        spec.ORDER_ID,
        spec.START_TIME,
        spec.END_TIME,
        spec.FROM_TRADE_ID,
        spec.limit(500, 1000),
        *spec.SIGNED,
    ),
)
async def my_trades(gw: GatewayDep, caller: DataCaller) -> list[dict[str, Any]]:
    m = gw.market(caller.params.get("symbol"))
    limit = int_param(caller.params, "limit", 500, 1, 1000)
    from_id = int_param(caller.params, "fromId", 0)
    start, end = int_param(caller.params, "startTime", 0), int_param(caller.params, "endTime", 2**62)
    order_id = int_param(caller.params, "orderId")
    rows = await gw.db.fetch(
        "SELECT * FROM trades WHERE symbol = $1 AND (buyer_user_id = $2 OR seller_user_id = $2) AND trade_id >= $3 "
        "AND ts BETWEEN $4 AND $5 AND ($6::bigint IS NULL OR buyer_order_id = $6 OR seller_order_id = $6) "
        "ORDER BY trade_id LIMIT $7",
        m.symbol,
        caller.user_id,
        from_id,
        start,
        end,
        order_id,
        limit,
    )
    out = []
    for t in rows:
        # a self-trade is reported from the taker's side only in this list
        is_buyer = t["buyer_user_id"] == caller.user_id and (
            t["seller_user_id"] != caller.user_id or not t["buyer_is_maker"]
        )
        if order_id is not None:
            is_buyer = t["buyer_order_id"] == order_id
        is_maker = t["buyer_is_maker"] == is_buyer
        fee = t["buyer_fee"] if is_buyer else t["seller_fee"]
        out.append(
            {
                "symbol": m.symbol,
                "id": t["trade_id"],
                "orderId": t["buyer_order_id"] if is_buyer else t["seller_order_id"],
                "orderListId": -1,
                "price": m.fmt_price(t["price_ticks"]),
                "qty": m.fmt_qty(t["qty_lots"]),
                "quoteQty": m.fmt_notional(t["price_ticks"] * t["qty_lots"]),
                "commission": fmt_amount(fee),
                "commissionAsset": fee_asset(m, "BUY" if is_buyer else "SELL"),
                "time": t["ts"],
                "isBuyer": is_buyer,
                "isMaker": is_maker,
                "isBestMatch": True,
            }
        )
    return out
