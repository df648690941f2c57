"""Message schemas of the four topics; every message carries a schema version ``v``.

Topics are keyed by symbol, so one symbol's messages keep their order. Amounts inside are integers in the
scales of ``shared.domain`` (ticks, lots, notional units, atoms); only ``order-requests`` carries decimal
strings, because the request is canonicalised before its market's filters are applied.

Idempotency keys, so every consumer can skip a redelivery:

* ``order-requests``: ``order_id`` / ``request_id`` (assigned once by ingestion).
* ``validated-orders``: ``(src_partition, src_offset)`` of the request it came from, monotonic per symbol
  (``src_offset`` is the request's ``source_position``: its record's offset and its index in that record).
* ``matched-events`` and ``trade-execution``: ``(symbol, seq)``, the matcher's per-symbol sequence.

The gateway publishes ``order-requests``, the order processor ``validated-orders`` and the matcher
``matched-events`` and ``trade-execution`` as envelopes (``OrderRequests``, ``MatcherCommands``,
``MatchedEvents``, ``TradeExecutions``): one Kafka record per symbol per batch, carrying that batch's messages
in order, since the per-record cost of the Kafka client and the broker, not the messages, bounds throughput.
A consumer never sees the difference: ``unpack_requests`` / ``unpack_commands`` / ``unpack_matched`` /
``unpack_trades`` / ``unpack_output`` (through ``shared.kafka.Envelopes``) turn a record, envelope or single
message (as the ingestion service, the Lambda and older producers write them), into its messages, each with
its own trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final

import msgspec

from .domain import INT64_MAX, CancelRestriction, ExecType, Market, OrderStatus, OrderType, Side, StpMode, TimeInForce

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

Stored = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
"""An id or time a request carries into a BIGINT column: a record with one out of range does not decode, so it
is dead-lettered as poison (``shared.kafka``) before it reaches Postgres. Its numbers, which its owner chose,
are decimal strings, checked by the processor and refused to the owner instead."""


class NewOrderRequest(msgspec.Struct, tag_field="kind", tag="new", kw_only=True, frozen=True):
    v: int = SCHEMA_VERSION
    order_id: Stored
    user_id: Stored
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce | None = None
    price: str | None = None
    quantity: str | None = None
    quote_order_qty: str | None = None
    client_order_id: str
    stp: StpMode = StpMode.EXPIRE_MAKER
    ts: Stored  # ms, when ingestion accepted it
    stop_price: str | None = None  # a conditional order's ``stopPrice`` (OrderType.is_stop)
    trailing_delta: int | None = None  # ... its ``trailingDelta``, in BIPS (bounded by the gateway's parse)
    iceberg_qty: str | None = None  # icebergQty (LIMIT, LIMIT_MAKER with GTC): the slice it shows while it rests

    @property
    def request_id(self) -> int:
        return self.order_id


class CancelRequest(msgspec.Struct, tag_field="kind", tag="cancel", kw_only=True, frozen=True):
    v: int = SCHEMA_VERSION
    request_id: Stored
    user_id: Stored
    symbol: str
    order_id: Stored
    ts: Stored
    restriction: CancelRestriction | None = None  # cancelRestrictions: the matcher checks it, in sequence


class CancelAllRequest(msgspec.Struct, tag_field="kind", tag="cancel-all", kw_only=True, frozen=True):
    """Cancel every open order of ``user_id`` on ``symbol`` (``DELETE /api/v3/openOrders``, ``spot admin
    cancel-all``, ``spot admin user disable``); ``user_id`` 0, which only the operator sends: every owner's
    (a halt with ``--cancel-resting``). It travels the order path as a cancel does, so the matcher cancels
    what is open at one point of the symbol's sequence."""

    v: int = SCHEMA_VERSION
    request_id: Stored
    user_id: Stored
    symbol: str
    ts: Stored


class MarketSpec(msgspec.Struct, kw_only=True, frozen=True):
    """A ``markets`` row as the order path carries it (decimals as strings): ``spec_of`` / ``market_of``."""

    symbol: str
    base: str
    quote: str
    status: str
    tick_size: str
    step_size: str
    min_price: str
    max_price: str
    min_qty: str
    max_qty: str
    min_notional: str
    max_notional: str
    maker_fee_bps: int
    taker_fee_bps: int
    bid_up: str = "5"
    bid_down: str = "0.2"
    ask_up: str = "5"
    ask_down: str = "0.2"
    breaker_pct: str = "0"
    breaker_window_s: int = 60


def spec_of(m: Market) -> MarketSpec:
    return MarketSpec(
        symbol=m.symbol,
        base=m.base,
        quote=m.quote,
        status=m.status,
        tick_size=str(m.tick_size),
        step_size=str(m.step_size),
        min_price=str(m.min_price),
        max_price=str(m.max_price),
        min_qty=str(m.min_qty),
        max_qty=str(m.max_qty),
        min_notional=str(m.min_notional),
        max_notional=str(m.max_notional),
        maker_fee_bps=m.maker_fee_bps,
        taker_fee_bps=m.taker_fee_bps,
        bid_up=str(m.bid_up),
        bid_down=str(m.bid_down),
        ask_up=str(m.ask_up),
        ask_down=str(m.ask_down),
        breaker_pct=str(m.breaker_pct),
        breaker_window_s=m.breaker_window_s,
    )


def market_of(s: MarketSpec) -> Market:
    return Market(
        s.symbol,
        s.base,
        s.quote,
        tick_size=Decimal(s.tick_size),
        step_size=Decimal(s.step_size),
        min_price=Decimal(s.min_price),
        max_price=Decimal(s.max_price),
        min_qty=Decimal(s.min_qty),
        max_qty=Decimal(s.max_qty),
        min_notional=Decimal(s.min_notional),
        maker_fee_bps=s.maker_fee_bps,
        taker_fee_bps=s.taker_fee_bps,
        status=s.status,
        max_notional=Decimal(s.max_notional),
        bid_up=Decimal(s.bid_up),
        bid_down=Decimal(s.bid_down),
        ask_up=Decimal(s.ask_up),
        ask_down=Decimal(s.ask_down),
        breaker_pct=Decimal(s.breaker_pct),
        breaker_window_s=s.breaker_window_s,
    )


class MarketChangeRequest(msgspec.Struct, tag_field="kind", tag="market", kw_only=True, frozen=True):
    """A market added or changed (``spot admin market``), written to Postgres first, then sent on the symbol's
    partition: the order processor and the matcher each apply it at this point of the symbol's sequence, so
    an order before it is decided by the old row and one after it by the new (a halt refuses from here on)."""

    v: int = SCHEMA_VERSION
    request_id: Stored
    symbol: str
    market: MarketSpec
    ts: Stored


class AmendRequest(msgspec.Struct, tag_field="kind", tag="amend", kw_only=True, frozen=True):
    """``order/amend/keepPriority``: ``order_id`` keeps its place with ``qty_lots`` (smaller than its quantity,
    larger than what it executed; the matcher checks both in sequence) and the client id ``client_order_id``.
    In lots, not a decimal string: the gateway converted it with the market's LOT_SIZE, as the amount of an
    order it already holds, and a hold only shrinks by it."""

    v: int = SCHEMA_VERSION
    request_id: Stored
    user_id: Stored
    symbol: str
    order_id: Stored
    qty_lots: Stored
    client_order_id: str
    ts: Stored


class NewListRequest(msgspec.Struct, tag_field="kind", tag="list", kw_only=True, frozen=True):
    """An order list (``orderList/oco``, ``/oto``, ``/otoco``, the older ``order/oco``): its legs, each a new order
    with its own id and client id, decided together by the processor (held and accepted or refused as one) and
    placed by the matcher in one step. ``contingency``: OCO, OTO or OTOCO; ``working``: how many legs go on
    the book at once (OCO 2; OTO and OTOCO 1, the working order, whose full fill places the rest).
    ``request_id`` is the list's id (its ``orderListId``), taken from the same id blocks as orders'."""

    v: int = SCHEMA_VERSION
    list_id: Stored
    user_id: Stored
    symbol: str
    contingency: str
    list_client_id: str
    working: int
    legs: list[NewOrderRequest]
    ts: Stored

    @property
    def request_id(self) -> int:
        return self.list_id


OrderRequest = NewOrderRequest | CancelRequest | CancelAllRequest | MarketChangeRequest | AmendRequest | NewListRequest
EVERY_OWNER: Final = 0  # a CancelAllRequest's user_id for every owner's orders (user ids start at 1)


class OrderRequests(msgspec.Struct, tag_field="kind", tag="requests-batch", kw_only=True, frozen=True):
    """One symbol's order requests that the gateway took in one event-loop turn, in arrival order, as one
    Kafka record; ``traces`` as in ``MatcherCommands``. Its requests' source positions are
    ``source_position(offset, index)``."""

    v: int = SCHEMA_VERSION
    symbol: str
    requests: list[OrderRequest]
    traces: dict[int, str] = {}


REQUEST_SLOTS: Final = 1 << 16  # most requests one order-requests record carries


def source_position(offset: int, index: int) -> int:
    """Where a request sat in its ``order-requests`` partition: its record's offset and its index in that
    record, as one integer that grows with both (the ``src_offset`` of validated-orders, which the matcher
    deduplicates by). Single-request records are index 0."""
    return offset * REQUEST_SLOTS + index


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
    iceberg_lots: int = 0  # icebergQty in lots: the slice it shows while it rests (0: shows all)
    maker_bps: int = -1  # its owner's fee tier's rates, fixed at acceptance (-1: the market's, when it trades)
    taker_bps: int = -1

    @property
    def request_id(self) -> int:
        return self.order_id


class AcceptedStop(AcceptedOrder, tag="stop", kw_only=True, frozen=True):
    """A conditional order (STOP_LOSS, TAKE_PROFIT and their _LIMIT kinds) whose funds are held: the order it
    becomes once triggered (``type`` is its own; ``OrderType.triggered`` says MARKET or LIMIT), its stop price
    (0: none, a trailing order that trails from placement) and trailing delta in BIPS (0: not trailing).

    A subclass with its own tag, so every consumer of accepted orders takes it as one, and the matcher's hot
    path, which tests a command's exact type, pays nothing for it."""

    stop_ticks: int = 0
    trailing_delta: int = 0


class CancelOrder(msgspec.Struct, tag_field="kind", tag="cancel", kw_only=True, frozen=True):
    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    request_id: int
    order_id: int
    user_id: int
    symbol: str
    ts: int
    restriction: CancelRestriction | None = None


class AmendOrder(msgspec.Struct, tag_field="kind", tag="amend", kw_only=True, frozen=True):
    """An ``AmendRequest`` at its source position; the matcher decides it (``Book``'s ``_amend``)."""

    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    request_id: int
    order_id: int
    user_id: int
    symbol: str
    qty_lots: int
    client_order_id: str
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


class CancelAllOrders(msgspec.Struct, tag_field="kind", tag="cancel-all", kw_only=True, frozen=True):
    """A ``CancelAllRequest`` at its source position: the matcher cancels, in one event, every open order of
    ``user_id`` (0: of every owner), in arrival order (``Book.apply``)."""

    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    request_id: int
    user_id: int
    symbol: str
    ts: int


class MarketChange(msgspec.Struct, tag_field="kind", tag="market", kw_only=True, frozen=True):
    """A ``MarketChangeRequest`` at its source position: the matcher takes the new row (its fees, a new
    symbol's book) from here on; it takes the position but no ``seq`` (nothing in the book changes)."""

    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    request_id: int
    symbol: str
    market: MarketSpec
    ts: int


class OrderListCommand(msgspec.Struct, tag_field="kind", tag="list", kw_only=True, frozen=True):
    """A ``NewListRequest`` the processor decided: ``orders`` its accepted legs (funds held; ``working`` of them go
    on the book at once, the rest wait for the first to fill: OTO, OTOCO), or ``rejected`` every leg's refusal
    (the whole list refused: nothing held). The matcher places or refuses the list in one step (``Book``)."""

    v: int = SCHEMA_VERSION
    src_partition: int
    src_offset: int
    list_id: int
    user_id: int
    symbol: str
    contingency: str
    list_client_id: str
    working: int
    ts: int
    orders: list[AcceptedOrder | AcceptedStop] = []
    rejected: list[RejectedOrder] = []

    @property
    def request_id(self) -> int:
        return self.list_id


MatcherCommand = (
    AcceptedOrder
    | AcceptedStop
    | CancelOrder
    | RejectedOrder
    | CancelAllOrders
    | MarketChange
    | AmendOrder
    | OrderListCommand
)


# --- matched-events and trade-execution: matcher -> settlement, market-data, trade-archiver ---------------


# Construction cost matters here: the matcher builds several of these per command (issue 7). ``gc=False``:
# they hold only scalars, so the collector never needs to walk them. The matcher builds ``OrderUpdate`` and
# ``Trade`` with positional arguments only (msgspec matches each keyword against the field names, ~2x the
# cost), so ``OrderUpdate``'s required fields come first: JSON keys follow the field order, and consumers
# decode by name (``tests/unit/matcher/test_book.py`` pins the order).


class OrderUpdate(msgspec.Struct, frozen=True, gc=False):
    """An order's state after one step; ``last_*`` describe the fill that caused it, if any."""

    order_id: int
    user_id: int
    client_order_id: str
    side: Side
    type: OrderType
    tif: TimeInForce | None
    price_ticks: int
    qty_lots: int
    status: OrderStatus
    exec_type: ExecType
    created_ts: int
    quote_nu: int = 0
    executed_lots: int = 0
    cum_nu: int = 0
    last_lots: int = 0
    last_ticks: int = 0
    trade_id: int = -1
    is_maker: bool = False
    fee: int = 0  # atoms of the asset this side receives (base for BUY, quote for SELL)
    reject_code: int = 0
    reason: str = ""
    orig_client_order_id: str = ""  # on cancels: the cancel request's own client id is not tracked
    stp: StpMode = StpMode.EXPIRE_MAKER  # the self-trade prevention mode the order was placed with (``V``)
    iceberg_lots: int = 0  # an iceberg's visible slice (``F``, ``icebergQty``); 0: not an iceberg
    prevented_match_id: int = -1  # on an expiry by self-trade prevention: the prevented match (``v``)
    counter_order_id: int = -1  # ... and the other order of it (``U``)
    prevented_lots: int = 0  # DECREMENT/TRANSFER: lots the order lost to prevented matches so far (``A``) ...
    last_prevented_lots: int = 0  # ... and to this one (``B``); only on TRADE_PREVENTION updates
    stop: StopState | None = None  # a conditional order's, on its reports until it triggers and as it does


class StopState(msgspec.Struct, frozen=True, gc=False):
    """A conditional order's stop as its reports carry it: one field of ``OrderUpdate`` (every other order's
    is None, which costs the hot path one default, not four)."""

    stop_ticks: int  # its stop price (``P``), 0 for none
    trailing_delta: int = 0  # ``d``, 0: not trailing
    trailing_ts: int = -1  # when its trailing started (``D``), -1 not yet
    working_ts: int = -1  # when it triggered and started working (``W``), -1 not yet (``w`` false)


LIST_EXECUTING: Final = "EXECUTING"
LIST_ALL_DONE: Final = "ALL_DONE"
LIST_REJECT: Final = "REJECT"
LIST_EXEC_STARTED: Final = "EXEC_STARTED"
LIST_RESPONSE: Final = "RESPONSE"
LIST_UPDATED: Final = "UPDATED"


class ListStatus(msgspec.Struct, frozen=True, gc=False):
    """An order list's state after a step that changed it (Binance's ``listStatus``): ``status_type``
    (``listStatusType``: EXEC_STARTED, UPDATED, ALL_DONE, RESPONSE for a refused list), ``order_status``
    (``listOrderStatus``: EXECUTING, ALL_DONE, REJECT), its legs' (order id, client order id) in leg order."""

    list_id: int
    user_id: int
    contingency: str
    status_type: str
    order_status: str
    list_client_id: str
    legs: list[tuple[int, str]]
    reject_reason: str = "NONE"


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


class MatchedEvent(msgspec.Struct, tag_field="kind", tag="matched", frozen=True, gc=False):
    """Everything one command did to one symbol's book, in order; ``seq`` is gap-free per symbol.

    Built positionally by the matcher, so required fields come first and ``v`` last. ``gc=False``: it holds
    lists of scalar-only records, never a cycle, so the collector need not track one per command."""

    symbol: str
    seq: int
    ts: int
    request_id: int
    updates: list[OrderUpdate] = []
    trades: list[Trade] = []
    deltas: list[LevelDelta] = []
    error: CommandError | None = None
    v: int = SCHEMA_VERSION


class ListedEvent(MatchedEvent, tag="listed", frozen=True, gc=False):
    """A matched event of a step that touched order lists (OCO, OTO, OTOCO): ``lists`` the statuses of the lists
    it changed (``listStatus``), ``legs`` the list of each of its updates that is a list's leg (order id -> list
    id: ``g``, ``orderListId``). A subclass with its own tag, as ``AcceptedStop`` is: the matcher's hot path builds
    plain ``MatchedEvent``s and ``OrderUpdate``s, which carry nothing for lists and cost nothing more for them."""

    lists: tuple[ListStatus, ...] = ()
    legs: dict[int, int] = {}


def leg_lists(e: MatchedEvent) -> dict[int, int]:
    """The list of each of ``e``'s updates that is a list's leg (order id -> list id); empty for most events."""
    return e.legs if isinstance(e, ListedEvent) else {}


def list_statuses(e: MatchedEvent) -> tuple[ListStatus, ...]:
    """The statuses of the order lists ``e`` changed, in order; empty for most events."""
    return e.lists if isinstance(e, ListedEvent) else ()


class TradeExecution(msgspec.Struct, tag_field="kind", tag="trades", kw_only=True, frozen=True):
    """The trades of one matched event, for market data and the archive."""

    v: int = SCHEMA_VERSION
    symbol: str
    seq: int
    trades: list[Trade]


# --- envelopes: one record per symbol per batch ----------------------------------------------------------


class MatcherCommands(msgspec.Struct, tag_field="kind", tag="commands-batch", kw_only=True, frozen=True):
    """One symbol's matcher commands from one order-processor batch, in input order, as one Kafka record.

    ``traces``: position in ``commands`` -> the W3C ``traceparent`` the command continues (traced requests
    only; a single command carries it as a Kafka header instead).
    """

    v: int = SCHEMA_VERSION
    symbol: str
    commands: list[MatcherCommand]
    traces: dict[int, str] = {}


class MatchedEvents(msgspec.Struct, tag_field="kind", tag="matched-batch", kw_only=True, frozen=True):
    """One symbol's matched events from one matcher batch, in ``seq`` order, as one Kafka record.

    ``traces``: position in ``events`` -> the W3C ``traceparent`` the event continues (traced commands only;
    a single message carries it as a Kafka header instead).
    """

    v: int = SCHEMA_VERSION
    symbol: str
    events: list[MatchedEvent | ListedEvent]
    traces: dict[int, str] = {}


class TradeExecutions(msgspec.Struct, tag_field="kind", tag="trades-batch", kw_only=True, frozen=True):
    """One symbol's trade executions from one matcher batch, in ``seq`` order; ``traces`` as above."""

    v: int = SCHEMA_VERSION
    symbol: str
    executions: list[TradeExecution]
    traces: dict[int, str] = {}


ENVELOPE_MAX_BYTES: Final = 256 * 1024  # well under Kafka's default 1 MiB message.max.bytes


# topic -> (envelope tag, field of its messages): what ``envelopes`` writes, ``MatcherCommands`` & co. read
_ENVELOPE_FIELDS: Final[dict[str, tuple[bytes, bytes]]] = {
    Topic.ORDER_REQUESTS: (b"requests-batch", b"requests"),
    Topic.VALIDATED_ORDERS: (b"commands-batch", b"commands"),
    Topic.MATCHED_EVENTS: (b"matched-batch", b"events"),
    Topic.TRADE_EXECUTION: (b"trades-batch", b"executions"),
}


def envelopes(
    topic: str, symbol: str, encoded: Sequence[bytes], traces: dict[int, str], max_bytes: int = ENVELOPE_MAX_BYTES
) -> list[bytes]:
    """The records carrying ``encoded`` (messages of ``symbol`` for ``topic``, each ``encode``d, in order).

    One record unless they exceed ``max_bytes``; then as many as it takes, each cut between messages (a
    single message larger than the bound still goes, alone). ``traces`` are positions in ``encoded``.
    """
    fields = _ENVELOPE_FIELDS.get(topic)
    if fields is None:
        raise ValueError(f"{topic} carries no envelopes")
    out: list[bytes] = []
    start, size = 0, 0
    for i, message in enumerate(encoded):
        if size + len(message) > max_bytes and i > start:
            out.append(_envelope(fields, symbol, encoded, traces, start, i))
            start, size = i, 0
        size += len(message) + 1
    if start < len(encoded):
        out.append(_envelope(fields, symbol, encoded, traces, start, len(encoded)))
    return out


def _envelope(
    fields: tuple[bytes, bytes], symbol: str, encoded: Sequence[bytes], traces: dict[int, str], start: int, end: int
) -> bytes:
    """The envelope's JSON around messages already encoded: the bytes ``encode`` would give for the decoded
    envelope, without decoding or encoding any message again."""
    mine = {i - start: tp for i, tp in traces.items() if start <= i < end} if traces else {}
    tag, field = fields
    head = b'{"kind":"%b","v":%d,"symbol":%b,"%b":[' % (tag, SCHEMA_VERSION, encode(symbol), field)
    return b"".join((head, b",".join(encoded[start:end]), b'],"traces":', encode(mine), b"}"))


# --- codecs (module-level, built once: no per-message allocation of encoders) ---------------------------

encode = msgspec.json.Encoder().encode
decode_request = msgspec.json.Decoder(OrderRequest).decode
decode_command = msgspec.json.Decoder(MatcherCommand).decode
decode_matched = msgspec.json.Decoder(MatchedEvent | ListedEvent).decode
decode_trades = msgspec.json.Decoder(TradeExecution).decode
decode_output = msgspec.json.Decoder(MatchedEvent | ListedEvent | TradeExecution).decode

_decode_request_record = msgspec.json.Decoder(OrderRequest | OrderRequests).decode
_decode_command_record = msgspec.json.Decoder(MatcherCommand | MatcherCommands).decode
_decode_matched_record = msgspec.json.Decoder(MatchedEvent | ListedEvent | MatchedEvents).decode
_decode_trades_record = msgspec.json.Decoder(TradeExecution | TradeExecutions).decode
_decode_output_record = msgspec.json.Decoder(
    MatchedEvent | ListedEvent | TradeExecution | MatchedEvents | TradeExecutions
).decode


def _items(record: Any) -> list[tuple[Any, bytes | None]]:
    """(message, traceparent) of a record; None: the record's own Kafka headers say (a single message)."""
    if isinstance(record, MatcherCommands):
        items: Sequence[Any] = record.commands
    elif isinstance(record, OrderRequests):
        items = record.requests
    elif isinstance(record, MatchedEvents):
        items = record.events
    elif isinstance(record, TradeExecutions):
        items = record.executions
    else:
        return [(record, None)]
    traces = record.traces
    if not traces:
        return [(m, None) for m in items]
    return [(m, tp.encode() if (tp := traces.get(i)) else None) for i, m in enumerate(items)]


def unpack_requests(raw: bytes) -> list[tuple[OrderRequest, bytes | None]]:
    """The requests of one ``order-requests`` record (an envelope, or one request), in order."""
    items = _items(_decode_request_record(raw))
    if len(items) > REQUEST_SLOTS:  # their source positions would run into the next record's
        raise ValueError(f"an order-requests record carries {len(items)} requests, more than {REQUEST_SLOTS}")
    return items


def unpack_commands(raw: bytes) -> list[tuple[MatcherCommand, bytes | None]]:
    """The commands of one ``validated-orders`` record (an envelope, or one command), in order."""
    return _items(_decode_command_record(raw))


def unpack_matched(raw: bytes) -> list[tuple[MatchedEvent, bytes | None]]:
    """The matched events of one ``matched-events`` record (an envelope, or one event), in order."""
    return _items(_decode_matched_record(raw))


def unpack_trades(raw: bytes) -> list[tuple[TradeExecution, bytes | None]]:
    """The trade executions of one ``trade-execution`` record (an envelope, or one execution), in order."""
    return _items(_decode_trades_record(raw))


def unpack_output(raw: bytes) -> list[tuple[MatchedEvent | TradeExecution, bytes | None]]:
    """The messages of a record of either matcher output topic, in order."""
    return _items(_decode_output_record(raw))
