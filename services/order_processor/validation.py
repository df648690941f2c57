"""Check an order request against its market and size its hold: pure, no I/O.

``check`` applies the market's filters (``shared.filters``: PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
NOTIONAL; status; PERCENT_PRICE_BY_SIDE against the average price, ``shared.price_band``) and converts the
decimal strings to ticks and lots; every amount it returns fits a BIGINT.
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
MARKET BUY by qty      quote              qty at its price-protection limit, or everything available if
                                          less (or before the first trade: the fill price is unknown);
                                          the rest is released when the order ends
MARKET BUY by quote    quote              quoteOrderQty
MARKET SELL by quote   base               everything available, in whole lots
=====================  =================  ==========================================================

A conditional order (STOP_LOSS, TAKE_PROFIT: MARKET once triggered; STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT: LIMIT
once triggered) is checked and held from acceptance as the order it becomes (``OrderType.triggered``), its
MARKET price-protection limit taken at acceptance; its stop price and trailing delta pass ``filters.stop``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from shared import errors, filters, price_band
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
    capped: bool = False  # hold_atoms is a most: hold everything available if that is less (a bounded MARKET)
    iceberg_lots: int = 0  # an iceberg's slice (``filters.iceberg``); 0: not an iceberg
    stop_ticks: int = 0  # a conditional order's stop price (``filters.stop``)
    trailing_delta: int = 0  # ... and trailing delta, in BIPS


@dataclass(frozen=True, slots=True)
class Hold:
    asset: str
    atoms: int
    budget: int  # notional units (BUY) or lots (SELL) the matcher may spend


def check(req: NewOrderRequest, market: Market | None, avg: Fraction | None = None) -> Spec:
    """Raise ``ApiError`` with Binance's code if a filter refuses the request.

    The request is checked whole, as if it had not passed ingestion: a record produced straight to the topic
    with absurd numbers is refused to its owner here, before any of them reaches Postgres. ``avg``: the
    market's average price in ticks (``price_band.average``), None before its first trade. A MARKET order's
    ``price_ticks`` is its price-protection limit (0: none), stored with it, so a redelivery decides the same."""
    if market is None:
        raise errors.invalid_symbol()
    if market.status != "TRADING":
        raise ApiError(errors.NEW_ORDER_REJECTED, "Market is closed.")
    if req.tif is None:
        raise errors.mandatory("timeInForce")
    kind = req.type.triggered  # what a conditional order becomes: held as that from acceptance
    sized = filters.size(market, kind, req.price, req.quantity, req.quote_order_qty)
    stop = filters.stop(market, req.type, req.side, req.stop_price, req.trailing_delta)
    return replace(_sized(req, kind, market, avg, sized), stop_ticks=stop[0], trailing_delta=stop[1])


def _sized(req: NewOrderRequest, kind: OrderType, market: Market, avg: Fraction | None, sized: filters.Sized) -> Spec:
    """``check``'s price band and hold for an order of ``kind`` with the numbers ``sized``."""
    price_ticks, qty_lots, quote_nu = sized.price_ticks, sized.qty_lots, sized.quote_nu
    # a STOP_LOSS_LIMIT / TAKE_PROFIT_LIMIT may be an iceberg as the LIMIT it becomes (as on Binance)
    iceberg = filters.iceberg(market, kind, req.tif.value if req.tif else None, qty_lots, req.iceberg_qty)
    if kind is OrderType.MARKET:
        price_ticks = price_band.market_limit(market, req.side, avg)
    else:
        price_band.check_limit(market, req.side, price_ticks, avg)
    if req.side is Side.BUY:
        if kind is OrderType.MARKET:
            if quote_nu:
                return Spec(price_ticks, qty_lots, quote_nu, market.quote, quote_nu * market.atoms_per_nu)
            if price_ticks:  # bounded by the band: at most qty at the limit
                most = market.limit_hold_atoms(Side.BUY, price_ticks, qty_lots)
                return Spec(price_ticks, qty_lots, quote_nu, market.quote, most, capped=True)
            return Spec(price_ticks, qty_lots, quote_nu, market.quote, None)
        hold = market.limit_hold_atoms(Side.BUY, price_ticks, qty_lots)
        return Spec(price_ticks, qty_lots, quote_nu, market.quote, hold, iceberg_lots=iceberg)
    held = market.limit_hold_atoms(Side.SELL, price_ticks, qty_lots) if qty_lots else None
    return Spec(price_ticks, qty_lots, quote_nu, market.base, held, iceberg_lots=iceberg)


def size_hold(spec: Spec, side: Side, market: Market, available: int) -> Hold:
    """The hold to take from ``available`` atoms, or ``ApiError`` for insufficient balance."""
    unit = market.atoms_per_nu if side is Side.BUY else market.atoms_per_lot
    whole = available // unit * unit
    atoms = whole if spec.hold_atoms is None else min(spec.hold_atoms, whole) if spec.capped else spec.hold_atoms
    if atoms <= 0 or atoms > available:
        raise ApiError(errors.NEW_ORDER_REJECTED, errors.INSUFFICIENT_BALANCE_MSG)
    return Hold(spec.hold_asset, atoms, atoms // unit)
