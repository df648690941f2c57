"""The seeded order flow every benchmark uses: 70% limits around the mid, 20% cancels of live orders,
10% marketable (MARKET) orders, over one or more symbols.

Which orders are live is known while generating, by running the flow through ``bench/reference_book.py``
(one book per symbol), so every cancel names an order that is still resting when it arrives. Self-trade
prevention is off (``StpMode.NONE``) and budgets never bind, so ``services.matcher.book.Book`` and the
reference must make the same fills: the core benchmark checks that they do.

Sizes pass the default markets' filters (>= 5 USDT notional), so the same flow also serves as
``NewOrderRequest`` messages for the order processor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from shared.domain import Market, OrderType, Side, StpMode, TimeInForce
from shared.messages import AcceptedOrder, CancelOrder, CancelRequest, NewOrderRequest

from .reference_book import ReferenceBook

MID_TICKS = {"BTCUSDT": 5_000_000, "ETHUSDT": 300_000}  # 50000.00 and 3000.00 at tick 0.01
DEFAULT_MID = 5_000_000
LIMIT_SHARE, CANCEL_SHARE = 0.70, 0.20  # the rest are MARKET orders
BIG_BUDGET = 10**15


@dataclass(frozen=True, slots=True)
class Op:
    """One event of the flow, in the reference book's terms."""

    kind: int  # 0 limit, 1 market, 2 cancel
    symbol: str
    order_id: int
    user_id: int
    side: Side
    price: int  # ticks; 0 for market and cancel
    lots: int


LIMIT, MARKET, CANCEL = 0, 1, 2


def generate(n: int, seed: int = 7, symbols: tuple[str, ...] = ("BTCUSDT",), users: list[int] | None = None,
             cancel_share: float = CANCEL_SHARE, market_share: float | None = None) -> tuple[list[Op], int]:
    """``n`` events and the number of fills the reference made while generating them."""
    rng = random.Random(seed)
    users = users or list(range(1, 1001))
    market_share = 1 - LIMIT_SHARE - CANCEL_SHARE if market_share is None else market_share
    books = {s: ReferenceBook() for s in symbols}
    live: dict[str, list[int]] = {s: [] for s in symbols}
    owner: dict[int, int] = {}
    ops: list[Op] = []
    fills = 0
    next_id = 1
    for _ in range(n):
        symbol = symbols[rng.randrange(len(symbols))]
        book = books[symbol]
        r = rng.random()
        if r < cancel_share:
            ids = live[symbol]
            cancelled = False
            while ids and not cancelled:
                i = rng.randrange(len(ids))
                oid = ids[i]
                ids[i] = ids[-1]
                ids.pop()
                cancelled = book.cancel(oid)  # False: filled since it rested
            if cancelled:
                ops.append(Op(CANCEL, symbol, oid, owner[oid], Side.BUY, 0, 0))
                continue
            # nothing live on this symbol: the event becomes a limit order (r < cancel_share < limit bound)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        lots = rng.randint(20, 200)
        user = users[rng.randrange(len(users))]
        oid = next_id
        next_id += 1
        owner[oid] = user
        if r < 1 - market_share:
            mid = MID_TICKS.get(symbol, DEFAULT_MID)
            d = int(rng.expovariate(1 / 15)) - 2  # mostly passive; a few cross the spread
            price = mid - d if side is Side.BUY else mid + d
            fills += len(book.limit(oid, side, price, lots))
            if book._where.get(oid) is not None:
                live[symbol].append(oid)
            ops.append(Op(LIMIT, symbol, oid, user, side, price, lots))
        else:
            fills += len(book.market(oid, side, lots))
            ops.append(Op(MARKET, symbol, oid, user, side, 0, lots))
    return ops, fills


def to_commands(ops: list[Op], ts: int = 1_700_000_000_000) -> list[AcceptedOrder | CancelOrder]:
    """The ops as ``validated-orders`` commands; ``src_offset`` is the position in the flow."""
    out: list[AcceptedOrder | CancelOrder] = []
    for i, op in enumerate(ops):
        if op.kind == CANCEL:
            out.append(CancelOrder(src_partition=0, src_offset=i, request_id=10**12 + i, order_id=op.order_id,
                                   user_id=op.user_id, symbol=op.symbol, ts=ts))
        elif op.kind == LIMIT:
            budget = op.price * op.lots if op.side is Side.BUY else op.lots
            out.append(AcceptedOrder(src_partition=0, src_offset=i, order_id=op.order_id, user_id=op.user_id,
                                     symbol=op.symbol, side=op.side, type=OrderType.LIMIT, tif=TimeInForce.GTC,
                                     price_ticks=op.price, qty_lots=op.lots, budget=budget,
                                     client_order_id=f"b{op.order_id}", stp=StpMode.NONE, ts=ts))
        else:
            budget = BIG_BUDGET if op.side is Side.BUY else op.lots
            out.append(AcceptedOrder(src_partition=0, src_offset=i, order_id=op.order_id, user_id=op.user_id,
                                     symbol=op.symbol, side=op.side, type=OrderType.MARKET, tif=TimeInForce.IOC,
                                     qty_lots=op.lots, budget=budget, client_order_id=f"b{op.order_id}",
                                     stp=StpMode.NONE, ts=ts))
    return out


def to_requests(ops: list[Op], markets: dict[str, Market], ts: int,
                id_base: int = 1) -> list[NewOrderRequest | CancelRequest]:
    """The ops as ``order-requests`` messages (decimal strings, as ingestion publishes them)."""
    out: list[NewOrderRequest | CancelRequest] = []
    for i, op in enumerate(ops):
        m = markets[op.symbol]
        if op.kind == CANCEL:
            out.append(CancelRequest(request_id=id_base + 10**9 + i, user_id=op.user_id, symbol=op.symbol,
                                     order_id=id_base + op.order_id, ts=ts))
            continue
        qty = _plain(m.lots_to_qty(op.lots))
        if op.kind == LIMIT:
            out.append(NewOrderRequest(order_id=id_base + op.order_id, user_id=op.user_id, symbol=op.symbol,
                                       side=op.side, type=OrderType.LIMIT, tif=TimeInForce.GTC,
                                       price=_plain(m.ticks_to_price(op.price)), quantity=qty,
                                       client_order_id=f"b{id_base + op.order_id}", ts=ts))
        else:
            out.append(NewOrderRequest(order_id=id_base + op.order_id, user_id=op.user_id, symbol=op.symbol,
                                       side=op.side, type=OrderType.MARKET, tif=TimeInForce.IOC, quantity=qty,
                                       client_order_id=f"b{id_base + op.order_id}", ts=ts))
    return out


def _plain(d: Decimal) -> str:
    return format(d.normalize(), "f")


def mix(ops: list[Op]) -> dict[str, int]:
    kinds = {LIMIT: "limit", MARKET: "market", CANCEL: "cancel"}
    out = {v: 0 for v in kinds.values()}
    for op in ops:
        out[kinds[op.kind]] += 1
    return out
