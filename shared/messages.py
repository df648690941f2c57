"""Message schemas of the four topics; every message carries a schema version ``v``.

Topics are keyed by symbol, so one symbol's messages keep their order. Amounts inside are integers in the
scales of ``shared.domain`` (ticks, lots, notional units, atoms); only ``order-requests`` carries decimal
strings, because the request is canonicalised before its market's filters are applied.

Idempotency keys, so every consumer can skip a redelivery:

* ``order-requests``: ``order_id`` / ``request_id`` (assigned once by ingestion).
* ``validated-orders``: ``(src_partition, src_offset)`` of the request it came from, monotonic per symbol.
* ``matched-events`` and ``trade-execution``: ``(symbol, seq)``, the matcher's per-symbol sequence.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import msgspec

from .domain import ExecType, OrderStatus, OrderType, Side, StpMode, TimeInForce

SCHEMA_VERSION: Final = 1


class Topic(StrEnum):
    ORDER_REQUESTS = "order-requests"
    VALIDATED_ORDERS = "validated-orders"
    MATCHED_EVENTS = "matched-events"
    TRADE_EXECUTION = "trade-execution"

    @property
    def dlq(self) -> str:
        return f"{self.value}.dlq"


# --- order-requests: ingestion -> order-processor ---------------------------------------------------------


class NewOrderRequest(msgspec.Struct, tag_field="kind", tag="new", kw_only=True, frozen=True):
    v: int = SCHEMA_VERSION
    order_id: int
    user_id: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce | None = None
    price: str | None = None
    quantity: str | None = None
    quote_order_qty: str | None = None
    client_order_id: str
    stp: StpMode = StpMode.EXPIRE_MAKER
    ts: int  # ms, when ingestion accepted it

    @property
    def request_id(self) -> int:
        return self.order_id


class CancelRequest(msgspec.Struct, tag_field="kind", tag="cancel", kw_only=True, frozen=True):
    v: int = SCHEMA_VERSION
    request_id: int
    user_id: int
    symbol: str
    order_id: int
    ts: int


OrderRequest = NewOrderRequest | CancelRequest


# --- validated-orders: order-processor -> matcher ---------------------------------------------------------


class AcceptedOrder(msgspec.Struct, tag_field="kind", tag="order", kw_only=True, frozen=True):
    """An order whose funds are held. ``budget`` is the hold: notional units for a BUY, lots for a SELL."""

    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    order_id: int
    user_id: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price_ticks: int = 0  # 0 for MARKET
    qty_lots: int = 0  # 0 when the order is sized by quote_nu
    quote_nu: int = 0  # MARKET by quoteOrderQty
    budget: int
    client_order_id: str
    stp: StpMode = StpMode.EXPIRE_MAKER
    ts: int

    @property
    def request_id(self) -> int:
        return self.order_id


class CancelOrder(msgspec.Struct, tag_field="kind", tag="cancel", kw_only=True, frozen=True):
    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    request_id: int
    order_id: int
    user_id: int
    symbol: str
    ts: int


class RejectedOrder(msgspec.Struct, tag_field="kind", tag="reject", kw_only=True, frozen=True):
    """A refused new order; the matcher only sequences it so its owner hears of it in order."""

    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    order_id: int
    user_id: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce | None
    price_ticks: int = 0
    qty_lots: int = 0
    client_order_id: str
    code: int
    msg: str
    ts: int

    @property
    def request_id(self) -> int:
        return self.order_id


MatcherCommand = AcceptedOrder | CancelOrder | RejectedOrder


# --- matched-events and trade-execution: matcher -> settlement, market-data, trade-archiver ---------------


# Construction cost matters here: the matcher builds several of these per command (issue 7). ``gc=False``:
# they hold only scalars, so the collector never needs to walk them. ``OrderUpdate`` takes its first eight
# fields positionally (its base class) and the rest by keyword, with the field order, and so every encoding,
# unchanged; CPython 3.11 compiles a call with 16 or more keywords through a dict, at ~3x the cost.


class _OrderFields(msgspec.Struct, frozen=True, gc=False):
    """What an update says about the order itself; the leading, positional fields of ``OrderUpdate``."""

    order_id: int
    user_id: int
    client_order_id: str
    side: Side
    type: OrderType
    tif: TimeInForce | None
    price_ticks: int
    qty_lots: int


class OrderUpdate(_OrderFields, kw_only=True, frozen=True, gc=False):
    """An order's state after one step; ``last_*`` describe the fill that caused it, if any."""

    quote_nu: int = 0
    status: OrderStatus
    exec_type: ExecType
    executed_lots: int = 0
    cum_nu: int = 0
    created_ts: int
    last_lots: int = 0
    last_ticks: int = 0
    trade_id: int = -1
    is_maker: bool = False
    fee: int = 0  # atoms of the asset this side receives (base for BUY, quote for SELL)
    reject_code: int = 0
    reason: str = ""
    orig_client_order_id: str = ""  # on cancels: the cancel request's own client id is not tracked


class Trade(msgspec.Struct, frozen=True, gc=False):
    trade_id: int
    price_ticks: int
    qty_lots: int
    buyer_order_id: int
    seller_order_id: int
    buyer_user_id: int
    seller_user_id: int
    buyer_is_maker: bool
    buyer_fee: int  # base atoms kept from what the buyer receives
    seller_fee: int  # quote atoms kept from what the seller receives
    ts: int


class LevelDelta(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A price level's total after the step; lots == 0 removes the level."""

    side: Side
    price_ticks: int
    lots: int


class CommandError(msgspec.Struct, kw_only=True, frozen=True):
    """A command the book refused (a cancel of an order no longer open)."""

    user_id: int
    order_id: int
    code: int
    msg: str


class MatchedEvent(msgspec.Struct, tag_field="kind", tag="matched", kw_only=True, frozen=True):
    """Everything one command did to one symbol's book, in order; ``seq`` is gap-free per symbol."""

    v: int = SCHEMA_VERSION
    symbol: str
    seq: int
    ts: int
    request_id: int
    updates: list[OrderUpdate] = []
    trades: list[Trade] = []
    deltas: list[LevelDelta] = []
    error: CommandError | None = None


class TradeExecution(msgspec.Struct, tag_field="kind", tag="trades", kw_only=True, frozen=True):
    """The trades of one matched event, for market data and the archive."""

    v: int = SCHEMA_VERSION
    symbol: str
    seq: int
    trades: list[Trade]


# --- codecs (module-level, built once: no per-message allocation of encoders) ---------------------------

encode = msgspec.json.Encoder().encode
decode_request = msgspec.json.Decoder(OrderRequest).decode
decode_command = msgspec.json.Decoder(MatcherCommand).decode
decode_matched = msgspec.json.Decoder(MatchedEvent).decode
decode_trades = msgspec.json.Decoder(TradeExecution).decode
decode_output = msgspec.json.Decoder(MatchedEvent | TradeExecution).decode
