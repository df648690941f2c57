"""The WebSocket API's trading and account methods: each runs the REST endpoint's own function, so an order
placed, tested, cancelled, replaced or amended over ``/ws-api/v3`` takes exactly REST's path and answers.

``METHODS`` maps Binance's method name to what REST requires of it: the key's permission and the request
weight spent before the function runs (0: the function spends its own, as ``place_order`` spends its weight
and order count with the order itself, and ``cancel_replace_as`` and ``test_as`` theirs). The weights are
REST's, and they are spent from the same per-key budgets, so REST and the WebSocket API share one limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .deps import Caller, Gateway
from .routes import changes, lists, orders

USER_DATA_WEIGHT = 5  # REST's DataCaller


@dataclass(frozen=True, slots=True)
class Method:
    permission: str
    weight: int
    run: Callable[[Gateway, Caller], Awaitable[Any]]


async def cancel(gw: Gateway, caller: Caller) -> dict[str, Any]:
    return await orders.cancel_as(gw, caller)


async def account_commission(gw: Gateway, caller: Caller) -> dict[str, Any]:
    """``account.commission``: REST's ``account/commission`` (the caller's tier's rates, or the market's)."""
    return await orders.commission_as(gw, caller)


def _list_placer(kind: str) -> Callable[[Gateway, Caller], Awaitable[Any]]:
    async def place(gw: Gateway, caller: Caller) -> dict[str, Any]:
        return await lists.place_list_as(gw, caller, kind)

    return place


async def open_lists(gw: Gateway, caller: Caller) -> list[dict[str, Any]]:
    return await lists.lists_as(gw, caller, open_only=True)


async def all_lists(gw: Gateway, caller: Caller) -> list[dict[str, Any]]:
    return await lists.lists_as(gw, caller, open_only=False)


METHODS: dict[str, Method] = {
    "order.place": Method("TRADE", 0, orders.place_order),
    "order.test": Method("TRADE", 0, changes.test_as),
    "order.status": Method("USER_DATA", USER_DATA_WEIGHT, orders.status_as),
    "order.cancel": Method("TRADE", orders.CANCEL_WEIGHT, cancel),
    "order.cancelReplace": Method("TRADE", 0, changes.cancel_replace_as),
    "order.amend.keepPriority": Method("TRADE", changes.AMEND_WEIGHT, changes.amend_as),
    "openOrders.status": Method("USER_DATA", USER_DATA_WEIGHT, orders.open_orders),
    "openOrders.cancelAll": Method("TRADE", orders.CANCEL_WEIGHT, orders.cancel_all_as),
    "account.status": Method("USER_DATA", USER_DATA_WEIGHT, orders.account),
    "account.commission": Method("USER_DATA", orders.COMMISSION_WEIGHT, account_commission),
    "myTrades": Method("USER_DATA", USER_DATA_WEIGHT, orders.my_trades),
    "myPreventedMatches": Method("USER_DATA", 0, changes.prevented_as),
    # order lists (``routes/lists.py``): a list spends its weight and one order per leg with the list itself
    "orderList.place.oco": Method("TRADE", 0, _list_placer("oco")),
    "orderList.place.oto": Method("TRADE", 0, _list_placer("oto")),
    "orderList.place.otoco": Method("TRADE", 0, _list_placer("otoco")),
    "orderList.place": Method("TRADE", 0, _list_placer("order/oco")),  # the older OCO shape
    "orderList.cancel": Method("TRADE", orders.CANCEL_WEIGHT, lists.cancel_list_as),
    "orderList.status": Method("USER_DATA", lists.GET_WEIGHT, lists.list_status_as),
    "openOrderLists.status": Method("USER_DATA", lists.OPEN_WEIGHT, open_lists),
    "allOrderLists": Method("USER_DATA", lists.ALL_WEIGHT, all_lists),
}
"""Binance's method name -> its permission, the weight spent before it runs, and REST's function."""

WS_ONLY_PARAMS = ("apiKey", "returnRateLimits")  # the WebSocket API's own: not the REST function's to read
