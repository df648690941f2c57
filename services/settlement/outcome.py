"""What REST waits for: the settled outcome of one request, built from its matched event. Pure.

For a new order: the order as Binance returns it after the step, with the fills (``newOrderRespType=FULL``);
for a cancel: the canceled order; for a mass cancel (``CancelAllOrders``) of more than one order also
``orders``, every order it canceled, in the matcher's order (``DELETE /api/v3/openOrders`` answers them); for an
amend: the amended order (REPLACED) and the step's ``seq`` as its ``executionId``; for a refusal: Binance's error
code and message.
"""

from __future__ import annotations

from typing import Any

from shared.binance import fill_json, order_from_update
from shared.domain import ExecType, Market
from shared.messages import MatchedEvent


def outcome(m: Market, e: MatchedEvent) -> dict[str, Any]:
    if e.error is not None:
        return {
            "requestId": e.request_id,
            "userId": e.error.user_id,
            "error": {"code": e.error.code, "msg": e.error.msg},
        }
    mine = [u for u in e.updates if u.order_id == e.request_id]
    canceled = [] if mine else [u for u in e.updates if u.exec_type in (ExecType.CANCELED, ExecType.REPLACED)]
    mine = mine or canceled
    if not mine:
        return {"requestId": e.request_id, "userId": 0, "error": {"code": -1000, "msg": "No outcome."}}
    last = mine[-1]
    if last.exec_type is ExecType.REJECTED:
        return {
            "requestId": e.request_id,
            "userId": last.user_id,
            "error": {"code": last.reject_code, "msg": last.reason},
        }
    order = order_from_update(m, last, e.ts)
    order["transactTime"] = e.ts
    order["fills"] = [fill_json(m, u) for u in mine if u.exec_type is ExecType.TRADE]
    if last.exec_type is ExecType.REPLACED:
        order["origClientOrderId"] = last.orig_client_order_id
        return {"requestId": e.request_id, "userId": last.user_id, "order": order, "executionId": e.seq}
    done = {"requestId": e.request_id, "userId": last.user_id, "order": order}
    if len(canceled) > 1:
        done["orders"] = [{**order_from_update(m, u, e.ts), "transactTime": e.ts} for u in canceled]
    return done
