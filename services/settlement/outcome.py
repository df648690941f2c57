"""What REST waits for: the settled outcome of one request, built from its matched event. Pure.

For a new order: the order as Binance returns it after the step, with the fills (``newOrderRespType=FULL``);
for a cancel: the canceled order; for a mass cancel (``CancelAllOrders``) of more than one order also
``orders``, every order it canceled, in the matcher's order (``DELETE /api/v3/openOrders`` answers them); for an
amend: the amended order (REPLACED) and the step's ``seq`` as its ``executionId``; for a refusal: Binance's error
code and message.
"""

from __future__ import annotations

from typing import Any

from shared.binance import fill_json, order_from_update, order_list_json, order_report
from shared.domain import ExecType, Market
from shared.messages import LIST_REJECT, MatchedEvent, leg_lists, list_statuses


def list_outcome(m: Market, e: MatchedEvent) -> dict[str, Any]:
    """An order list's: the list (its status after the step, Binance's list shape) with the ``orderReports`` of
    every leg this step reported (each leg's last report), or, refused, the refusal's code and message. A cancel
    of a leg answers the canceled order too (``order``, as a single cancel does), beside the list."""
    st = list_statuses(e)[-1]
    legs = leg_lists(e)
    last = {u.order_id: u for u in e.updates if legs.get(u.order_id) == st.list_id}
    if st.order_status == LIST_REJECT:
        first = next(iter(last.values()), None)
        code, msg = (first.reject_code, first.reason) if first is not None else (-2010, st.reject_reason)
        return {"requestId": e.request_id, "userId": st.user_id, "error": {"code": code, "msg": msg}}
    listed = order_list_json(
        m.symbol,
        list_id=st.list_id,
        contingency=st.contingency,
        status_type=st.status_type,
        order_status=st.order_status,
        list_client_id=st.list_client_id,
        ts=e.ts,
        legs=st.legs,
    )
    listed["orderReports"] = [order_report(order_from_update(m, u, e.ts, st.list_id), e.ts) for u in last.values()]
    return {"requestId": e.request_id, "userId": st.user_id, "orderList": listed}


def outcome(m: Market, e: MatchedEvent) -> dict[str, Any]:
    statuses = list_statuses(e)
    if statuses and e.error is None and e.request_id == statuses[-1].list_id:
        return list_outcome(m, e)
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
    legs = leg_lists(e)
    order = order_from_update(m, last, e.ts, legs.get(last.order_id, -1))
    order["transactTime"] = e.ts
    order["fills"] = [fill_json(m, u) for u in mine if u.exec_type is ExecType.TRADE]
    if last.exec_type is ExecType.REPLACED:
        order["origClientOrderId"] = last.orig_client_order_id
        return {"requestId": e.request_id, "userId": last.user_id, "order": order, "executionId": e.seq}
    done = {"requestId": e.request_id, "userId": last.user_id, "order": order}
    if len(canceled) > 1:
        done["orders"] = [
            {**order_from_update(m, u, e.ts, legs.get(u.order_id, -1)), "transactTime": e.ts} for u in canceled
        ]
    if statuses:  # a leg's cancel took its list: the list as DELETE orderList answers it
        done["orderList"] = list_outcome(m, e).get("orderList")
    return done
