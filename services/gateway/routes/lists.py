"""Order lists (OCO, OTO, OTOCO; issue 24): place, query, cancel, as Binance's spot API.

``POST orderList/oco``, ``orderList/oto``, ``orderList/otoco`` and the older ``order/oco`` (its
price/stopPrice/stopLimitPrice shape, mapped onto an OCO's above and below legs by ``shared.order_request``)
hand one ``NewListRequest`` to ingestion: every leg is an order with its own id and client id, and counts
towards the key's order rate limits. The processor holds and accepts (or refuses) the legs as one, the matcher
places them in one step and applies the contingency in sequence (``services/matcher/book.py``: an OCO's first
leg to act cancels the other; an OTO's working order's full fill places its pending orders). The answer waits
for the settled outcome as a single order's does: the list (``orderListId``, ``contingencyType``,
``listStatusType``, ``listOrderStatus``, ``listClientOrderId``, ``transactionTime``, ``symbol``, ``orders``) with
its ``orderReports``.

``GET orderList`` (by ``orderListId`` or ``origClientOrderId``), ``allOrderList``, ``openOrderList`` read
``order_lists`` and the legs' rows, the caller's only. ``DELETE orderList`` cancels one open leg, which takes
the whole list in the matcher (as ``DELETE order`` of any leg does).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request

from shared import errors
from shared.binance import order_list_json, order_report
from shared.errors import ApiError
from shared.order_request import CLIENT_ID, LIST_KINDS, list_size

from ..deps import ApiKeyHeader, Caller, Gateway, GatewayDep, authenticate, client_ip, int_param, read_body, signed
from ..ingest import Budget
from . import spec
from .orders import CANCEL_WEIGHT, OPEN, ORDER_COLUMNS, _raise_refusal, outcome_of

router = APIRouter(prefix="/api/v3", responses=spec.ERRORS)

LIST_COLUMNS = (
    "order_list_id, user_id, symbol, contingency_type, list_client_order_id, list_status_type, list_order_status, "
    "transaction_time"
)
NO_LIST_MSG = "Order list does not exist."
GET_WEIGHT, OPEN_WEIGHT, ALL_WEIGHT = 4, 6, 20  # Binance's for orderList, openOrderList, allOrderList
ListCaller = Annotated[Caller, Depends(signed("USER_DATA", weight=GET_WEIGHT))]
OpenListsCaller = Annotated[Caller, Depends(signed("USER_DATA", weight=OPEN_WEIGHT))]
AllListsCaller = Annotated[Caller, Depends(signed("USER_DATA", weight=ALL_WEIGHT))]
CancelListCaller = Annotated[Caller, Depends(signed("TRADE", weight=CANCEL_WEIGHT))]


async def place_list_as(gw: Gateway, caller: Caller, kind: str) -> dict[str, Any]:
    """A new order list from an authenticated caller who has not spent its budget yet (weight 1, one order per
    leg); Binance's list answer (``newOrderRespType``: ACK, or RESULT/FULL with the legs' ``orderReports``)."""
    budget = Budget(gw.limiter, caller.budget, 1, list_size(kind))
    try:
        gw.market(caller.params.get("symbol"))
    except ApiError:
        await budget.spend()
        raise
    ack = await gw.ingest.new_list(caller.user_id, caller.params, kind, budget)
    if (caller.params.get("newOrderRespType") or "FULL") == "ACK":
        return ack
    outcome = await gw.outcomes.wait(ack["orderListId"], gw.settings.order_result_timeout_ms / 1000)
    if outcome is None:
        return ack  # still in flight: the user stream and GET orderList will tell
    _raise_refusal(outcome)
    listed: dict[str, Any] = outcome["orderList"]
    return listed


def _poster(kind: str) -> Any:
    async def place(request: Request, gw: GatewayDep, header: ApiKeyHeader) -> dict[str, Any]:
        def body() -> Awaitable[bytes]:
            return read_body(request.headers.get("content-length"), request.stream(), gw.settings.max_body_bytes)

        ip = client_ip(request, gw.settings.trusted_proxy_hops)
        caller = await authenticate(gw, header, request.url.query.encode(), body, "TRADE", 1, list_size(kind), ip)
        return await place_list_as(gw, caller, kind)

    place.__name__ = f"new_order_list_{kind.replace('/', '_')}"
    place.__doc__ = f"``POST /api/v3/{LIST_KINDS[kind]}``: a new {kind.split('/')[-1].upper()} order list."
    return place


for _kind, _path in LIST_KINDS.items():
    router.add_api_route(f"/{_path}", _poster(_kind), methods=["POST"])


async def _legs(gw: Gateway, user_id: int, list_ids: list[int]) -> dict[int, list[asyncpg.Record]]:
    """The legs' rows of the caller's lists, in leg order (their order ids rise in it)."""
    rows = await gw.db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders "  # noqa: S608
        "WHERE user_id = $1 AND order_list_id = ANY($2::bigint[]) ORDER BY order_id",
        user_id,
        list_ids,
    )
    out: dict[int, list[asyncpg.Record]] = {}
    for r in rows:
        out.setdefault(r["order_list_id"], []).append(r)
    return out


def _list_json(row: asyncpg.Record, legs: list[asyncpg.Record]) -> dict[str, Any]:
    return order_list_json(
        row["symbol"],
        list_id=row["order_list_id"],
        contingency=row["contingency_type"],
        status_type=row["list_status_type"],
        order_status=row["list_order_status"],
        list_client_id=row["list_client_order_id"],
        ts=row["transaction_time"],
        legs=[(leg["order_id"], leg["client_order_id"]) for leg in legs],
    )


async def find_list(gw: Gateway, caller: Caller, client_param: str) -> asyncpg.Record | None:
    """One of the caller's lists by ``orderListId`` or its list client id (``client_param``)."""
    list_id = int_param(caller.params, "orderListId")
    client_id = caller.params.get(client_param)
    if list_id is None and not client_id:
        raise ApiError(
            errors.MANDATORY_PARAM,
            f"Param '{client_param}' or 'orderListId' must be sent, but both were empty/null!",
        )
    if list_id is not None:
        return await gw.db.fetchrow(
            f"SELECT {LIST_COLUMNS} FROM order_lists WHERE order_list_id = $1 AND user_id = $2",  # noqa: S608
            list_id,
            caller.user_id,
        )
    if not CLIENT_ID.fullmatch(client_id or ""):
        return None
    return await gw.db.fetchrow(
        f"SELECT {LIST_COLUMNS} FROM order_lists WHERE user_id = $1 AND list_client_order_id = $2 "  # noqa: S608
        "ORDER BY order_list_id DESC LIMIT 1",
        caller.user_id,
        client_id,
    )


async def list_status_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """``GET orderList`` (REST and the WebSocket API's ``orderList.status``)."""
    row = await find_list(gw, caller, "origClientOrderId")
    if row is None:
        raise ApiError(errors.NO_SUCH_ORDER, NO_LIST_MSG, 400)
    legs = await _legs(gw, caller.user_id, [row["order_list_id"]])
    return _list_json(row, legs.get(row["order_list_id"], []))


async def lists_as(gw: Gateway, caller: Caller, open_only: bool) -> list[dict[str, Any]]:
    """``openOrderList`` (every open list of the caller) or ``allOrderList`` (``fromId``, or ``startTime`` /
    ``endTime``; ``limit`` 500, at most 1,000), oldest first."""
    if open_only:
        rows = await gw.db.fetch(
            f"SELECT {LIST_COLUMNS} FROM order_lists WHERE user_id = $1 AND list_order_status = 'EXECUTING' "  # noqa: S608
            "ORDER BY order_list_id",
            caller.user_id,
        )
    else:
        limit = int_param(caller.params, "limit", 500, 1, 1000)
        from_id = int_param(caller.params, "fromId", 0)
        start, end = int_param(caller.params, "startTime", 0), int_param(caller.params, "endTime", 2**62)
        rows = await gw.db.fetch(
            f"SELECT {LIST_COLUMNS} FROM order_lists WHERE user_id = $1 AND order_list_id >= $2 "  # noqa: S608
            "AND transaction_time BETWEEN $3 AND $4 AND list_order_status <> 'REJECT' ORDER BY order_list_id LIMIT $5",
            caller.user_id,
            from_id,
            start,
            end,
            limit,
        )
    legs = await _legs(gw, caller.user_id, [r["order_list_id"] for r in rows])
    return [_list_json(r, legs.get(r["order_list_id"], [])) for r in rows]


async def cancel_list_as(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """``DELETE orderList`` (REST and ``orderList.cancel``): one open leg's cancel, which cancels the whole list
    in the matcher; the list after it (ALL_DONE) with the canceled legs' ``orderReports``."""
    m = gw.market(caller.params.get("symbol"))
    new_client_id = caller.params.get("newClientOrderId")
    if new_client_id and not CLIENT_ID.fullmatch(new_client_id):
        raise errors.illegal("newClientOrderId")
    row = await find_list(gw, caller, "listClientOrderId")
    if row is None or row["symbol"] != m.symbol or row["list_order_status"] != "EXECUTING":
        raise ApiError(errors.CANCEL_REJECTED, "Unknown order sent.", 400)
    legs = (await _legs(gw, caller.user_id, [row["order_list_id"]])).get(row["order_list_id"], [])
    open_legs = [leg for leg in legs if leg["status"] in OPEN]
    if not open_legs:
        raise ApiError(errors.CANCEL_REJECTED, "Unknown order sent.", 400)
    params = {"symbol": m.symbol}
    ack = await gw.ingest.cancel(caller.user_id, open_legs[0]["order_id"], params)
    outcome = await outcome_of(gw, ack)
    listed: dict[str, Any] | None = outcome.get("orderList")
    if listed is None:  # the leg was alone by then (its list done): the list as it stands, the order canceled
        listed = _list_json(row, legs)
        listed["orderReports"] = [order_report(outcome["order"], ack["transactTime"])]
    if new_client_id:
        listed["listClientOrderId"] = new_client_id
    return listed


@router.get("/orderList", **spec.returns(dict[str, Any]))
async def get_order_list(gw: GatewayDep, caller: ListCaller) -> dict[str, Any]:
    return await list_status_as(gw, caller)


@router.get("/openOrderList", **spec.returns(list[dict[str, Any]]))
async def open_order_list(gw: GatewayDep, caller: OpenListsCaller) -> list[dict[str, Any]]:
    return await lists_as(gw, caller, open_only=True)


@router.get("/allOrderList", **spec.returns(list[dict[str, Any]]))
async def all_order_list(gw: GatewayDep, caller: AllListsCaller) -> list[dict[str, Any]]:
    return await lists_as(gw, caller, open_only=False)


@router.delete("/orderList", **spec.returns(dict[str, Any]))
async def cancel_order_list(gw: GatewayDep, caller: CancelListCaller) -> dict[str, Any]:
    return await cancel_list_as(gw, caller)
