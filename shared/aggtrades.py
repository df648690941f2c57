"""Aggregate trades as Binance has them: consecutive fills of one taker order at one price are one trade.

Pure. A symbol's trades in id order; a trade joins the one before it when both have the same taker order, the
same price and the same time (one matched event: a taker's fills are all in the event that matched it, so an
aggregate never spans two events, nor two settlement transactions, nor two trade-execution messages). The
aggregate's id (``a``) is the id of its first trade: stable (the trades never change), increasing, and the same
whether the aggregate is read from Postgres (``GET aggTrades``) or pushed on ``@aggTrade``. Unlike Binance's,
the ids are not dense: an aggregate of three trades takes three ids, so ``fromId`` steps over the ids inside one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .domain import Market
from .messages import Trade


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade, as aggregation sees it."""

    trade_id: int
    price_ticks: int
    qty_lots: int
    taker_order_id: int
    buyer_is_maker: bool
    ts: int


@dataclass(frozen=True, slots=True)
class AggTrade:
    agg_id: int  # a: the first trade's id
    price_ticks: int
    qty_lots: int  # the fills' sum
    first_id: int  # f
    last_id: int  # l
    ts: int  # T
    buyer_is_maker: bool  # m


def taker_order(buyer_order_id: int, seller_order_id: int, buyer_is_maker: bool) -> int:
    """The order that took liquidity: the seller's when the buyer was the maker."""
    return seller_order_id if buyer_is_maker else buyer_order_id


def fill_of(t: Trade) -> Fill:
    return Fill(
        t.trade_id,
        t.price_ticks,
        t.qty_lots,
        taker_order(t.buyer_order_id, t.seller_order_id, t.buyer_is_maker),
        t.buyer_is_maker,
        t.ts,
    )


def joins(before: Fill, fill: Fill) -> bool:
    """Whether ``fill`` continues the aggregate ``before`` is in."""
    return (
        fill.taker_order_id == before.taker_order_id
        and fill.price_ticks == before.price_ticks
        and fill.ts == before.ts
        and fill.buyer_is_maker == before.buyer_is_maker
    )


def aggregate(fills: Iterable[Fill], before: Fill | None = None) -> list[AggTrade]:
    """The aggregates that start among ``fills`` (in id order). ``before``: the trade just before the first one,
    if any; fills that continue its aggregate are left out (that aggregate started earlier). The last aggregate
    holds the fills given: the caller reads on until a fill that does not join it, or the end of the trades."""
    out: list[AggTrade] = []
    prev, first, qty, skipping = before, None, 0, before is not None
    for f in fills:
        if prev is not None and joins(prev, f):
            if not skipping:
                qty += f.qty_lots
        else:
            if first is not None and prev is not None:
                out.append(_closed(first, prev, qty))
            first, qty, skipping = f, f.qty_lots, False
        prev = f
    if first is not None and prev is not None and not skipping:
        out.append(_closed(first, prev, qty))
    return out


def _closed(first: Fill, last: Fill, qty: int) -> AggTrade:
    return AggTrade(
        first.trade_id, first.price_ticks, qty, first.trade_id, last.trade_id, first.ts, first.buyer_is_maker
    )


def agg_json(m: Market, a: AggTrade) -> dict[str, Any]:
    """A row of ``GET /api/v3/aggTrades`` (and the WebSocket API's ``trades.aggregate``)."""
    return {
        "a": a.agg_id,
        "p": m.fmt_price(a.price_ticks),
        "q": m.fmt_qty(a.qty_lots),
        "f": a.first_id,
        "l": a.last_id,
        "T": a.ts,
        "m": a.buyer_is_maker,
        "M": True,
    }


def agg_event(m: Market, a: AggTrade, event_ts: int) -> dict[str, Any]:
    """The ``<symbol>@aggTrade`` stream event."""
    return {"e": "aggTrade", "E": event_ts, "s": m.symbol, **agg_json(m, a)}
