"""Domain vocabulary shared by every service: enums in Binance's spelling and the fixed-point scales.

Scales, explained once:

* A **price** is an integer number of *ticks*: ``price = ticks * market.tick_size``.
* A **quantity** is an integer number of *lots*: ``qty = lots * market.step_size``.
* A **notional unit** (nu) is one tick times one lot: ``price * qty = ticks * lots * tick_size * step_size``.
* A **balance** is an integer number of *atoms*; every asset has ``ASSET_SCALE`` (8) decimals, as Binance
  shows them. ``Market`` requires ``step_size`` and ``tick_size * step_size`` to be whole multiples of one
  atom, so base quantities and quote notionals convert to atoms exactly.

Decimals exist only at the edges (parsing requests, printing responses); the core never sees a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

ASSET_SCALE: Final = 8
ATOM: Final = Decimal(1).scaleb(-ASSET_SCALE)
BPS: Final = 10_000  # fee rates are in basis points
INT64_MAX: Final = 2**63 - 1  # what a Postgres BIGINT column, and so the ledger, stores
DEFAULT_MAX_NOTIONAL: Final = Decimal(9_000_000_000)  # Binance's NOTIONAL maxNotional on its USDT markets


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"
    STOP_LOSS = "STOP_LOSS"  # conditional (``STOP_TYPES``): a MARKET once its stop triggers
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"  # ... a LIMIT once it triggers
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    @property
    def is_stop(self) -> bool:
        """A conditional order: it waits, off the book, for the last trade price to trigger it."""
        return self in STOP_TYPES

    @property
    def triggered(self) -> OrderType:
        """What a conditional order becomes when it triggers: MARKET or LIMIT (itself for any other)."""
        return TRIGGERED.get(self, self)


STOP_TYPES: Final = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)
TRIGGERED: Final = {
    OrderType.STOP_LOSS: OrderType.MARKET,
    OrderType.TAKE_PROFIT: OrderType.MARKET,
    OrderType.STOP_LOSS_LIMIT: OrderType.LIMIT,
    OrderType.TAKE_PROFIT_LIMIT: OrderType.LIMIT,
}
MAX_NUM_ALGO_ORDERS: Final = 5  # open conditional orders per user and symbol (Binance's default filter value)
TRAILING_DELTA_MIN: Final = 10  # TRAILING_DELTA filter bounds, in BIPS, above and below (Binance's defaults)
TRAILING_DELTA_MAX: Final = 2000


def stop_above(order_type: OrderType, side: Side) -> bool:
    """Whether a conditional order's stop price is met by a last price at or above it (else at or below):
    a STOP_LOSS BUY and a TAKE_PROFIT SELL wait for the price to rise, the other two for it to fall
    (Binance's trailing-stop FAQ's table). A trailing order tracks the highest price when it sells, the
    lowest when it buys, and whether its delta is bounded by the filter's "above" or "below" pair is
    ``stop_above`` too."""
    return (order_type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)) == (side is Side.BUY)


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"
    PENDING_NEW = "PENDING_NEW"  # an OTO / OTOCO pending leg: held, not on the book until its working order fills
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_NEW)


class ExecType(StrEnum):
    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    TRADE_PREVENTION = "TRADE_PREVENTION"
    REPLACED = "REPLACED"  # amended in place (order/amend/keepPriority): a smaller quantity, the same place


class CancelRestriction(StrEnum):
    """``cancelRestrictions``: cancel only an order in this status; the matcher refuses the rest (-2011)."""

    ONLY_NEW = "ONLY_NEW"
    ONLY_PARTIALLY_FILLED = "ONLY_PARTIALLY_FILLED"


class StpMode(StrEnum):
    """Self-trade prevention, as Binance names it; the taker is the incoming order."""

    NONE = "NONE"
    EXPIRE_TAKER = "EXPIRE_TAKER"
    EXPIRE_MAKER = "EXPIRE_MAKER"
    EXPIRE_BOTH = "EXPIRE_BOTH"
    DECREMENT = "DECREMENT"  # both orders lose the smaller one's quantity; whichever reaches zero expires
    TRANSFER = "TRANSFER"  # DECREMENT between orders of one account (no trade groups here: always the case)


class Bucket(StrEnum):
    """Where an account's units sit: spendable, or held for an open order."""

    AVAILABLE = "available"
    HELD = "held"


class DomainError(Exception):
    """A request the exchange refuses; ``shared.errors`` maps each subclass to a Binance code once."""


class FilterFailure(DomainError):
    """A market filter refused a value (PRICE_FILTER, LOT_SIZE, NOTIONAL, ...)."""

    def __init__(self, filter_type: str, detail: str) -> None:
        super().__init__(f"Filter failure: {filter_type}")
        self.filter_type = filter_type
        self.detail = detail


def atoms_to_decimal(atoms: int) -> Decimal:
    return Decimal(atoms).scaleb(-ASSET_SCALE)


def decimal_to_atoms(value: Decimal) -> int:
    """Exact conversion; a value finer than one atom is an error, not a rounding."""
    scaled = value.scaleb(ASSET_SCALE)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {ASSET_SCALE} decimals")
    return int(scaled)


_ATOMS_PER_UNIT = 10**ASSET_SCALE


def fmt_amount(atoms: int) -> str:
    """Atoms as Binance prints a balance: 8 decimals. Called several times per event on every hot path."""
    if atoms >= 0:
        whole, frac = divmod(atoms, _ATOMS_PER_UNIT)
        return f"{whole}.{frac:08d}"
    whole, frac = divmod(-atoms, _ATOMS_PER_UNIT)
    return f"-{whole}.{frac:08d}"


@dataclass(frozen=True, slots=True)
class Market:
    """One trading pair with its filters and fee rates (a row of the ``markets`` table)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_price: Decimal
    max_price: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee_bps: int = 10
    taker_fee_bps: int = 10
    status: str = "TRADING"
    max_notional: Decimal = DEFAULT_MAX_NOTIONAL  # NOTIONAL's maxNotional, for LIMIT and MARKET orders alike
    # PERCENT_PRICE_BY_SIDE, against the 5-minute average price (``shared.price_band``): a BUY's price within
    # [avg * bid_down, avg * bid_up], a SELL's within [avg * ask_down, avg * ask_up]; a MARKET order stops at
    # its side's bound (Binance's defaults: 0.2 to 5 times the average)
    bid_up: Decimal = Decimal(5)
    bid_down: Decimal = Decimal("0.2")
    ask_up: Decimal = Decimal(5)
    ask_down: Decimal = Decimal("0.2")
    # the circuit breaker: BREAK once the last price moves more than this share within ``breaker_window_s``
    # of a price traded in that window (0: off)
    breaker_pct: Decimal = Decimal(0)
    breaker_window_s: int = 60
    # Integer scales, derived once: every fill, report and balance line is formatted with them, and the
    # Decimal arithmetic behind them was a visible share of market-data's and settlement's CPU per order.
    atoms_per_lot: int = field(init=False, repr=False, compare=False)  # base atoms in one lot
    atoms_per_nu: int = field(init=False, repr=False, compare=False)  # quote atoms in one tick times one lot
    _atoms_per_tick: int = field(init=False, repr=False, compare=False)  # 0: a tick finer than an atom

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.symbol}: {name} must be positive")
        if not 0 < self.bid_down <= 1 <= self.bid_up or not 0 < self.ask_down <= 1 <= self.ask_up:
            raise ValueError(f"{self.symbol}: PERCENT_PRICE_BY_SIDE needs 0 < down <= 1 <= up on both sides")
        if not 0 <= self.breaker_pct < 1 or self.breaker_window_s <= 0:
            raise ValueError(f"{self.symbol}: the breaker's share is in [0, 1) and its window positive")
        if (self.step_size / ATOM) % 1 or (self.tick_size * self.step_size / ATOM) % 1:
            raise ValueError(f"{self.symbol}: step_size and tick_size*step_size must be whole atoms")
        per_tick = self.tick_size / ATOM
        object.__setattr__(self, "atoms_per_lot", int(self.step_size / ATOM))
        object.__setattr__(self, "atoms_per_nu", int(self.tick_size * self.step_size / ATOM))
        object.__setattr__(self, "_atoms_per_tick", 0 if per_tick % 1 else int(per_tick))
        # The filters bound every order, so the largest one they let through bounds every amount derived from
        # it (ticks, lots, notional units, atoms held); those must fit the ledger's BIGINT columns.
        largest = (
            self.max_price / self.tick_size,
            self.max_qty / self.step_size * self.atoms_per_lot,
            self.max_notional / (self.tick_size * self.step_size) * self.atoms_per_nu,
        )
        if max(largest) > INT64_MAX:
            raise ValueError(f"{self.symbol}: maxPrice, maxQty or maxNotional past what a BIGINT stores")

    # --- scale conversions (exact; off-grid values raise FilterFailure) -------------------------------

    @property
    def price_decimals(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    @property
    def qty_decimals(self) -> int:
        return max(0, -self.step_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    def price_to_ticks(self, price: Decimal) -> int:
        if price < self.min_price or price > self.max_price:
            raise FilterFailure("PRICE_FILTER", f"price {price} outside [{self.min_price}, {self.max_price}]")
        ticks = price / self.tick_size
        if ticks != ticks.to_integral_value():
            raise FilterFailure("PRICE_FILTER", f"price {price} is not a multiple of tickSize {self.tick_size}")
        return int(ticks)

    def qty_to_lots(self, qty: Decimal, filter_type: str = "LOT_SIZE") -> int:
        if qty < self.min_qty or qty > self.max_qty:
            raise FilterFailure(filter_type, f"quantity {qty} outside [{self.min_qty}, {self.max_qty}]")
        lots = qty / self.step_size
        if lots != lots.to_integral_value():
            raise FilterFailure(filter_type, f"quantity {qty} is not a multiple of stepSize {self.step_size}")
        return int(lots)

    def ticks_to_price(self, ticks: int) -> Decimal:
        return ticks * self.tick_size

    def lots_to_qty(self, lots: int) -> Decimal:
        return lots * self.step_size

    def fmt_price(self, ticks: int) -> str:
        if self._atoms_per_tick:  # exact in integers: the same text as the Decimal's, without the Decimal
            return fmt_amount(ticks * self._atoms_per_tick)
        return f"{self.ticks_to_price(ticks):.8f}"

    def fmt_qty(self, lots: int) -> str:
        return fmt_amount(lots * self.atoms_per_lot)

    def fmt_notional(self, nu: int) -> str:
        return fmt_amount(nu * self.atoms_per_nu)

    @property
    def min_notional_nu(self) -> int:
        """Smallest allowed notional, in notional units, rounded up."""
        nu = self.min_notional / (self.tick_size * self.step_size)
        return int(nu.to_integral_value(rounding="ROUND_CEILING"))

    @property
    def max_notional_nu(self) -> int:
        """Largest allowed notional, in notional units, rounded down."""
        return int(self.max_notional / (self.tick_size * self.step_size))

    # --- holds -----------------------------------------------------------------------------------------
    def limit_hold_atoms(self, side: Side, price_ticks: int, lots: int) -> int:
        """What ``lots`` of a limit order hold: the notional at its limit for a BUY (no fee reserve, since a fee
        is taken from what a side receives), the quantity for a SELL. The processor holds it for the whole
        order; settlement keeps an open order's hold at it for the lots left, so ``locked`` is what the open
        orders still need, as on Binance."""
        return price_ticks * lots * self.atoms_per_nu if side is Side.BUY else lots * self.atoms_per_lot

    # --- fees ------------------------------------------------------------------------------------------
    def fee_atoms(self, gross_atoms: int, is_maker: bool) -> int:
        """Commission on what a side receives, rounded down so the user is never overcharged."""
        rate = self.maker_fee_bps if is_maker else self.taker_fee_bps
        return gross_atoms * rate // BPS
