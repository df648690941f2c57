"""Binance JSON shapes built from our integer units: orders, fills, execution reports, trades, klines.

One place decides every field name and decimal rendering, so REST, the user stream and the market
streams agree with each other and with ``../shared/BINANCE-API-CONTRACT.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .candles import Candle
from .domain import Market, OrderType, Side, fmt_amount
from .messages import ListStatus, OrderUpdate, StopState, Trade

ZERO = "0.00000000"
UNPRICED = frozenset({OrderType.MARKET.value, OrderType.STOP_LOSS.value, OrderType.TAKE_PROFIT.value})
"""Types whose ``price`` shows 0: their ``price_ticks`` is the MARKET price-protection limit, not a price."""


def _stop_fields(m: Market, stop: StopState | None, created_ts: int) -> dict[str, Any]:
    """A conditional order's ``stopPrice``, ``isWorking``/``workingTime`` (-1 until triggered, then the
    trigger's time), and for a trailing one ``trailingDelta`` and (once it trails) ``trailingTime``; every
    other order's: no stop, working from its creation."""
    if stop is None:
        return {"stopPrice": ZERO, "isWorking": True, "workingTime": created_ts}
    fields: dict[str, Any] = {
        "stopPrice": m.fmt_price(stop.stop_ticks) if stop.stop_ticks else ZERO,
        "isWorking": stop.working_ts > 0,
        "workingTime": stop.working_ts if stop.working_ts != 0 else created_ts,
    }
    if stop.trailing_delta:
        fields["trailingDelta"] = stop.trailing_delta
        fields["trailingTime"] = stop.trailing_ts
    return fields


def order_json(
    m: Market,
    *,
    order_id: int,
    client_order_id: str,
    side: str,
    type: str,
    tif: str | None,
    price_ticks: int,
    qty_lots: int,
    quote_nu: int,
    status: str,
    executed_lots: int,
    cum_nu: int,
    created_ts: int,
    updated_ts: int,
    stp: str = "EXPIRE_MAKER",
    iceberg_lots: int = 0,
    prevented_lots: int = 0,
    stop: StopState | None = None,
    list_id: int = -1,
) -> dict[str, Any]:
    """``prevented_lots``: what DECREMENT / TRANSFER took from it, Binance's ``preventedQuantity`` (only then)."""
    working = _stop_fields(m, stop, created_ts)
    return {
        "symbol": m.symbol,
        "orderId": order_id,
        "orderListId": list_id,
        "clientOrderId": client_order_id,
        "price": m.fmt_price(0 if type in UNPRICED else price_ticks),  # a MARKET's is its protection limit
        "origQty": m.fmt_qty(qty_lots),
        "executedQty": m.fmt_qty(executed_lots),
        "cummulativeQuoteQty": m.fmt_notional(cum_nu),
        "status": status,
        "timeInForce": tif or "GTC",
        "type": type,
        "side": side,
        "stopPrice": working.pop("stopPrice"),
        "icebergQty": m.fmt_qty(iceberg_lots),
        "time": created_ts,
        "updateTime": updated_ts,
        "isWorking": working.pop("isWorking"),
        "workingTime": working.pop("workingTime"),
        "origQuoteOrderQty": m.fmt_notional(quote_nu),
        "selfTradePreventionMode": stp,
        **({"preventedQuantity": m.fmt_qty(prevented_lots)} if prevented_lots else {}),
        **working,  # a trailing order's trailingDelta and trailingTime
    }


def row_stop(row: Mapping[str, Any]) -> StopState | None:
    """A conditional order's stop from its orders row (0016's columns; its trailing time is not kept there:
    -1); None for any other order (``working_ts`` 0) or a row read without the columns."""
    working = row.get("working_ts", 0)
    if not working and not row.get("stop_ticks") and not row.get("trailing_delta"):
        return None
    return StopState(row.get("stop_ticks", 0), row.get("trailing_delta", 0), -1, working)


def order_from_row(m: Market, row: Mapping[str, Any]) -> dict[str, Any]:
    return order_json(
        m,
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        side=row["side"],
        type=row["type"],
        tif=row["tif"],
        price_ticks=row["price_ticks"],
        qty_lots=row["qty_lots"],
        quote_nu=row["quote_nu"],
        status=row["status"],
        executed_lots=row["executed_lots"],
        cum_nu=row["cum_nu"],
        created_ts=row["created_ts"],
        updated_ts=row["updated_ts"],
        stp=row["stp"],
        iceberg_lots=row["iceberg_lots"],
        prevented_lots=row["prevented_lots"],
        stop=row_stop(row),
        list_id=row.get("order_list_id", -1),
    )


def order_from_update(m: Market, u: OrderUpdate, ts: int, list_id: int = -1) -> dict[str, Any]:
    return order_json(
        m,
        order_id=u.order_id,
        client_order_id=u.client_order_id,
        side=u.side,
        type=u.type,
        tif=u.tif,
        price_ticks=u.price_ticks,
        qty_lots=u.qty_lots,
        quote_nu=u.quote_nu,
        status=u.status,
        executed_lots=u.executed_lots,
        cum_nu=u.cum_nu,
        created_ts=u.created_ts,
        updated_ts=ts,
        stp=u.stp,
        iceberg_lots=u.iceberg_lots,
        prevented_lots=u.prevented_lots,
        stop=u.stop,
        list_id=list_id,
    )


def fee_asset(m: Market, side: str) -> str:
    """Commission is taken from what a side receives: base for a BUY, quote for a SELL."""
    return m.base if side == Side.BUY else m.quote


def fill_json(m: Market, u: OrderUpdate) -> dict[str, Any]:
    return {
        "price": m.fmt_price(u.last_ticks),
        "qty": m.fmt_qty(u.last_lots),
        "commission": fmt_amount(u.fee),
        "commissionAsset": fee_asset(m, u.side),
        "tradeId": u.trade_id,
    }


def execution_report(m: Market, u: OrderUpdate, event_ts: int, list_id: int = -1) -> dict[str, Any]:
    """An update's ``executionReport``; ``list_id``: its order list's (``g``), -1 for an order of none."""
    is_trade = u.trade_id >= 0
    return {
        "e": "executionReport",
        "E": event_ts,
        "s": m.symbol,
        "c": u.client_order_id,
        "S": u.side,
        "o": u.type,
        "f": u.tif or "GTC",
        "q": m.fmt_qty(u.qty_lots),
        "p": m.fmt_price(0 if u.type in UNPRICED else u.price_ticks),  # a MARKET's is its protection limit
        "P": m.fmt_price(u.stop.stop_ticks) if u.stop is not None and u.stop.stop_ticks else ZERO,
        "F": m.fmt_qty(u.iceberg_lots),
        "g": list_id,
        "C": u.orig_client_order_id,
        "x": u.exec_type,
        "X": u.status,
        "r": u.reason or "NONE",
        "i": u.order_id,
        "l": m.fmt_qty(u.last_lots),
        "z": m.fmt_qty(u.executed_lots),
        "L": m.fmt_price(u.last_ticks),
        "n": fmt_amount(u.fee),
        "N": fee_asset(m, u.side) if is_trade else None,
        "T": event_ts,
        "t": u.trade_id,
        "I": u.order_id,
        "w": u.status in ("NEW", "PARTIALLY_FILLED") and (u.stop is None or u.stop.working_ts > 0),
        "m": u.is_maker,
        "M": False,
        "O": u.created_ts,
        "Z": m.fmt_notional(u.cum_nu),
        "Y": m.fmt_notional(u.last_lots * u.last_ticks),
        "Q": m.fmt_notional(u.quote_nu),
        "W": u.created_ts if u.stop is None else u.stop.working_ts,
        "V": u.stp,
        **(_prevention(m, u) if u.prevented_match_id >= 0 else {}),
        **(_trailing(u.stop) if u.stop is not None and u.stop.trailing_delta else {}),
    }


def _prevention(m: Market, u: OrderUpdate) -> dict[str, Any]:
    """A TRADE_PREVENTION report's fields: the match (``v``), the other order (``U``), and under DECREMENT /
    TRANSFER the order's prevented quantity in all (``A``) and in this match (``B``)."""
    out: dict[str, Any] = {"v": u.prevented_match_id, "U": u.counter_order_id}
    if u.last_prevented_lots:
        out["A"] = m.fmt_qty(u.prevented_lots)
        out["B"] = m.fmt_qty(u.last_prevented_lots)
    return out


def _trailing(stop: StopState) -> dict[str, Any]:
    """A trailing order's ``d`` (its delta) and, once it trails, ``D`` (since when), as Binance sends them."""
    return {"d": stop.trailing_delta, **({"D": stop.trailing_ts} if stop.trailing_ts >= 0 else {})}


def trade_json(m: Market, t: Trade) -> dict[str, Any]:
    """A row of GET /api/v3/trades."""
    return {
        "id": t.trade_id,
        "price": m.fmt_price(t.price_ticks),
        "qty": m.fmt_qty(t.qty_lots),
        "quoteQty": m.fmt_notional(t.price_ticks * t.qty_lots),
        "time": t.ts,
        "isBuyerMaker": t.buyer_is_maker,
        "isBestMatch": True,
    }


def trade_event(m: Market, t: Trade, event_ts: int) -> dict[str, Any]:
    """The ``<symbol>@trade`` stream event."""
    return {
        "e": "trade",
        "E": event_ts,
        "s": m.symbol,
        "t": t.trade_id,
        "p": m.fmt_price(t.price_ticks),
        "q": m.fmt_qty(t.qty_lots),
        "T": t.ts,
        "m": t.buyer_is_maker,
        "M": True,
    }


def kline_row(m: Market, c: Candle) -> list[object]:
    """A row of GET /api/v3/klines: open time, o, h, l, c, volume, close time, quote volume, trades, taker buy
    volume, taker buy quote volume, and Binance's unused ``"0"``."""
    return [
        c.open_time,
        m.fmt_price(c.open),
        m.fmt_price(c.high),
        m.fmt_price(c.low),
        m.fmt_price(c.close),
        m.fmt_qty(c.volume),
        c.close_time,
        m.fmt_notional(c.quote_volume),
        c.trades,
        m.fmt_qty(c.taker_buy_volume),
        m.fmt_notional(c.taker_buy_quote),
        "0",
    ]


def kline_event(m: Market, c: Candle, interval: str, event_ts: int, closed: bool = False) -> dict[str, Any]:
    """The ``<symbol>@kline_<interval>`` stream event; ``f``/``L`` are -1 for a candle with no trade."""
    return {
        "e": "kline",
        "E": event_ts,
        "s": m.symbol,
        "k": {
            "t": c.open_time,
            "T": c.close_time,
            "s": m.symbol,
            "i": interval,
            "f": c.first_trade,
            "L": c.last_trade,
            "o": m.fmt_price(c.open),
            "c": m.fmt_price(c.close),
            "h": m.fmt_price(c.high),
            "l": m.fmt_price(c.low),
            "v": m.fmt_qty(c.volume),
            "n": c.trades,
            "x": closed,
            "q": m.fmt_notional(c.quote_volume),
            "V": m.fmt_qty(c.taker_buy_volume),
            "Q": m.fmt_notional(c.taker_buy_quote),
            "B": "0",
        },
    }


def account_positions(rows: Iterable[Mapping[str, Any]], event_ts: int) -> dict[int, dict[str, Any]]:
    """``outboundAccountPosition`` per user from balance rows (user_id, asset, available, held)."""
    per_user: dict[int, list[dict[str, str]]] = {}
    for b in rows:
        per_user.setdefault(b["user_id"], []).append(
            {"a": b["asset"], "f": fmt_amount(b["available"]), "l": fmt_amount(b["held"])}
        )
    return {u: {"e": "outboundAccountPosition", "E": event_ts, "u": event_ts, "B": bs} for u, bs in per_user.items()}


def balance_update(asset: str, delta_atoms: int, event_ts: int) -> dict[str, Any]:
    """``balanceUpdate``: a deposit or a withdrawal moved the free balance of ``asset`` by ``d`` (signed), as
    Binance sends it; ``T`` is when the change cleared (here, when it committed)."""
    return {"e": "balanceUpdate", "E": event_ts, "a": asset, "d": fmt_amount(delta_atoms), "T": event_ts}


def list_status_event(symbol: str, st: ListStatus, event_ts: int) -> dict[str, Any]:
    """The user stream's ``listStatus`` of an order list whose state changed (Binance's field letters)."""
    return {
        "e": "listStatus",
        "E": event_ts,
        "s": symbol,
        "g": st.list_id,
        "c": st.contingency,
        "l": st.status_type,
        "L": st.order_status,
        "r": st.reject_reason,
        "C": st.list_client_id,
        "T": event_ts,
        "O": [{"s": symbol, "i": order_id, "c": client_id} for order_id, client_id in st.legs],
    }


def order_list_json(
    symbol: str,
    *,
    list_id: int,
    contingency: str,
    status_type: str,
    order_status: str,
    list_client_id: str,
    ts: int,
    legs: Iterable[tuple[int, str]],
) -> dict[str, Any]:
    """An order list as ``GET orderList`` (and every list answer, before its ``orderReports``) shows it."""
    return {
        "orderListId": list_id,
        "contingencyType": contingency,
        "listStatusType": status_type,
        "listOrderStatus": order_status,
        "listClientOrderId": list_client_id,
        "transactionTime": ts,
        "symbol": symbol,
        "orders": [{"symbol": symbol, "orderId": order_id, "clientOrderId": client_id} for order_id, client_id in legs],
    }


def order_report(order: dict[str, Any], ts: int) -> dict[str, Any]:
    """An order of a list's ``orderReports``: the order as REST shows it, in Binance's report fields."""
    keys = (
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "price",
        "origQty",
        "executedQty",
        "origQuoteOrderQty",
        "cummulativeQuoteQty",
        "status",
        "timeInForce",
        "type",
        "side",
        "stopPrice",
        "icebergQty",
        "workingTime",
        "selfTradePreventionMode",
        "trailingDelta",
    )
    report = {k: order[k] for k in keys if k in order and (k != "stopPrice" or order[k] != ZERO)}
    if report.get("icebergQty") == ZERO:
        del report["icebergQty"]
    return {**report, "transactTime": ts}
