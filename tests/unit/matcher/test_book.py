"""For any command flow the book agrees with the slow model, never rests crossed, and keeps its books.

A flow is a list of plain tuples (``ops``) that ``Flow.command`` turns into matcher commands with rising
source offsets and fresh order ids; cancels pick live, dead, unknown or someone else's orders, and ``dup``
re-sends an earlier command. Prices sit in a narrow band and three users trade, so orders cross and
self-trade often. After every step the checks in ``check_step`` run; each failure found becomes an
``@example``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.reference_book import ReferenceBook as BenchBook
from services.matcher import book as book_module
from services.matcher.book import COMPACT_SLACK, Book, RestingOrder
from shared.binance import execution_report
from shared.domain import CancelRestriction, ExecType, Market, OrderStatus, OrderType, Side, StpMode, TimeInForce
from shared.messages import (
    AcceptedOrder,
    AcceptedStop,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    LevelDelta,
    MarketChange,
    MatchedEvent,
    MatcherCommand,
    OrderListCommand,
    OrderUpdate,
    RejectedOrder,
    StopState,
    Trade,
    decode_matched,
    encode,
    spec_of,
)
from tests.unit.matcher.reference_book import ReferenceBook

# Odd fee rates and a small step so fee rounding (down) is exercised on both sides of a trade.
MARKET = Market(
    symbol="BTCUSDT",
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_price=Decimal("0.01"),
    max_price=Decimal("1000000"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("1000"),
    min_notional=Decimal("0"),
    maker_fee_bps=3,
    taker_fee_bps=7,
)
USERS = 3
UNKNOWN_ID = 10**9  # no flow ever issues an order id this high
C = TypeVar("C", AcceptedOrder, CancelOrder, RejectedOrder)


# --- building commands ----------------------------------------------------------------------------------
@dataclass
class Flow:
    """Turns ops into commands: offsets rise by one, order ids are fresh, history allows redeliveries.

    With ``scramble`` the ids do not follow arrival (1 + 389k mod 1009: distinct for 1009 orders), so nothing
    can lean on id order where arrival order is meant.
    """

    scramble: bool = False
    offset: int = 0
    issued: int = 0
    owner: dict[int, int] = field(default_factory=dict)
    history: list[MatcherCommand] = field(default_factory=list)

    def _next(self) -> dict:
        self.offset += 1
        return {"src_partition": 0, "src_offset": self.offset, "symbol": MARKET.symbol, "ts": 1000 + self.offset}

    def _order_id(self, user: int) -> int:
        order_id = 1 + (self.issued * 389) % 1009 if self.scramble else 1 + self.issued
        self.issued += 1
        self.owner[order_id] = user
        return order_id

    def _keep(self, command: C) -> C:
        self.history.append(command)
        return command

    def limit(
        self,
        user: int,
        side: Side,
        price: int,
        qty: int,
        tif: TimeInForce = TimeInForce.GTC,
        stp: StpMode = StpMode.EXPIRE_MAKER,
        type: OrderType = OrderType.LIMIT,
        iceberg: int = 0,
        tier: tuple[int, int] = (-1, -1),
    ) -> AcceptedOrder:
        """A LIMIT or LIMIT_MAKER holding exactly what it could need: price*qty for a BUY, qty for a SELL;
        ``iceberg``: the slice an iceberg shows (0: not one)."""
        order_id = self._order_id(user)
        budget = price * qty if side is Side.BUY else qty
        return self._keep(
            AcceptedOrder(
                **self._next(),
                order_id=order_id,
                user_id=user,
                side=side,
                type=type,
                tif=tif,
                price_ticks=price,
                qty_lots=qty,
                budget=budget,
                client_order_id=f"c{order_id}",
                stp=stp,
                iceberg_lots=iceberg,
                maker_bps=tier[0],
                taker_bps=tier[1],
            )
        )

    def market(
        self,
        user: int,
        side: Side,
        budget: int,
        qty: int = 0,
        quote: int = 0,
        stp: StpMode = StpMode.EXPIRE_MAKER,
        tif: TimeInForce = TimeInForce.GTC,
        band: int = 0,
    ) -> AcceptedOrder:
        """``band``: its price-protection limit (``shared.price_band``), 0 for none."""
        order_id = self._order_id(user)
        return self._keep(
            AcceptedOrder(
                **self._next(),
                order_id=order_id,
                user_id=user,
                side=side,
                type=OrderType.MARKET,
                price_ticks=band,
                tif=tif,
                qty_lots=qty,
                quote_nu=quote,
                budget=budget,
                client_order_id=f"c{order_id}",
                stp=stp,
            )
        )

    def stop(
        self,
        user: int,
        side: Side,
        type: OrderType,
        stop: int,
        delta: int,
        price: int,
        qty: int,
        tif: TimeInForce = TimeInForce.GTC,
        stp: StpMode = StpMode.EXPIRE_MAKER,
        iceberg: int = 0,
        tier: tuple[int, int] = (-1, -1),
    ) -> AcceptedStop:
        """A conditional order; a *_LIMIT holds price*qty (BUY), a MARKET-like BUY its qty at the band's 110;
        ``iceberg``: the slice a *_LIMIT GTC shows once triggered and resting; ``tier``: its owner's rates."""
        order_id = self._order_id(user)
        limit = type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
        budget = (price if limit else 110) * qty if side is Side.BUY else qty
        return self._keep(
            AcceptedStop(
                **self._next(),
                order_id=order_id,
                user_id=user,
                side=side,
                type=type,
                tif=tif if limit else TimeInForce.IOC,
                price_ticks=price,
                qty_lots=qty,
                budget=budget,
                client_order_id=f"c{order_id}",
                stp=stp,
                stop_ticks=stop,
                trailing_delta=delta,
                iceberg_lots=iceberg,
                maker_bps=tier[0],
                taker_bps=tier[1],
            )
        )

    def cancel(self, user: int, order_id: int, restriction: CancelRestriction | None = None) -> CancelOrder:
        src = self._next()
        request_id = 10**6 + src["src_offset"]
        return self._keep(
            CancelOrder(**src, request_id=request_id, order_id=order_id, user_id=user, restriction=restriction)
        )

    def amend(self, user: int, order_id: int, qty: int) -> AmendOrder:
        src = self._next()
        request_id = 10**6 + src["src_offset"]
        return self._keep(
            AmendOrder(
                **src,
                request_id=request_id,
                order_id=order_id,
                user_id=user,
                qty_lots=qty,
                client_order_id=f"a{request_id}",
            )
        )

    def cancel_all(self, user: int) -> CancelAllOrders:
        """Every open order of ``user`` (0: of everyone)."""
        src = self._next()
        self.history.append(command := CancelAllOrders(**src, request_id=10**6 + src["src_offset"], user_id=user))
        return command

    def fees(self, maker_bps: int, taker_bps: int) -> MarketChange:
        """The market's row with new fees (``spot admin market update``)."""
        src = self._next()
        row = spec_of(replace(MARKET, maker_fee_bps=maker_bps, taker_fee_bps=taker_bps))
        self.history.append(command := MarketChange(**src, request_id=10**6 + src["src_offset"], market=row))
        return command

    def reject(self, user: int, side: Side) -> RejectedOrder:
        order_id = self._order_id(user)
        return self._keep(
            RejectedOrder(
                **self._next(),
                order_id=order_id,
                user_id=user,
                side=side,
                type=OrderType.LIMIT,
                tif=TimeInForce.GTC,
                price_ticks=100,
                qty_lots=1,
                client_order_id=f"c{order_id}",
                code=-2010,
                msg="Account has insufficient balance for requested action.",
            )
        )

    def order_list(
        self, user: int, contingency: str, working: int, legs: list[AcceptedOrder], refused: bool = False
    ) -> OrderListCommand:
        """An order list of ``legs`` (built by the other methods, whose offsets it passes); ``refused``: the
        processor refused it (every leg REJECTED)."""
        list_id = self._order_id(user)
        rejected = []
        if refused:
            rejected = [
                RejectedOrder(
                    **{f: getattr(a, f) for f in ("src_partition", "src_offset", "order_id", "user_id", "symbol")},
                    side=a.side,
                    type=a.type,
                    tif=a.tif,
                    price_ticks=a.price_ticks,
                    qty_lots=a.qty_lots,
                    client_order_id=a.client_order_id,
                    code=-2010,
                    msg="Account has insufficient balance for requested action.",
                    ts=a.ts,
                )
                for a in legs
            ]
        return self._keep(
            OrderListCommand(
                **self._next(),
                list_id=list_id,
                user_id=user,
                contingency=contingency,
                list_client_id=f"l{list_id}",
                working=working,
                orders=[] if refused else legs,
                rejected=rejected,
            )
        )

    def leg(self, user: int, side: Side, spec: tuple) -> AcceptedOrder:
        """One leg from ``spec``: ("maker", price), ("limit", price, tif), ("market", band), or a stop: (type,
        stop, delta, price)."""
        kind = spec[0]
        qty = spec[-1]
        if kind == "maker":
            return self.limit(user, side, spec[1], qty, type=OrderType.LIMIT_MAKER)
        if kind == "limit":
            return self.limit(user, side, spec[1], qty, spec[2])
        if kind == "market":
            return self.market(user, side, (110 * qty) if side is Side.BUY else qty, qty, band=spec[1])
        otype, stop, delta, price = spec[:4]
        return self.stop(user, side, otype, stop, delta, price, qty)

    def command(self, op: tuple, live: list[int]) -> MatcherCommand:
        """One op; ``live`` are the ids resting now (for cancels of live orders)."""
        kind, *args = op
        if kind == "limit":
            user, side, tif, price, qty, stp, *tier = args
            return self.limit(user, side, price, qty, tif, stp, tier=tier[0] if tier else (-1, -1))
        if kind == "iceberg":
            user, side, price, qty, part, stp, maker = args
            kind_of = OrderType.LIMIT_MAKER if maker else OrderType.LIMIT
            return self.limit(user, side, price, qty, TimeInForce.GTC, stp, kind_of, iceberg=max(1, part % qty))
        if kind == "maker":
            user, side, price, qty, stp = args
            return self.limit(user, side, price, qty, TimeInForce.GTC, stp, OrderType.LIMIT_MAKER)
        if kind == "market":
            user, side, tif, qty, quote, budget, stp, *band = args
            return self.market(user, side, budget, qty, quote, stp, tif, band[0] if band else 0)
        if kind == "stop":
            user, side, otype, stop, delta, price, qty, tif, stp, part, tier = args
            limit = otype in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
            iceberg = part % qty if limit and tif is TimeInForce.GTC and qty > 1 else 0  # a valid one or none
            return self.stop(user, side, otype, stop, delta, price, qty, tif, stp, iceberg, tier)
        if kind == "cancel":
            which, pick, foreign, *restricted = args
            candidates = {"live": live, "any": sorted(self.owner), "unknown": []}[which]
            order_id = candidates[pick % len(candidates)] if candidates else UNKNOWN_ID + pick
            user = self.owner.get(order_id, 1)
            return self.cancel(user % USERS + 1 if foreign else user, order_id, *restricted)
        if kind == "fees":
            maker_bps, taker_bps = args
            return self.fees(maker_bps, taker_bps)
        if kind == "cancel_all":
            (user,) = args
            return self.cancel_all(user)
        if kind == "amend":
            which, pick, foreign, qty = args
            candidates = {"live": live, "any": sorted(self.owner), "unknown": []}[which]
            order_id = candidates[pick % len(candidates)] if candidates else UNKNOWN_ID + pick
            user = self.owner.get(order_id, 1)
            return self.amend(user % USERS + 1 if foreign else user, order_id, qty)
        if kind == "reject":
            user, side = args
            return self.reject(user, side)
        if kind == "oco":  # legs below, then above; a SELL's upper leg is its limit, a BUY's its stop
            user, side, upper, lower, qty, refused = args
            above, below = (upper, lower) if side is Side.SELL else (lower, upper)
            legs = [self.leg(user, side, (*below, qty)), self.leg(user, side, (*above, qty))]
            return self.order_list(user, "OCO", 2, legs, refused)
        if kind == "oto":
            user, side, working, pending_side, pending, qty = args
            legs = [self.leg(user, side, (*working, qty)), self.leg(user, pending_side, (*pending, qty))]
            return self.order_list(user, "OTO", 1, legs)
        if kind == "otoco":
            user, side, working, pending_side, upper, lower, qty = args
            above, below = (upper, lower) if pending_side is Side.SELL else (lower, upper)
            legs = [self.leg(user, side, (*working, qty))]
            legs += [self.leg(user, pending_side, (*below, qty)), self.leg(user, pending_side, (*above, qty))]
            return self.order_list(user, "OTOCO", 1, legs)
        if kind == "dup" and self.history:
            (back,) = args
            return self.history[-1 - back % len(self.history)]  # its offset is not past the last applied
        return self.reject(1, Side.BUY)


# --- strategies -----------------------------------------------------------------------------------------
users = st.integers(1, USERS)
sides = st.sampled_from(Side)
prices = st.integers(97, 103)  # narrow: orders cross often
stps = st.sampled_from(StpMode)


@st.composite
def market_ops(draw: st.DrawFn) -> tuple:
    """MARKET by qty or by quote; budgets from the exact hold down to a binding one."""
    side = draw(sides)
    qty, quote = (0, draw(st.integers(50, 1500))) if draw(st.booleans()) else (draw(st.integers(1, 12)), 0)
    if side is Side.BUY:
        full = quote or qty * 103
        budget = draw(st.one_of(st.just(full), st.integers(1, full)))
    else:
        budget = draw(st.one_of(st.just(qty), st.integers(1, qty))) if qty else draw(st.integers(1, 15))
    band = draw(st.one_of(st.just(0), prices))  # 0: no price protection (before a market's first trade)
    return ("market", draw(users), side, draw(st.sampled_from(TimeInForce)), qty, quote, budget, draw(stps), band)


lots = st.integers(1, 8)
resting_limits = st.tuples(st.just("limit"), users, sides, st.just(TimeInForce.GTC), prices, lots, stps)
icebergs = st.tuples(
    st.just("iceberg"), users, sides, prices, st.integers(2, 12), st.integers(1, 11), stps, st.booleans()
)
tiers = st.tuples(st.integers(-1, 60), st.integers(-1, 60))  # a fee tier's (maker, taker) bps; -1: the market's
STOP_TYPES = [OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT]


@st.composite
def stop_ops(draw: st.DrawFn) -> tuple:
    """A conditional order: a stop price in the band, a trailing delta of 0.1-3% (BIPS), or both; a *_LIMIT's
    price in the band, a MARKET-like one's its protection limit (0: none)."""
    otype = draw(st.sampled_from(STOP_TYPES))
    stop, delta = draw(
        st.one_of(
            st.tuples(prices, st.just(0)),
            st.tuples(st.just(0), st.integers(10, 300)),
            st.tuples(prices, st.integers(10, 300)),
        )
    )
    limit = otype in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
    price = draw(prices) if limit else draw(st.sampled_from([0, 0, 95, 105]))
    tif = draw(st.sampled_from(TimeInForce)) if limit else TimeInForce.IOC
    part = draw(st.integers(0, 7))  # an iceberg slice for a *_LIMIT GTC (0: none), and a fee tier
    return ("stop", draw(users), draw(sides), otype, stop, delta, price, draw(lots), tif, draw(stps), part, draw(tiers))


deltas = st.sampled_from([0, 0, 0, 50, 200])
upper_legs = st.one_of(  # a SELL OCO's above leg, a BUY's below: a LIMIT_MAKER or a take-profit
    st.tuples(st.just("maker"), prices),
    st.tuples(st.just(OrderType.TAKE_PROFIT_LIMIT), prices, deltas, prices),
    st.tuples(st.just(OrderType.TAKE_PROFIT), prices, deltas, st.just(0)),
)
lower_legs = st.one_of(  # the other leg: a stop-loss
    st.tuples(st.just(OrderType.STOP_LOSS_LIMIT), prices, deltas, prices),
    st.tuples(st.just(OrderType.STOP_LOSS), prices, deltas, st.sampled_from([0, 105])),
)
working_legs = st.one_of(
    st.tuples(st.just("limit"), prices, st.just(TimeInForce.GTC)),
    st.tuples(st.just("limit"), prices, st.sampled_from(TimeInForce)),
    st.tuples(st.just("maker"), prices),
)
pending_legs = st.one_of(
    working_legs, st.tuples(st.just("market"), st.sampled_from([0, 95, 105])), upper_legs, lower_legs
)
list_ops = st.one_of(
    st.tuples(st.just("oco"), users, sides, upper_legs, lower_legs, lots, st.booleans().map(lambda b: b and False)),
    st.tuples(st.just("oco"), users, sides, upper_legs, lower_legs, lots, st.booleans()),
    st.tuples(st.just("oto"), users, sides, working_legs, sides, pending_legs, lots),
    st.tuples(st.just("otoco"), users, sides, working_legs, sides, upper_legs, lower_legs, lots),
)

ops = st.one_of(  # listed twice: drawn twice as often, so books grow deep enough to walk several levels
    resting_limits,
    resting_limits,
    st.tuples(st.just("limit"), users, sides, st.sampled_from(TimeInForce), prices, lots, stps, tiers),
    icebergs,
    st.tuples(st.just("limit"), users, sides, st.sampled_from(TimeInForce), prices, lots, stps),
    st.tuples(st.just("maker"), users, sides, prices, lots, stps),
    market_ops(),
    market_ops(),
    st.tuples(st.just("cancel"), st.sampled_from(["live", "any", "unknown"]), st.integers(0, 50), st.booleans()),
    st.tuples(
        st.just("cancel"),
        st.just("live"),
        st.integers(0, 50),
        st.just(False),
        st.sampled_from([None, *CancelRestriction]),
    ),
    st.tuples(st.just("amend"), st.sampled_from(["live", "live", "any"]), st.integers(0, 50), st.booleans(), lots),
    st.tuples(st.just("reject"), users, sides),
    st.tuples(st.just("dup"), st.integers(0, 5)),
    st.tuples(st.just("cancel_all"), st.integers(0, USERS)),  # 0: every owner's (a halt's)
    st.tuples(st.just("fees"), st.integers(0, 50), st.integers(0, 50)),  # a live market update
    stop_ops(),
    stop_ops(),
)


# --- invariants -----------------------------------------------------------------------------------------
@dataclass
class Ledger:
    """What every order did, summed from trades and last updates, across the whole flow."""

    placed: dict[int, AcceptedOrder] = field(default_factory=dict)
    lots: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    nu: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    prevented: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))  # DECREMENT / TRANSFER


def snapshot(book: Book) -> Book:
    """A restarted book: state and orders through the wire format, as the Redis snapshot keeps them."""
    held = [*book.orders(), *book.stops(), *book.lists()]
    orders = msgspec.msgpack.decode(msgspec.msgpack.encode(held), type=list[RestingOrder])
    state = msgspec.structs.replace(book.state)
    restored = Book(book.market, state=state)  # the row Postgres has now, as a restarted matcher loads it
    restored.restore(orders)
    return restored


def levels_of(book: Book, side: Side) -> list[tuple[int, int]]:
    totals: defaultdict[int, int] = defaultdict(int)
    for o in book.orders():
        if o.side is side:
            totals[o.price_ticks] += o.remaining
    return sorted(totals.items(), reverse=side is Side.BUY)


def check_last_updates(book: Book, event: MatchedEvent | None) -> None:
    """An order that left the book says so: its last update in the step is terminal, and open if it rests."""
    if event is None:
        return
    resting = {o.order_id for o in [*book.orders(), *book.stops(), *book.lists()]}
    for order_id, u in {u.order_id: u for u in event.updates}.items():
        assert u.status.is_open == (order_id in resting), (
            f"order {order_id} {'rests' if order_id in resting else 'left the book'} but its last update "
            f"says {u.status} (book.py bug: a quote-sized taker completed after an STP maker expiry "
            f"is never reported FILLED); updates={event.updates}"
        )


def check_step(
    book: Book,
    model: ReferenceBook,
    command: MatcherCommand,
    event: MatchedEvent | None,
    expected: MatchedEvent | None,
    ledger: Ledger,
) -> None:
    resting = {o.order_id: o for o in book.orders()}
    assert event == expected, f"Book and ReferenceBook differ on {command}"
    assert book_module._NO_TRADES == [], "an event's shared empty trade list was appended to"
    if event is None:
        return

    if isinstance(command, AcceptedOrder):
        ledger.placed[command.order_id] = command
    if isinstance(command, OrderListCommand):
        for leg in command.orders:
            ledger.placed[leg.order_id] = leg
    trades = {t.trade_id: t for t in event.trades}
    for u in event.updates:  # in order: each update's totals are the sum of the order's trades so far
        if u.exec_type is ExecType.TRADE:
            t = trades.pop(u.trade_id)  # a trade is reported once, to the maker then the taker
            is_buyer = t.buyer_is_maker == u.is_maker
            assert u.order_id == (t.buyer_order_id if is_buyer else t.seller_order_id), u
            assert (u.last_lots, u.last_ticks) == (t.qty_lots, t.price_ticks), u
            ledger.lots[u.order_id] += t.qty_lots
            ledger.nu[u.order_id] += t.qty_lots * t.price_ticks
            if u.is_maker:
                trades[u.trade_id] = t  # the taker's update comes next
        if u.exec_type is ExecType.TRADE_PREVENTION and u.last_prevented_lots:
            ledger.prevented[u.order_id] += u.last_prevented_lots
            assert u.prevented_lots == ledger.prevented[u.order_id], u
        if u.exec_type is not ExecType.REJECTED:
            assert (u.executed_lots, u.cum_nu) == (ledger.lots[u.order_id], ledger.nu[u.order_id]), u
    assert not trades, f"trades without their maker and taker updates: {trades}"
    for order_id in {o for t in event.trades for o in (t.buyer_order_id, t.seller_order_id)}:
        a = ledger.placed[order_id]
        done_lots, done_nu = ledger.lots[order_id], ledger.nu[order_id]
        if a.qty_lots:
            done_lots += ledger.prevented[order_id]  # a prevented lot is never traded
            assert done_lots <= a.qty_lots, f"order {order_id} overfilled: {done_lots} of {a.qty_lots}"
        else:
            assert done_nu <= a.quote_nu, f"order {order_id} overspent its quote: {done_nu} of {a.quote_nu}"
        spent = ledger.nu[order_id] if a.side is Side.BUY else ledger.lots[order_id]
        assert spent <= a.budget, f"order {order_id} {a.side} spent {spent} of budget {a.budget}"

    for o in resting.values():
        assert 0 < o.remaining + o.hidden == o.qty_lots - o.executed_lots - ledger.prevented[o.order_id], o
        assert o.remaining <= o.iceberg_lots if o.iceberg_lots else not o.hidden, o  # an iceberg shows one slice
        assert (o.executed_lots, o.cum_nu) == (ledger.lots[o.order_id], ledger.nu[o.order_id]), o
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is None or ask is None or bid < ask, f"book rests crossed: bid {bid} >= ask {ask}"
    for side in Side:
        assert book.depth(side) == levels_of(book, side) == model.depth(side), side
    now = {(side, p): lots for side in Side for p, lots in book.depth(side)}
    assert len({(d.side, d.price_ticks) for d in event.deltas}) == len(event.deltas), event.deltas
    for d in event.deltas:
        assert d.lots == now.get((d.side, d.price_ticks), 0), d
    state, orders = model.snapshot()
    assert book.state == state, "seq, trade ids or source position differ from the model"
    held = [*book.orders(), *book.stops(), *book.lists()]
    assert sorted(map(msgspec.structs.astuple, held)) == sorted(map(msgspec.structs.astuple, orders))
    assert book.state_hash() == model.state_hash()


def run_flow(flow_ops: list[tuple], restart_at: int = -1) -> list[MatchedEvent | None]:
    """Apply ``flow_ops`` to Book and model with every check; from ``restart_at`` on, a restored copy too."""
    book, model, flow, ledger = Book(MARKET), ReferenceBook(MARKET), Flow(scramble=True), Ledger()
    pairs: list[list[int]] = []  # the OCO pairs placed (an OCO's legs, an OTOCO's pending pair)
    restored: Book | None = None
    events = []
    for i, op in enumerate(flow_ops):
        if i == restart_at:
            restored = snapshot(book)
            assert restored.state_hash() == book.state_hash()
        command = flow.command(op, sorted(o.order_id for o in [*book.orders(), *book.stops(), *book.lists()]))
        ts = command.ts + 7
        event = book.apply(command, ts)
        check_last_updates(book, event)
        check_step(book, model, command, event, model.apply(command, ts), ledger)
        if restored is not None:
            assert restored.apply(command, ts) == event, f"restored book differs on {command}"
            assert restored.state_hash() == book.state_hash()
        events.append(event)
        if isinstance(command, OrderListCommand) and command.orders and command.contingency in ("OCO", "OTOCO"):
            pairs.append([leg.order_id for leg in command.orders[-2:]])
        for pair in pairs:  # an OCO pair never fills both its legs
            assert min(ledger.lots[i] for i in pair) == 0, f"both legs of an OCO pair traded: {pair}"
    return events


B, S = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
EM, ET, EB, NONE = StpMode.EXPIRE_MAKER, StpMode.EXPIRE_TAKER, StpMode.EXPIRE_BOTH, StpMode.NONE
DEC, TRANSFER = StpMode.DECREMENT, StpMode.TRANSFER


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_ops=st.lists(ops, min_size=5, max_size=80), restart_at=st.integers(0, 80))
# found by hypothesis: a quote-sized MARKET completes (quote left < next ask) right after an EXPIRE_MAKER
# expiry; Book leaves its last update PARTIALLY_FILLED and never reports FILLED
@example(
    flow_ops=[
        ("limit", 2, S, GTC, 100, 1, EM),
        ("limit", 1, S, GTC, 100, 1, EM),
        ("limit", 2, S, GTC, 100, 1, EM),
        ("market", 1, B, IOC, 0, 150, 150, EM),
    ],
    restart_at=0,
)
def test_book_matches_reference_and_keeps_invariants(flow_ops: list[tuple], restart_at: int) -> None:
    run_flow(flow_ops, restart_at)


def _limits_at(bid: st.SearchStrategy[int], ask: st.SearchStrategy[int]) -> st.SearchStrategy[tuple]:
    """GTC limit orders whose price comes from ``bid`` for a buy and ``ask`` for a sell."""
    return sides.flatmap(
        lambda side: st.tuples(
            st.just("limit"),
            users,
            st.just(side),
            st.just(TimeInForce.GTC),
            bid if side is Side.BUY else ask,
            lots,
            stps,
        )
    )


# passive books only takers cross: one deep level a side at the touch, where cancels leave dead entries behind
# live ones, and many shallow levels behind it, which cancels empty while a live level stays on top
deep_limits = _limits_at(st.just(99), st.just(101))
wide_limits = _limits_at(st.integers(80, 98), st.integers(102, 120))
cancel_live = st.tuples(st.just("cancel"), st.just("live"), st.integers(0, 50), st.just(False))
churn_ops = st.one_of(
    deep_limits,
    deep_limits,
    wide_limits,
    wide_limits,
    cancel_live,
    cancel_live,
    cancel_live,
    market_ops(),
    st.tuples(st.just("cancel_all"), st.integers(0, USERS)),
)


# stop-heavy flows: conditional orders among crossing limits and market orders, so trades trigger them often,
# trailing ones included, and triggered ones trigger more
stop_flow_ops = st.one_of(
    resting_limits,
    resting_limits,
    resting_limits,
    st.tuples(st.just("limit"), users, sides, st.sampled_from(TimeInForce), prices, lots, stps),
    market_ops(),
    market_ops(),
    stop_ops(),
    stop_ops(),
    stop_ops(),
    st.tuples(st.just("cancel"), st.sampled_from(["live", "any"]), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("cancel_all"), st.integers(0, USERS)),
    st.tuples(st.just("dup"), st.integers(0, 5)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_ops=st.lists(stop_flow_ops, min_size=30, max_size=120), restart_at=st.integers(0, 120))
def test_stops_trigger_at_the_same_trade_in_the_book_and_the_reference(flow_ops: list[tuple], restart_at: int) -> None:
    """Conditional orders trigger at the same trade, in the same order, with the same fills, in the book, in
    the reference and in a book restored from a snapshot taken mid-flow (trailing state included)."""
    run_flow(flow_ops, restart_at)


# list-heavy flows: OCO, OTO and OTOCO lists among crossing orders, stops, cancels (of legs too), mass cancels and
# redeliveries, so legs fill, trigger, self-trade and get canceled in every order
list_flow_ops = st.one_of(
    resting_limits,
    resting_limits,
    st.tuples(st.just("limit"), users, sides, st.sampled_from(TimeInForce), prices, lots, stps),
    market_ops(),
    market_ops(),
    stop_ops(),
    list_ops,
    list_ops,
    list_ops,
    st.tuples(st.just("cancel"), st.sampled_from(["live", "live", "any"]), st.integers(0, 50), st.booleans()),
    st.tuples(
        st.just("cancel"),
        st.just("live"),
        st.integers(0, 50),
        st.just(False),
        st.sampled_from([None, *CancelRestriction]),
    ),
    st.tuples(st.just("amend"), st.just("live"), st.integers(0, 50), st.booleans(), lots),
    st.tuples(st.just("cancel_all"), st.integers(0, USERS)),
    st.tuples(st.just("dup"), st.integers(0, 5)),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_ops=st.lists(list_flow_ops, min_size=10, max_size=100), restart_at=st.integers(0, 100))
def test_order_lists_in_the_book_and_the_reference(flow_ops: list[tuple], restart_at: int) -> None:
    """Order lists (OCO, OTO, OTOCO) among every other command: the book, the reference and a book restored
    mid-flow agree on every event, list statuses and ``g`` included; an OCO pair never trades both legs."""
    run_flow(flow_ops, restart_at)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_ops=st.lists(churn_ops, min_size=5, max_size=80), restart_at=st.integers(0, 80))
def test_book_matches_reference_when_it_compacts_at_every_chance(flow_ops: list[tuple], restart_at: int) -> None:
    """Compaction of a level's queue and of a side's emptied levels changes nothing; forced on every cancel."""
    with mock.patch.object(book_module, "COMPACT_SLACK", -(10**9)):
        run_flow(flow_ops, restart_at)


@pytest.mark.parametrize("side", [B, S])
def test_cancelled_orders_and_emptied_levels_do_not_accumulate(side: Side) -> None:
    """Dead queue entries and emptied levels are compacted away; queues and price order survive it."""
    f = Flow()
    book = Book(MARKET)
    touch, away = 5000, -1 if side is B else 1
    deep = [f.limit(1, side, touch, 1) for _ in range(1000)]
    wide = [f.limit(2, side, touch + away * (1 + i), 1) for i in range(1000)]
    kept = wide[99::100]  # ten levels behind the touch survive
    for c in deep + wide:
        book.apply(c, 0)
    for c in deep[1:-1] + [c for c in wide if c not in kept]:
        event = book.apply(f.cancel(c.user_id, c.order_id), 0)
        assert event is not None and event.error is None
    ladder = book._bids if side is B else book._asks
    assert len(ladder.levels[touch].queue) <= 2 * 2 + COMPACT_SLACK  # dead dropped once they outnumber the live
    live_levels = 1 + len(kept)
    assert len(ladder.levels) == len(ladder.heap) <= live_levels + max(live_levels, COMPACT_SLACK)
    assert book.depth(side) == [(touch, 2)] + [(c.price_ticks, 1) for c in kept]
    taker = book.apply(f.limit(3, side.opposite, touch + away * 2000, 12, stp=NONE), 0)  # sweeps it all
    assert taker is not None
    assert [(t.price_ticks, t.qty_lots) for t in taker.trades] == [(touch, 1), (touch, 1)] + [
        (c.price_ticks, 1) for c in kept
    ]
    maker_ids = [t.seller_order_id if side is S else t.buyer_order_id for t in taker.trades]
    assert maker_ids[:2] == [deep[0].order_id, deep[-1].order_id]  # arrival order within the level
    assert book.depth(side) == [] and book.best_bid() is None and book.best_ask() is None


# --- named examples ---------------------------------------------------------------------------------------
def apply_all(commands: list[MatcherCommand]) -> tuple[Book, list[MatchedEvent | None]]:
    """Apply to a Book and the model, asserting they agree; returns the book and its events."""
    book, model = Book(MARKET), ReferenceBook(MARKET)
    events = []
    for c in commands:
        event = book.apply(c, c.ts)
        assert event == model.apply(c, c.ts), c
        events.append(event)
    return book, events


def statuses(event: MatchedEvent | None) -> list[tuple[int, OrderStatus, ExecType]]:
    assert event is not None
    return [(u.order_id, u.status, u.exec_type) for u in event.updates]


def test_better_price_fills_first_then_arrival_within_a_level() -> None:
    f = Flow()
    book, events = apply_all(
        [f.limit(1, S, 100, 1), f.limit(2, S, 100, 1), f.limit(3, S, 99, 1), f.limit(1, B, 100, 3, stp=NONE)]
    )
    fills = events[-1]
    assert fills is not None
    assert [(t.seller_order_id, t.price_ticks, t.trade_id) for t in fills.trades] == [
        (3, 99, 1),
        (1, 100, 2),
        (2, 100, 3),
    ]
    assert [u.status for u in fills.updates if u.order_id == 4] == [
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert [(d.side, d.price_ticks, d.lots) for d in fills.deltas] == [(S, 99, 0), (S, 100, 0)]
    assert list(book.orders()) == []


def test_fok_fills_all_or_expires_untouched() -> None:
    f = Flow()
    book, events = apply_all(
        [f.limit(1, S, 100, 1), f.limit(2, S, 101, 1), f.limit(3, B, 101, 3, FOK), f.limit(3, B, 101, 2, FOK)]
    )
    expired, filled = events[2], events[3]
    assert statuses(expired) == [(3, OrderStatus.NEW, ExecType.NEW), (3, OrderStatus.EXPIRED, ExecType.EXPIRED)]
    assert expired is not None and expired.trades == [] and expired.deltas == []
    assert filled is not None and [t.qty_lots for t in filled.trades] == [1, 1]
    assert statuses(filled)[-1] == (4, OrderStatus.FILLED, ExecType.TRADE)
    assert list(book.orders()) == []


@pytest.mark.parametrize(
    ("mode", "qty", "trades", "rests"),
    [
        (ET, 2, 0, [1, 2, 3]),
        (EB, 2, 0, [1, 2, 3]),
        (EM, 3, 0, [1, 2, 3]),
        (EM, 2, 2, []),
        (NONE, 3, 3, []),
        (DEC, 2, 0, [1, 2, 3]),  # a prevented lot never fills: the FOK cannot fill whole
        (TRANSFER, 2, 0, [1, 2, 3]),
    ],
)
def test_fok_counts_its_own_orders_as_self_trade_prevention_will_treat_them(
    mode: StpMode, qty: int, trades: int, rests: list
) -> None:
    f = Flow()
    book, events = apply_all(
        [f.limit(2, S, 100, 1), f.limit(1, S, 100, 1), f.limit(2, S, 100, 1), f.limit(1, B, 100, qty, FOK, stp=mode)]
    )
    last = events[-1]
    assert last is not None and len(last.trades) == trades
    assert last.updates[-1].status is (OrderStatus.FILLED if trades else OrderStatus.EXPIRED)
    assert sorted(o.order_id for o in book.orders()) == rests


def test_ioc_remainder_expires_and_never_rests() -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 2), f.limit(2, B, 100, 5, IOC)])
    last = events[-1]
    assert last is not None and last.updates[-1].status is OrderStatus.EXPIRED
    assert (last.updates[-1].executed_lots, last.updates[-1].cum_nu) == (2, 200)
    assert book.best_bid() is None and book.best_ask() is None


def test_limit_maker_that_would_take_is_rejected_and_one_that_would_not_rests() -> None:
    f = Flow()
    book, events = apply_all(
        [
            f.limit(1, S, 100, 1),
            f.limit(2, B, 100, 1, type=OrderType.LIMIT_MAKER),
            f.limit(2, B, 99, 1, type=OrderType.LIMIT_MAKER),
        ]
    )
    rejected = events[1]
    assert rejected is not None and statuses(rejected) == [(2, OrderStatus.REJECTED, ExecType.REJECTED)]
    assert rejected.updates[0].reject_code == -2010 and rejected.trades == []
    assert book.depth(Side.BUY) == [(99, 1)]


def test_market_by_quote_expires_on_an_empty_book_and_fills_when_the_next_lot_no_longer_fits() -> None:
    f = Flow()
    _, events = apply_all([f.market(1, B, budget=250, quote=250, tif=IOC)])
    assert statuses(events[0]) == [(1, OrderStatus.NEW, ExecType.NEW), (1, OrderStatus.EXPIRED, ExecType.EXPIRED)]

    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 5), f.market(2, B, budget=250, quote=250)])
    filled = events[-1]
    assert filled is not None and [t.qty_lots for t in filled.trades] == [2]  # 50 nu left cannot buy one lot
    assert filled.updates[-1].status is OrderStatus.FILLED and filled.updates[-1].cum_nu == 200
    assert book.depth(Side.SELL) == [(100, 3)]


def test_market_sell_by_quote_stops_at_its_lot_budget() -> None:
    f = Flow()
    _, events = apply_all([f.limit(1, B, 100, 5), f.market(2, S, budget=2, quote=1000)])
    last = events[-1]
    assert last is not None and sum(t.qty_lots for t in last.trades) == 2
    assert last.updates[-1].status is OrderStatus.EXPIRED


@pytest.mark.parametrize(
    ("mode", "expected", "rests"),
    [
        (NONE, [(3, "NEW"), (1, "FILLED"), (3, "PARTIALLY_FILLED"), (2, "FILLED"), (3, "FILLED")], []),
        (ET, [(3, "NEW"), (3, "EXPIRED_IN_MATCH")], [1, 2]),
        (EM, [(3, "NEW"), (1, "EXPIRED_IN_MATCH"), (2, "FILLED"), (3, "PARTIALLY_FILLED")], [3]),
        (EB, [(3, "NEW"), (1, "EXPIRED_IN_MATCH"), (3, "EXPIRED_IN_MATCH")], [2]),
        # 1 lot prevented from both: the maker (1 lot) expires, the taker (2) goes on with 1 and fills it
        (DEC, [(3, "NEW"), (1, "EXPIRED_IN_MATCH"), (3, "NEW"), (2, "FILLED"), (3, "FILLED")], []),
        (TRANSFER, [(3, "NEW"), (1, "EXPIRED_IN_MATCH"), (3, "NEW"), (2, "FILLED"), (3, "FILLED")], []),
    ],
)
def test_self_trade_prevention_follows_the_takers_mode(mode: StpMode, expected: list, rests: list) -> None:
    f = Flow()
    book, events = apply_all(
        [f.limit(1, S, 100, 1, stp=StpMode.NONE), f.limit(2, S, 100, 1), f.limit(1, B, 100, 2, stp=mode)]
    )
    last = events[-1]
    assert last is not None and [(u.order_id, u.status) for u in last.updates] == expected
    prevented = [u for u in last.updates if u.status is OrderStatus.EXPIRED_IN_MATCH]
    assert all(u.exec_type is ExecType.TRADE_PREVENTION for u in prevented)
    assert sorted(o.order_id for o in book.orders()) == rests


@pytest.mark.parametrize("mode", [DEC, TRANSFER])
def test_decrement_takes_the_smaller_quantity_from_both_and_expires_the_smaller(mode: StpMode) -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 5), f.limit(1, B, 100, 2, stp=mode), f.limit(1, B, 100, 3, stp=mode)])
    smaller_taker, equal = events[1], events[2]
    assert smaller_taker is not None and smaller_taker.trades == []
    maker, taker = smaller_taker.updates[1:]
    # the maker stays with 3 lots (NEW, its prevented 2), the taker expires with its 2 prevented
    assert (maker.order_id, maker.status, maker.exec_type) == (1, OrderStatus.NEW, ExecType.TRADE_PREVENTION)
    assert (maker.prevented_lots, maker.last_prevented_lots, maker.counter_order_id) == (2, 2, 2)
    assert (taker.order_id, taker.status, taker.exec_type) == (
        2,
        OrderStatus.EXPIRED_IN_MATCH,
        ExecType.TRADE_PREVENTION,
    )
    assert (taker.prevented_lots, taker.last_prevented_lots, taker.counter_order_id) == (2, 2, 1)
    assert maker.prevented_match_id == taker.prevented_match_id == 1
    assert smaller_taker.deltas == [LevelDelta(S, 100, 3)]
    # equal quantities (3 left of the maker, 3 of the taker): both expire, in one prevented match
    assert equal is not None and [(u.order_id, u.status) for u in equal.updates[1:]] == [
        (1, OrderStatus.EXPIRED_IN_MATCH),
        (3, OrderStatus.EXPIRED_IN_MATCH),
    ]
    assert [u.prevented_lots for u in equal.updates[1:]] == [5, 3]
    assert [u.prevented_match_id for u in equal.updates[1:]] == [2, 2]
    assert list(book.orders()) == [] and equal.deltas == [LevelDelta(S, 100, 0)]
    assert book.state.next_prevented_id == 3


def test_a_decremented_maker_fills_its_remaining_lots_to_filled() -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 5), f.limit(1, B, 100, 2, stp=DEC), f.limit(2, B, 100, 3)])
    last = events[-1]
    assert last is not None and [t.qty_lots for t in last.trades] == [3]
    assert (last.updates[1].order_id, last.updates[1].status, last.updates[1].executed_lots) == (
        1,
        OrderStatus.FILLED,
        3,
    )
    assert list(book.orders()) == []


def test_cancel_of_a_foreign_or_closed_order_is_an_unknown_order_error() -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 2), f.cancel(2, 1), f.cancel(1, 1), f.cancel(1, 1)])
    foreign, own, again = events[1:]
    assert foreign is not None and foreign.error is not None and foreign.error.code == -2011
    assert foreign.updates == [] and foreign.seq == 2
    assert statuses(own) == [(1, OrderStatus.CANCELED, ExecType.CANCELED)]
    assert own is not None and [(d.side, d.price_ticks, d.lots) for d in own.deltas] == [(S, 100, 0)]
    assert again is not None and again.error is not None and again.error.code == -2011
    assert list(book.orders()) == []


def test_cancel_all_takes_one_users_orders_out_in_arrival_order_at_one_sequence() -> None:
    f = Flow()
    commands = [f.limit(1, S, 101, 2), f.limit(2, S, 101, 3), f.limit(1, B, 99, 1), f.limit(1, S, 102, 4)]
    book, events = apply_all([*commands, f.cancel_all(1), f.cancel_all(1)])
    mine, again = events[4:]
    assert mine is not None and mine.seq == 5 and mine.error is None
    assert statuses(mine) == [(i, OrderStatus.CANCELED, ExecType.CANCELED) for i in (1, 3, 4)]
    assert [(d.side, d.price_ticks, d.lots) for d in mine.deltas] == [(S, 101, 3), (B, 99, 0), (S, 102, 0)]
    assert again is not None and again.error is not None and again.error.code == -2011 and again.seq == 6
    assert [o.order_id for o in book.orders()] == [2]


def test_cancel_all_of_every_owner_empties_the_book_and_an_empty_book_gives_an_empty_event() -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 101, 2), f.limit(2, B, 99, 3), f.cancel_all(0), f.cancel_all(0)])
    everyone, empty = events[2:]
    assert everyone is not None and [u.order_id for u in everyone.updates] == [1, 2]
    assert empty is not None and empty.error is None and empty.updates == [] and empty.deltas == []
    assert list(book.orders()) == [] and book.best_bid() is None and book.best_ask() is None


def test_a_market_order_with_a_protection_limit_stops_there_and_expires_the_rest() -> None:
    f = Flow()
    asks = [f.limit(1, S, 100, 2), f.limit(1, S, 101, 2), f.limit(1, S, 105, 5)]
    book, events = apply_all([*asks, f.market(2, B, budget=9 * 101, qty=9, band=101), f.market(2, S, 4, qty=4, band=1)])
    bought = events[3]
    assert bought is not None and [(t.price_ticks, t.qty_lots) for t in bought.trades] == [(100, 2), (101, 2)]
    assert bought.updates[-1].status is OrderStatus.EXPIRED and bought.updates[-1].executed_lots == 4
    assert book.depth(S) == [(105, 5)]  # the level past the band is untouched
    nothing = events[4]  # a SELL with nothing to sell into expires untouched, band or not
    assert nothing is not None and statuses(nothing)[-1][1] is OrderStatus.EXPIRED and nothing.trades == []
    _, beyond = apply_all([f.limit(1, S, 105, 1), f.market(2, B, budget=105, qty=1, band=104)])
    assert beyond[1] is not None and beyond[1].trades == [] and statuses(beyond[1])[-1][1] is OrderStatus.EXPIRED


@pytest.mark.parametrize(
    ("restriction", "partly_filled", "canceled"),
    [
        (CancelRestriction.ONLY_NEW, False, True),
        (CancelRestriction.ONLY_NEW, True, False),
        (CancelRestriction.ONLY_PARTIALLY_FILLED, False, False),
        (CancelRestriction.ONLY_PARTIALLY_FILLED, True, True),
        (None, True, True),
    ],
)
def test_cancel_restrictions_follow_the_orders_status_at_its_turn(
    restriction: CancelRestriction | None, partly_filled: bool, canceled: bool
) -> None:
    f = Flow()
    commands = [f.limit(1, S, 100, 3)] + ([f.limit(2, B, 100, 1)] if partly_filled else [])
    book, events = apply_all([*commands, f.cancel(1, 1, restriction)])
    last = events[-1]
    assert last is not None
    if canceled:
        assert last.error is None and statuses(last) == [(1, OrderStatus.CANCELED, ExecType.CANCELED)]
        assert list(book.orders()) == []
    else:
        assert last.error is not None and (last.error.code, last.error.msg) == (
            -2011,
            "Order was not canceled due to cancel restrictions.",
        )
        assert last.updates == [] and last.deltas == [] and [o.order_id for o in book.orders()] == [1]


@pytest.mark.parametrize("mode", list(StpMode))
def test_every_update_of_an_order_carries_the_mode_it_was_placed_with(mode: StpMode) -> None:
    f = Flow()
    _, events = apply_all([f.limit(1, S, 100, 2, stp=mode), f.limit(2, B, 100, 1, stp=mode), f.cancel(1, 1)])
    updates = [u for e in events if e is not None for u in e.updates]
    assert updates and all(u.stp is mode for u in updates), [(u.order_id, u.exec_type, u.stp) for u in updates]
    report = execution_report(MARKET, updates[0], 1)
    assert report["V"] == mode.value


def test_each_prevented_match_has_its_id_on_the_expired_orders_reports_and_in_the_snapshot() -> None:
    f = Flow()
    book, events = apply_all(
        [
            f.limit(1, S, 100, 1),
            f.limit(1, S, 101, 1),
            f.limit(1, B, 101, 1, IOC, stp=StpMode.EXPIRE_MAKER),  # two matches prevented: ids 1 and 2
            f.limit(1, S, 100, 1),
            f.limit(1, B, 100, 1, stp=StpMode.EXPIRE_BOTH),  # one match, both orders expire: id 3
        ]
    )
    makers, both = events[2], events[4]
    assert makers is not None and both is not None
    prevented = [(u.order_id, u.prevented_match_id, u.counter_order_id) for u in makers.updates if u.order_id != 3]
    assert prevented == [(1, 1, 3), (2, 2, 3)]
    assert [(u.order_id, u.prevented_match_id, u.counter_order_id) for u in both.updates[1:]] == [(4, 3, 5), (5, 3, 4)]
    assert all(u.prevented_match_id == -1 for u in events[0].updates)  # type: ignore[union-attr]
    report = execution_report(MARKET, both.updates[-1], 1)
    assert (report["x"], report["v"], report["U"], report["V"]) == ("TRADE_PREVENTION", 3, 4, "EXPIRE_BOTH")
    assert "v" not in execution_report(MARKET, both.updates[0], 1)
    assert book.state.next_prevented_id == 4 and snapshot(book).state.next_prevented_id == 4


def test_amend_keeps_the_orders_place_and_reports_replaced() -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 5), f.limit(2, S, 100, 2), f.amend(1, 1, 3), f.limit(3, B, 100, 3)])
    amended, taken = events[2], events[3]
    assert amended is not None and amended.error is None
    (u,) = amended.updates
    assert (u.order_id, u.status, u.exec_type, u.qty_lots, u.executed_lots) == (
        1,
        OrderStatus.NEW,
        ExecType.REPLACED,
        3,
        0,
    )
    assert (u.client_order_id, u.orig_client_order_id) == (f"a{amended.request_id}", "c1")
    assert [(d.side, d.price_ticks, d.lots) for d in amended.deltas] == [(S, 100, 5)]  # 3 + 2 behind it
    assert taken is not None and [(t.seller_order_id, t.qty_lots) for t in taken.trades] == [(1, 3)]  # first still
    assert [(o.order_id, o.remaining) for o in book.orders()] == [(2, 2)]


@pytest.mark.parametrize(("qty", "msg_part"), [(5, "increase"), (6, "increase"), (2, "executed"), (1, "executed")])
def test_amend_to_no_smaller_or_to_what_it_executed_is_refused(qty: int, msg_part: str) -> None:
    f = Flow()
    book, events = apply_all([f.limit(1, S, 100, 5), f.limit(2, B, 100, 2), f.amend(1, 1, qty)])
    last = events[-1]
    assert last is not None and last.error is not None and last.error.code == -2038 and msg_part in last.error.msg
    assert [(o.order_id, o.qty_lots, o.remaining) for o in book.orders()] == [(1, 5, 3)]


def test_amend_of_a_foreign_or_closed_order_is_order_does_not_exist() -> None:
    f = Flow()
    _, events = apply_all([f.limit(1, S, 100, 5), f.amend(2, 1, 1), f.cancel(1, 1), f.amend(1, 1, 1)])
    for e in (events[1], events[3]):
        assert e is not None and e.error is not None and (e.error.code, e.error.msg) == (-2013, "Order does not exist.")


def test_redelivered_command_is_skipped_without_a_sequence() -> None:
    f = Flow()
    first = f.limit(1, S, 100, 2)
    book, events = apply_all([first, f.reject(2, B), first])
    assert events[2] is None and book.state.seq == 2


def test_quote_market_completed_after_a_self_trade_expiry_is_reported_filled() -> None:
    """Bug in book.py: the taker's fixup to FILLED only looks at ``updates[-1]``."""
    f = Flow()
    commands = [
        f.limit(2, S, 100, 1),
        f.limit(1, S, 100, 1),
        f.limit(2, S, 100, 1),
        f.market(1, B, budget=150, quote=150, stp=StpMode.EXPIRE_MAKER),
    ]
    book = Book(MARKET)
    for c in commands:
        event = book.apply(c, c.ts)
    assert event is not None
    taker = [u for u in event.updates if u.order_id == 4]
    assert taker[-1].status is OrderStatus.FILLED, (
        f"quote-sized MARKET taker bought 1 lot for 100 of 150 nu, expired its own maker, then found 50 nu "
        f"cannot buy a lot: it is done and gone from the book, but its last update says {taker[-1].status}"
    )


def test_state_hash_is_the_same_in_every_process() -> None:
    """Bug in book.py: ``state_hash`` is ``hash()`` over rows holding str enums, salted per process."""
    script = (
        "from shared.domain import Side; from services.matcher.book import Book; "
        "from tests.unit.matcher.test_book import MARKET, Flow; book = Book(MARKET); "
        "book.apply(Flow().limit(1, Side.SELL, 100, 1), 0); print(book.state_hash())"
    )
    root = Path(__file__).resolve().parents[3]
    hashes = {
        seed: subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(set(hashes.values())) == 1, (
        f"the same book hashes differently per process (PYTHONHASHSEED -> state_hash: {hashes}); a snapshot "
        f"restored after a restart can never be checked against the hash taken before it"
    )


def test_restored_book_has_the_same_hash_and_future() -> None:
    f = Flow()
    book, _ = apply_all([f.limit(1, S, 100, 2), f.limit(2, S, 101, 1), f.limit(3, B, 99, 4)])
    restored = snapshot(book)
    assert restored.state_hash() == book.state_hash()
    taker = f.limit(3, B, 101, 3)
    assert restored.apply(taker, 1) == book.apply(taker, 1)
    assert restored.state_hash() == book.state_hash()


def test_updates_and_trades_built_positionally_encode_as_before() -> None:
    """The book builds them with positional fields for speed; field order, and so the JSON key order, is fixed.

    Consumers decode by name, so a reorder is compatible, but one must be deliberate: the book's positional
    calls follow this order."""
    assert OrderUpdate.__struct_fields__ == (
        "order_id", "user_id", "client_order_id", "side", "type", "tif", "price_ticks", "qty_lots", "status",
        "exec_type", "created_ts", "quote_nu", "executed_lots", "cum_nu", "last_lots", "last_ticks", "trade_id",
        "is_maker", "fee", "reject_code", "reason", "orig_client_order_id", "stp", "iceberg_lots",
        "prevented_match_id", "counter_order_id", "prevented_lots", "last_prevented_lots", "stop",
    )  # fmt: skip
    assert MatchedEvent.__struct_fields__ == (
        "symbol", "seq", "ts", "request_id", "updates", "trades", "deltas", "error", "v",
    )  # fmt: skip
    assert Trade.__struct_fields__ == (
        "trade_id", "price_ticks", "qty_lots", "buyer_order_id", "seller_order_id", "buyer_user_id",
        "seller_user_id", "buyer_is_maker", "buyer_fee", "seller_fee", "ts",
    )  # fmt: skip
    update = OrderUpdate(
        1, 2, "c1", S, OrderType.LIMIT, GTC, 100, 3, status=OrderStatus.NEW, exec_type=ExecType.NEW, created_ts=9
    )
    assert encode(update) == (
        b'{"order_id":1,"user_id":2,"client_order_id":"c1","side":"SELL","type":"LIMIT","tif":"GTC",'
        b'"price_ticks":100,"qty_lots":3,"status":"NEW","exec_type":"NEW","created_ts":9,"quote_nu":0,'
        b'"executed_lots":0,"cum_nu":0,"last_lots":0,"last_ticks":0,"trade_id":-1,"is_maker":false,"fee":0,'
        b'"reject_code":0,"reason":"","orig_client_order_id":"","stp":"EXPIRE_MAKER","iceberg_lots":0,'
        b'"prevented_match_id":-1,"counter_order_id":-1,"prevented_lots":0,"last_prevented_lots":0,"stop":null}'
    )
    assert update == OrderUpdate(
        order_id=1, user_id=2, client_order_id="c1", side=S, type=OrderType.LIMIT, tif=GTC, price_ticks=100,
        qty_lots=3, status=OrderStatus.NEW, exec_type=ExecType.NEW, created_ts=9,
    )  # fmt: skip
    event = MatchedEvent("BTCUSDT", 7, 9, 1, [update])
    head = b'{"kind":"matched","symbol":"BTCUSDT","seq":7,"ts":9,"request_id":1,"updates":['
    assert encode(event) == head + encode(update) + b'],"trades":[],"deltas":[],"error":null,"v":1}'
    assert decode_matched(encode(event)) == event
    assert Trade(1, 100, 3, 4, 5, 6, 7, True, 8, 9, 10) == Trade(
        trade_id=1, price_ticks=100, qty_lots=3, buyer_order_id=4, seller_order_id=5, buyer_user_id=6,
        seller_user_id=7, buyer_is_maker=True, buyer_fee=8, seller_fee=9, ts=10,
    )  # fmt: skip


# --- the benchmark's reference agrees with Book where their contracts overlap ------------------------------
bench_ops = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), sides, prices, st.integers(1, 8)),
        st.tuples(st.just("market"), sides, st.integers(1, 12)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(bench_ops)
def test_bench_reference_fills_like_book(flow_ops: list[tuple]) -> None:
    book, bench, flow = Book(MARKET), BenchBook(), Flow()
    for kind, *args in flow_ops:
        if kind == "cancel":
            live = sorted(o.order_id for o in book.orders())
            if not live:
                continue
            order_id = live[args[0] % len(live)]
            event = book.apply(flow.cancel(flow.owner[order_id], order_id), 0)
            assert event is not None and bench.cancel(order_id)
            continue
        if kind == "limit":
            side, price, qty = args
            command = flow.limit(1, side, price, qty, stp=StpMode.NONE)
            fills = bench.limit(command.order_id, side, price, qty)
        else:
            side, qty = args
            budget = qty * 103 if side is Side.BUY else qty  # never binding: the bench book has no budgets
            command = flow.market(1, side, budget=budget, qty=qty, stp=StpMode.NONE)
            fills = bench.market(command.order_id, side, qty)
        event = book.apply(command, 0)
        assert event is not None
        taker_id = command.order_id
        assert [(f.maker_id, f.taker_id, f.price_ticks, f.lots) for f in fills] == [
            (
                t.seller_order_id if t.buyer_order_id == taker_id else t.buyer_order_id,
                taker_id,
                t.price_ticks,
                t.qty_lots,
            )
            for t in event.trades
        ]
        for side in Side:
            assert bench.depth(side) == book.depth(side)


def test_an_iceberg_shows_one_slice_and_its_refill_loses_priority() -> None:
    f = Flow()
    book, events = apply_all(
        [
            f.limit(1, S, 100, 5, iceberg=2),  # shows 2, hides 3
            f.limit(2, S, 100, 1),  # behind its first slice
            f.limit(3, B, 100, 4),  # 2 from the slice, 1 from order 2, then 1 from the refilled slice
            f.limit(4, S, 100, 3),  # behind the refilled slice
            f.limit(3, B, 100, 3),  # the slice's last lot, then order 4 before the iceberg's last slice
        ]
    )
    placed, taker, more = events[0], events[2], events[4]
    assert placed is not None and placed.deltas == [LevelDelta(S, 100, 2)]
    assert placed.updates[0].iceberg_lots == 2
    assert taker is not None
    assert [(t.seller_order_id, t.qty_lots) for t in taker.trades] == [(1, 2), (2, 1), (1, 1)]
    assert all(u.iceberg_lots == (2 if u.order_id == 1 else 0) for u in taker.updates)
    assert taker.deltas == [LevelDelta(S, 100, 1)]  # the rest of its second slice; 1 more lot hidden
    assert more is not None and [(t.seller_order_id, t.qty_lots) for t in more.trades] == [(1, 1), (4, 2)]
    assert book.depth(Side.SELL) == [(100, 2)]  # order 4's last lot and the iceberg's last slice
    assert sorted((o.order_id, o.remaining, o.hidden) for o in book.orders()) == [(1, 1, 0), (4, 1, 0)]


def test_an_iceberg_that_takes_rests_with_one_slice() -> None:
    f = Flow()
    book, _ = apply_all([f.limit(1, S, 100, 2), f.limit(2, B, 100, 9, iceberg=3)])
    assert book.depth(Side.BUY) == [(100, 3)]
    (o,) = book.orders()
    assert (o.remaining, o.hidden, o.iceberg_lots) == (3, 4, 3)
    restored = snapshot(book)
    assert restored.state_hash() == book.state_hash() and restored.depth(Side.BUY) == [(100, 3)]


def test_a_fee_tier_stamped_on_an_order_replaces_the_markets_rate_for_its_side_only() -> None:
    f = Flow()
    _, events = apply_all(
        [
            f.limit(1, S, 100, 10, tier=(20, 40)),  # rests: charged its tier's maker rate, 20 bps
            f.limit(2, B, 100, 4),  # takes at the market's taker rate, 7 bps
            f.limit(3, B, 100, 6, tier=(1, 50)),  # takes at its tier's taker rate; the maker still at 20
        ]
    )
    first, second = events[1], events[2]
    assert first is not None and second is not None
    (t1,), (t2,) = first.trades, second.trades
    apl, apn = MARKET.atoms_per_lot, MARKET.atoms_per_nu
    assert (t1.buyer_fee, t1.seller_fee) == (4 * apl * 7 // 10_000, 400 * apn * 20 // 10_000)
    assert (t2.buyer_fee, t2.seller_fee) == (6 * apl * 50 // 10_000, 600 * apn * 20 // 10_000)


# --- conditional orders (issue 24) ------------------------------------------------------------------------
SL, SLL, TP, TPL = OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT


def _trade_at(book: Book, f: Flow, price: int, ts: int = 5) -> MatchedEvent:
    """One lot traded at ``price`` between users 2 (maker, SELL) and 3 (taker, BUY)."""
    book.apply(f.limit(2, S, price, 1), ts)
    event = book.apply(f.limit(3, B, price, 1), ts)
    assert event is not None and [t.price_ticks for t in event.trades][:1] == [price]
    return event


def test_stop_waits_unworking_then_triggers_as_market_right_after_the_trade_that_meets_it() -> None:
    book, f = Book(MARKET), Flow()
    _trade_at(book, f, 100)
    placed = book.apply(stop := f.stop(1, S, SL, 98, 0, 0, 2), 6)
    assert placed is not None
    (new,) = placed.updates
    assert (new.type, new.status, new.stop, new.tif) == (SL, OrderStatus.NEW, StopState(98), None)
    assert not placed.deltas and book.depth(B) == [] and [o.order_id for o in book.stops()] == [stop.order_id]
    book.apply(f.limit(2, B, 97, 5), 7)  # the bid the triggered stop will sell into
    assert not [u for u in _trade_at(book, f, 99).updates if u.order_id == stop.order_id]  # 99 > 98: waits
    event = _trade_at(book, f, 98, ts=50)
    mine = [u for u in event.updates if u.order_id == stop.order_id]
    assert [(u.exec_type, u.status) for u in mine] == [
        (ExecType.NEW, OrderStatus.NEW),
        (ExecType.TRADE, OrderStatus.FILLED),
    ]
    assert all(u.type is SL and u.stop == StopState(98, working_ts=50) for u in mine)
    assert [t.price_ticks for t in event.trades] == [98, 97]  # the trigger's trade first, then the stop's
    assert list(book.stops()) == [] and book.state.last_ticks == 97
    assert len({(d.side, d.price_ticks) for d in event.deltas}) == len(event.deltas)


def test_stop_met_by_the_last_price_is_rejected_and_the_algo_cap_counts_waiting_stops() -> None:
    book, f = Book(MARKET), Flow()
    _trade_at(book, f, 100)
    event = book.apply(f.stop(1, B, SL, 100, 0, 0, 1), 6)  # a BUY stop-loss waits for >= 100: met already
    assert event is not None and event.updates[0].status is OrderStatus.REJECTED
    assert event.updates[0].reason == "Order would trigger immediately."
    for _ in range(5):
        book.apply(f.stop(1, B, SL, 105, 0, 0, 1), 6)
    event = book.apply(f.stop(1, B, SL, 106, 0, 0, 1), 6)
    assert event is not None and event.updates[0].reason == "Filter failure: MAX_NUM_ALGO_ORDERS"
    assert len(list(book.stops())) == 5


def test_trailing_sell_follows_the_highest_price_and_triggers_delta_below_it_as_its_limit() -> None:
    book, f = Book(MARKET), Flow()
    _trade_at(book, f, 100)
    stop = f.stop(1, S, SLL, 0, 500, 90, 1)  # 5% below the highest since placement, then a LIMIT at 90
    book.apply(stop, 6)
    for price in (104, 102, 110):  # the highest: 110, so it triggers at 104.5 and below
        _trade_at(book, f, price)
    assert [s.trail_ticks for s in book.stops()] == [110]
    assert not [u for u in _trade_at(book, f, 105).updates if u.order_id == stop.order_id]
    event = _trade_at(book, f, 104, ts=77)
    mine = [u for u in event.updates if u.order_id == stop.order_id]
    assert mine[0].exec_type is ExecType.NEW and mine[0].stop == StopState(0, 500, 6, 77)
    assert mine[-1].status is OrderStatus.NEW and mine[-1].type is SLL  # nothing to sell to: it rests
    assert book.order(stop.order_id) is not None and book.depth(S) == [(90, 1)]
    restored = snapshot(book)  # the stop it rests with survives a restart
    assert restored.state_hash() == book.state_hash()
    taker = f.limit(3, B, 90, 1)
    event = book.apply(taker, 80)
    assert event is not None and event == restored.apply(taker, 80)
    (made,) = [u for u in event.updates if u.order_id == stop.order_id]  # its later fill reports it too
    assert (made.status, made.type, made.stop) == (OrderStatus.FILLED, SLL, StopState(0, 500, 6, 77))


def test_trailing_take_profit_starts_trailing_only_once_its_stop_price_is_met() -> None:
    book, f = Book(MARKET), Flow()
    _trade_at(book, f, 100)
    stop = f.stop(1, S, TPL, 105, 300, 95, 1)  # trails from the first trade at or above 105
    book.apply(stop, 6)
    _trade_at(book, f, 103)
    assert [s.trail_ticks for s in book.stops()] == [0]
    _trade_at(book, f, 106, ts=9)
    assert [(s.trail_ticks, s.trail_ts) for s in book.stops()] == [(106, 9)]
    assert book.stops_changed() == [stop.order_id] and book.stops_changed() == []
    event = _trade_at(book, f, 102)  # 102 * 10000 <= 106 * 9700
    assert [u.exec_type for u in event.updates if u.order_id == stop.order_id][:1] == [ExecType.NEW]


def test_untriggered_stop_is_cancelled_alone_and_by_cancel_all() -> None:
    book, f = Book(MARKET), Flow()
    stop = f.stop(1, B, TP, 90, 0, 0, 1)
    book.apply(stop, 6)
    event = book.apply(f.cancel(1, stop.order_id, CancelRestriction.ONLY_PARTIALLY_FILLED), 7)
    assert event is not None and event.error is not None and list(book.stops())
    event = book.apply(f.cancel(1, stop.order_id), 7)
    assert event is not None and [(u.status, u.type, u.stop) for u in event.updates] == [
        (OrderStatus.CANCELED, TP, StopState(90))
    ]
    book.apply(f.stop(1, B, TP, 90, 0, 0, 1), 8)
    event = book.apply(f.cancel_all(1), 9)
    assert event is not None and [u.status for u in event.updates] == [OrderStatus.CANCELED]
    assert list(book.stops()) == []


def test_a_triggered_stop_that_rests_still_counts_as_an_algo_order() -> None:
    book, f = Book(MARKET), Flow()
    _trade_at(book, f, 100)
    rests = f.stop(1, S, SLL, 99, 0, 120, 1)  # triggers at 99, then rests at 120: nothing bids that high
    book.apply(rests, 6)
    _trade_at(book, f, 99)
    assert book.order(rests.order_id) is not None and list(book.stops()) == []
    for _ in range(4):
        book.apply(f.stop(1, B, SL, 110, 0, 0, 1), 7)
    event = book.apply(f.stop(1, B, SL, 111, 0, 0, 1), 8)
    assert event is not None and event.updates[0].reason == "Filter failure: MAX_NUM_ALGO_ORDERS"


# --- conditional orders with the iceberg branch's features (the merge of both) -------------------------------
def test_a_triggered_stop_limit_iceberg_rests_one_slice_at_its_tier_and_survives_restarts() -> None:
    f = Flow()
    first = [f.limit(2, S, 100, 1), f.limit(3, B, 100, 1)]  # the last price: 100
    stop = f.stop(1, S, SLL, 99, 0, 120, 6, iceberg=2, tier=(20, 40))  # then a LIMIT at 120: nobody bids there
    book, events = apply_all([*first, stop])
    placed = events[2]
    assert placed is not None and placed.updates[0].iceberg_lots == 2 and placed.updates[0].stop == StopState(99)
    waiting = snapshot(book)  # a waiting stop keeps its slice and its owner's rates across a restart
    assert waiting.state_hash() == book.state_hash()
    (record,) = waiting.stops()
    assert (record.iceberg_lots, record.maker_bps, record.taker_bps) == (2, 20, 40)
    for c in (f.limit(2, S, 99, 1), f.limit(3, B, 99, 1)):  # a trade at 99 triggers it
        assert book.apply(c, c.ts) == waiting.apply(c, c.ts)
    resting = book.order(stop.order_id)
    assert resting is not None and (resting.remaining, resting.hidden, resting.iceberg_lots) == (2, 4, 2)
    assert (resting.stop_ticks, resting.maker_bps, resting.working_ts) == (99, 20, c.ts)
    assert book.depth(S) == [(120, 2)]
    restored = snapshot(book)  # a triggered iceberg resting with its stop, its slice and its tier
    assert restored.state_hash() == book.state_hash()
    taker = f.limit(4, B, 120, 3)  # its slice of 2, then 1 from the refilled slice
    event = book.apply(taker, taker.ts)
    assert event is not None and event == restored.apply(taker, taker.ts)
    assert [(t.seller_order_id, t.qty_lots) for t in event.trades] == [(stop.order_id, 2), (stop.order_id, 1)]
    assert all(t.seller_fee == 120 * t.qty_lots * MARKET.atoms_per_nu * 20 // 10_000 for t in event.trades)
    mine = [u for u in event.updates if u.order_id == stop.order_id]
    assert all((u.type, u.iceberg_lots, u.stop) == (SLL, 2, StopState(99, working_ts=c.ts)) for u in mine)
    assert book.depth(S) == [(120, 1)]


@pytest.mark.parametrize("mode", [StpMode.DECREMENT, StpMode.TRANSFER])
def test_decrement_against_a_triggered_stop_reports_its_stop_and_prevented_lots(mode: StpMode) -> None:
    f = Flow()
    commands: list[MatcherCommand] = [f.limit(2, S, 100, 1), f.limit(3, B, 100, 1)]
    commands.append(stop := f.stop(1, S, SLL, 99, 0, 120, 5))
    commands += [f.limit(2, S, 99, 1), f.limit(3, B, 99, 1)]  # a trade at 99 triggers it: it rests at 120
    commands.append(f.limit(1, B, 120, 2, stp=mode))  # its own BUY meets it: 2 lots prevented from both
    book, events = apply_all(commands)
    last = events[-1]
    assert last is not None and not last.trades
    (maker,) = [u for u in last.updates if u.order_id == stop.order_id]
    assert (maker.exec_type, maker.status, maker.prevented_lots, maker.last_prevented_lots) == (
        ExecType.TRADE_PREVENTION,
        OrderStatus.NEW,
        2,
        2,
    )
    assert maker.type is SLL and maker.stop == StopState(99, working_ts=commands[4].ts)
    assert book.depth(S) == [(120, 3)]


@pytest.mark.parametrize("mode", [StpMode.DECREMENT, StpMode.TRANSFER])
def test_a_fok_decrementing_past_a_smaller_order_of_its_own_fills_and_one_as_large_expires_it(mode: StpMode) -> None:
    """A FOK in DECREMENT/TRANSFER mode is judged as ``_take_level`` would meet the level: its own smaller order
    takes lots from both without a trade and the taker goes on (executed + prevented = its size: FILLED, as the
    reference's trial match says); its own order at least its size expires it, so the FOK expires untouched.
    Hypothesis found the core expiring the first (its pre-check stopped at the own order)."""
    f = Flow()
    makers = [f.limit(1, S, 97, 1), f.limit(2, S, 97, 1), f.limit(2, S, 98, 1)]
    taker = f.limit(1, B, 98, 3, tif=FOK, stp=mode)  # 1 prevented at 97, then 1 traded at 97 and 1 at 98
    book, events = apply_all([*makers, taker])
    event = events[-1]  # apply_all checked it against the reference
    assert event is not None and [(t.price_ticks, t.qty_lots) for t in event.trades] == [(97, 1), (98, 1)]
    assert event.updates[-1].status is OrderStatus.FILLED and book.depth(S) == []

    f = Flow()
    makers = [f.limit(1, S, 97, 2), f.limit(2, S, 97, 1)]
    taker = f.limit(1, B, 97, 2, tif=FOK, stp=mode)  # its own 2 lots first: all it could trade is prevented
    book, events = apply_all([*makers, taker])
    event = events[-1]
    assert event is not None and not event.trades and event.updates[-1].status is OrderStatus.EXPIRED
    assert book.depth(S) == [(97, 3)]
