"""A market's filters on an order's numbers, as Binance applies them. Pure.

Shared by ingestion, so that the REST answer is the refusal, and by the order processor, which decides and
takes nothing on trust from its topic (a record produced straight to it is checked the same way).

* ``PRICE_FILTER``: minPrice <= price <= maxPrice, on the tick.
* ``LOT_SIZE`` (LIMIT, LIMIT_MAKER) or ``MARKET_LOT_SIZE`` (MARKET by quantity): minQty <= qty <= maxQty, on
  the step.
* ``ICEBERG_PARTS``: an iceberg's ``icebergQty`` is on the LOT_SIZE step, below the quantity, and cuts it in
  at most ``ICEBERG_PARTS_LIMIT`` parts (``iceberg``).
* ``NOTIONAL``: minNotional <= price * qty <= maxNotional for LIMIT and LIMIT_MAKER; for a MARKET order by
  ``quoteOrderQty`` the same bounds on it (``applyMinToMarket``, ``applyMaxToMarket``). A MARKET order by
  quantity has no notional before it fills (Binance prices it at the average price, which the processor does
  not keep); its hold is bounded by the balance (BUY) or by maxQty (SELL) instead.

A conditional order (STOP_LOSS, TAKE_PROFIT and their _LIMIT kinds) is sized as the MARKET or LIMIT it
becomes (``OrderType.triggered``); ``stop`` checks its ``stopPrice`` (PRICE_FILTER) and ``trailingDelta``
(``TRAILING_DELTA``: within [minTrailingAboveDelta, maxTrailingAboveDelta] for the kinds whose stop waits for
the price to rise, ``shared.domain.stop_above``, within the "below" pair for the others).

The numbers are parsed with Binance's grammar first (``shared.amounts``: -1100, -1111). Within the filters
every derived amount (ticks, lots, notional units, the atoms a hold takes) fits a BIGINT, as
``Market.__post_init__`` checks of its maxima; each is checked again here, so a market row that slipped past
that check refuses orders instead of failing the processor's batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import errors
from .amounts import fits, parse_amount
from .domain import TRAILING_DELTA_MAX, TRAILING_DELTA_MIN, FilterFailure, Market, OrderType, Side, stop_above
from .errors import ApiError

ICEBERG_PARTS_LIMIT = 10  # Binance's usual ICEBERG_PARTS limit, as exchangeInfo lists it


@dataclass(frozen=True, slots=True)
class Sized:
    """An order's numbers in integer units, within its market's filters."""

    price_ticks: int  # 0 for MARKET
    qty_lots: int  # 0 when sized by quote_nu
    quote_nu: int  # quoteOrderQty in notional units (rounded down), 0 when sized by quantity


def _refuse(filter_type: str, detail: str) -> ApiError:
    return errors.from_filter(FilterFailure(filter_type, detail))


def _shape(order_type: OrderType, price: str | None, quantity: str | None, quote: str | None) -> None:
    """Which numbers an order type takes, with ingestion's codes (a record off the topic may have any)."""
    if order_type is OrderType.MARKET:
        if (quantity is None) == (quote is None):
            raise ApiError(
                errors.MANDATORY_PARAM,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
                if quantity is None
                else "Parameters 'quantity' and 'quoteOrderQty' cannot be sent together.",
            )
        if price is not None:
            raise errors.not_required("price")
        return
    if price is None:
        raise errors.mandatory("price")
    if quantity is None:
        raise errors.mandatory("quantity")
    if quote is not None:
        raise errors.not_required("quoteOrderQty")


def size(
    market: Market, order_type: OrderType, price: str | None, quantity: str | None, quote_order_qty: str | None
) -> Sized:
    """The order's ticks, lots and quote notional units, or ``ApiError`` with Binance's code and message."""
    _shape(order_type, price, quantity, quote_order_qty)
    lot_filter = "MARKET_LOT_SIZE" if order_type is OrderType.MARKET else "LOT_SIZE"
    try:
        price_ticks = market.price_to_ticks(parse_amount(price, "price")) if price is not None else 0
        qty_lots = market.qty_to_lots(parse_amount(quantity, "quantity"), lot_filter) if quantity is not None else 0
    except FilterFailure as f:
        raise errors.from_filter(f) from None
    if not fits(qty_lots * market.atoms_per_lot):
        raise _refuse(lot_filter, f"quantity {quantity} past a BIGINT")
    quote_nu = 0
    if quote_order_qty is not None:
        quote = parse_amount(quote_order_qty, "quoteOrderQty")
        if quote > market.max_notional:
            raise _refuse("NOTIONAL", f"quoteOrderQty {quote} above maxNotional {market.max_notional}")
        quote_nu = int(quote / (market.tick_size * market.step_size))
        if quote_nu < market.min_notional_nu:
            raise _refuse("NOTIONAL", f"quoteOrderQty {quote} below minNotional {market.min_notional}")
        if not fits(quote_nu * market.atoms_per_nu):
            raise _refuse("NOTIONAL", f"quoteOrderQty {quote} past a BIGINT")
    if order_type is not OrderType.MARKET:
        notional_nu = price_ticks * qty_lots
        if notional_nu < market.min_notional_nu:
            raise _refuse("NOTIONAL", f"notional below minNotional {market.min_notional}")
        if notional_nu > market.max_notional_nu or not fits(notional_nu * market.atoms_per_nu):
            raise _refuse("NOTIONAL", f"notional above maxNotional {market.max_notional}")
    return Sized(price_ticks, qty_lots, quote_nu)


def iceberg(market: Market, order_type: OrderType, tif: str | None, qty_lots: int, iceberg_qty: str | None) -> int:
    """An iceberg's slice in lots (0: not an iceberg), or ``ApiError``: only a LIMIT or LIMIT_MAKER that rests
    (GTC) may be one (Binance's "Unsupported order combination"; ``order_type`` is what a conditional order
    becomes, so a STOP_LOSS_LIMIT or TAKE_PROFIT_LIMIT may be one too); its ``icebergQty`` is on the LOT_SIZE
    step, below the quantity, and makes at most ``ICEBERG_PARTS_LIMIT`` parts (ICEBERG_PARTS)."""
    if iceberg_qty is None:
        return 0
    if order_type is OrderType.MARKET or tif != "GTC":
        raise ApiError(errors.NEW_ORDER_REJECTED, "Unsupported order combination")
    try:
        lots = market.qty_to_lots(parse_amount(iceberg_qty, "icebergQty"))
    except FilterFailure as f:
        raise errors.from_filter(f) from None
    if lots >= qty_lots or -(-qty_lots // lots) > ICEBERG_PARTS_LIMIT:
        raise _refuse("ICEBERG_PARTS", f"icebergQty {iceberg_qty}: {ICEBERG_PARTS_LIMIT} parts at most, 2 at least")
    return lots


def stop(
    market: Market, order_type: OrderType, side: Side, stop_price: str | None, trailing_delta: int | None
) -> tuple[int, int]:
    """A conditional order's (stop price in ticks, trailing delta in BIPS), 0 for what it has none of; (0, 0)
    for any other order. ``ApiError`` when neither is set, or a filter refuses one."""
    if not order_type.is_stop:
        if stop_price is not None:
            raise errors.not_required("stopPrice")
        if trailing_delta is not None:
            raise errors.not_required("trailingDelta")
        return 0, 0
    if stop_price is None and trailing_delta is None:
        raise ApiError(
            errors.MANDATORY_PARAM, "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"
        )
    stop_ticks = 0
    if stop_price is not None:
        try:
            stop_ticks = market.price_to_ticks(parse_amount(stop_price, "stopPrice"))
        except FilterFailure as f:
            raise errors.from_filter(f) from None
    delta = trailing_delta or 0
    if trailing_delta is not None and not TRAILING_DELTA_MIN <= trailing_delta <= TRAILING_DELTA_MAX:
        pair = "Above" if stop_above(order_type, side) else "Below"
        raise _refuse(
            "TRAILING_DELTA",
            f"trailingDelta {trailing_delta} outside [minTrailing{pair}Delta {TRAILING_DELTA_MIN}, "
            f"maxTrailing{pair}Delta {TRAILING_DELTA_MAX}]",
        )
    return stop_ticks, delta
