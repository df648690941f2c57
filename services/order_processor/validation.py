"""Check an order request against its market and size its hold: pure, no I/O.

``check`` applies the market's filters (``shared.filters``: PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
NOTIONAL; status) and converts the decimal strings to ticks and lots; every amount it returns fits a BIGINT.
``size_hold`` decides which asset and how many atoms to hold, given what the user has available; it never
holds more than is available and never less than the order can spend, which is what lets settlement
consume holds without ever driving a balance negative.

Holds by order kind (``budget`` is what the matcher may spend: notional units for BUY, lots for SELL):

=====================  =================  ==========================================================
kind                   asset held         atoms held
=====================  =================  ==========================================================
LIMIT / LIMIT_MAKER    quote (BUY)        price * qty (``Market.limit_hold_atoms``); a fill at a better
                                          price frees the difference at once (settlement)
any SELL by quantity   base               qty
MARKET BUY by qty      quote              everything available (the fill price is unknown); the rest
                                          is released when the order ends
MARKET BUY by quote    quote              quoteOrderQty
MARKET SELL by quote   base               everything available, in whole lots
=====================  =================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import errors, filters
from shared.domain import Market, OrderType, Side
from shared.errors import ApiError
from shared.messages import NewOrderRequest


@dataclass(frozen=True, slots=True)
class Spec:
    """A request that passed its market's filters, in integer units."""

    price_ticks: int
    qty_lots: int
    quote_nu: int
    hold_asset: str
    hold_atoms: int | None  # None: hold everything available (market orders of unknown cost)


@dataclass(frozen=True, slots=True)
class Hold:
    asset: str
    atoms: int
    budget: int  # notional units (BUY) or lots (SELL) the matcher may spend


def check(req: NewOrderRequest, market: Market | None) -> Spec:
    """Raise ``ApiError`` with Binance's code if a filter refuses the request.

    The request is checked whole, as if it had not passed ingestion: a record produced straight to the topic
    with absurd numbers is refused to its owner here, before any of them reaches Postgres."""
    if market is None:
        raise errors.invalid_symbol()
    if market.status != "TRADING":
        raise ApiError(errors.NEW_ORDER_REJECTED, "Market is closed.")
    if req.tif is None:
        raise errors.mandatory("timeInForce")
    sized = filters.size(market, req.type, req.price, req.quantity, req.quote_order_qty)
    price_ticks, qty_lots, quote_nu = sized.price_ticks, sized.qty_lots, sized.quote_nu
    if req.side is Side.BUY:
        if req.type is OrderType.MARKET:
            hold = quote_nu * market.atoms_per_nu if quote_nu else None
        else:
            hold = market.limit_hold_atoms(Side.BUY, price_ticks, qty_lots)
        return Spec(price_ticks, qty_lots, quote_nu, market.quote, hold)
    hold = market.limit_hold_atoms(Side.SELL, price_ticks, qty_lots) if qty_lots else None
    return Spec(price_ticks, qty_lots, quote_nu, market.base, hold)


def size_hold(spec: Spec, side: Side, market: Market, available: int) -> Hold:
    """The hold to take from ``available`` atoms, or ``ApiError`` for insufficient balance."""
    unit = market.atoms_per_nu if side is Side.BUY else market.atoms_per_lot
    atoms = spec.hold_atoms if spec.hold_atoms is not None else available // unit * unit
    if atoms <= 0 or atoms > available:
        raise ApiError(errors.NEW_ORDER_REJECTED, errors.INSUFFICIENT_BALANCE_MSG)
    return Hold(spec.hold_asset, atoms, atoms // unit)
