"""Settlement arithmetic, driven by the real pure pipeline: validation -> hold -> book -> settle.

After every step: per-asset conservation, no negative balance, every ended order's hold released exactly
once, every open limit order holding exactly what its lots left need at its price, and per (user, asset)
the held balance equals the holds left on open orders.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.book import Book
from services.order_processor.validation import check, size_hold
from services.settlement.ledger import OrderHold, PreventedMatch, Settled, UnknownOrder, settle
from shared import errors
from shared.db.models import FEE_USER_ID
from shared.domain import (
    Bucket,
    CancelRestriction,
    ExecType,
    Market,
    OrderStatus,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
)
from shared.errors import ApiError
from shared.messages import (
    AcceptedOrder,
    AcceptedStop,
    AmendOrder,
    CancelOrder,
    MatchedEvent,
    NewOrderRequest,
    OrderListCommand,
    RejectedOrder,
)

MARKET = Market(
    "BTCUSDT",
    "BTC",
    "USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_price=Decimal("0.01"),
    max_price=Decimal("1000000"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
    maker_fee_bps=7,
    taker_fee_bps=13,
)
USERS = (2, 3, 4)
START = {"BTC": 3 * 10**8, "USDT": 150_000 * 10**8}

order_kinds = st.sampled_from(
    [
        (OrderType.LIMIT, TimeInForce.GTC),
        (OrderType.LIMIT, TimeInForce.IOC),
        (OrderType.LIMIT, TimeInForce.FOK),
        (OrderType.LIMIT_MAKER, None),
        (OrderType.MARKET, None),
        (OrderType.MARKET, "quote"),
    ]
)
oco_step = st.tuples(  # an OCO: a LIMIT_MAKER and a stop-loss (MARKET or LIMIT once triggered), one hold for the pair
    st.just("oco"),
    st.sampled_from(USERS),
    st.sampled_from(Side),
    st.integers(49_900, 50_100),  # the LIMIT_MAKER's price
    st.integers(49_900, 50_100),  # the stop leg's stop price
    st.integers(49_900, 50_100),  # its limit price (STOP_LOSS_LIMIT)
    st.integers(1, 5_000),
    st.booleans(),  # a STOP_LOSS_LIMIT (else a STOP_LOSS)
    st.sampled_from(StpMode),
)
oto_step = st.tuples(  # an OTO: a working LIMIT, its pending LIMIT_MAKER (the other side) placed once it fills
    st.just("oto"),
    st.sampled_from(USERS),
    st.sampled_from(Side),
    st.integers(49_900, 50_100),
    st.integers(49_900, 50_100),
    st.integers(1, 5_000),
)
step = st.one_of(
    st.tuples(
        st.just("new"),
        st.sampled_from(USERS),
        st.sampled_from(Side),
        order_kinds,
        st.integers(49_900, 50_100),
        st.integers(1, 5_000),
        st.sampled_from(StpMode),
        st.sampled_from([0, 0, 2, 3, 7]),  # an iceberg in that many parts (GTC LIMIT, LIMIT_MAKER); 0: not one
        st.tuples(st.integers(-1, 40), st.integers(-1, 40)),  # the owner's fee tier (-1: the market's rate)
    ),
    st.tuples(
        st.just("cancel"), st.sampled_from(USERS), st.integers(0, 60), st.sampled_from([None, *CancelRestriction])
    ),
    st.tuples(st.just("amend"), st.sampled_from(USERS), st.integers(0, 60), st.integers(1, 5_000)),
    oco_step,
    oto_step,
    st.tuples(  # a conditional order: a stop price, a trailing delta (the prices move up to 40 BIPS), or both
        st.just("stop"),
        st.sampled_from(USERS),
        st.sampled_from(Side),
        st.sampled_from(
            [OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT]
        ),
        st.integers(49_900, 50_100),
        st.integers(1, 5_000),
        st.one_of(st.none(), st.integers(49_900, 50_100)),
        st.one_of(st.none(), st.integers(10, 40)),
        st.sampled_from(StpMode),
        st.sampled_from([0, 0, 2, 3]),  # a *_LIMIT GTC iceberg once triggered, in that many parts; 0: not one
        st.tuples(st.integers(-1, 40), st.integers(-1, 40)),  # the owner's fee tier
    ),
)


class Exchange:
    """The pure pipeline with an in-memory account book."""

    def __init__(self) -> None:
        self.book = Book(MARKET)
        self.balances = {(u, a): [atoms, 0] for u in USERS for a, atoms in START.items()}
        self.orders: dict[int, OrderHold] = {}
        self.next_id = 1
        self.offset = 0
        self.last = Settled()  # what the last command settled to
        self.lists: dict[int, list[int]] = {}  # order lists: their legs' ids
        self.released: set[str] = set()  # the orders whose hold went back at their end

    def post(self, user: int, asset: str, bucket: Bucket, amount: int) -> None:
        row = self.balances.setdefault((user, asset), [0, 0])
        row[0 if bucket is Bucket.AVAILABLE else 1] += amount

    def stop(
        self,
        user: int,
        side: Side,
        otype: OrderType,
        price: int,
        lots: int,
        stop: int | None,
        delta: int | None,
        stp: StpMode,
        parts: int = 0,
        tier: tuple[int, int] = (-1, -1),
    ) -> None:
        """A conditional order, held and sent as the processor does (``check``, ``size_hold``, AcceptedStop);
        ``parts``, ``tier``: as ``new``'s (an iceberg only as a *_LIMIT GTC, which ``check`` enforces)."""
        if stop is None and delta is None:
            delta = 20
        limit = otype in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
        tif = TimeInForce.GTC if limit else TimeInForce.IOC
        stop_s = None if stop is None else str(MARKET.ticks_to_price(stop))
        self.new(user, side, (otype, tif), price, lots, stp, parts if limit else 0, tier, stop_s, delta)

    def new(
        self,
        user: int,
        side: Side,
        kind: tuple,
        price: int,
        lots: int,
        stp: StpMode,
        parts: int = 0,
        tier: tuple[int, int] = (-1, -1),
        stop: str | None = None,
        delta: int | None = None,
    ) -> None:
        """``parts``: an iceberg showing lots // parts at a time (0: not one); ``tier``: the (maker, taker) bps
        stamped on it, as the processor stamps its owner's fee tier's (-1: the market's); ``stop``, ``delta``:
        a conditional order's."""
        otype, tif = kind
        unpriced = otype.triggered is OrderType.MARKET
        iceberg = str(MARKET.lots_to_qty(max(1, lots // parts))) if parts and not unpriced else None
        price_s = str(MARKET.ticks_to_price(price)) if not unpriced else None
        qty_s = str(MARKET.lots_to_qty(lots)) if tif != "quote" else None
        quote_s = str(MARKET.ticks_to_price(price) * MARKET.lots_to_qty(lots)) if tif == "quote" else None
        req = NewOrderRequest(
            order_id=self.next_id,
            user_id=user,
            symbol="BTCUSDT",
            side=side,
            type=otype,
            tif=tif
            if isinstance(tif, TimeInForce)
            else (TimeInForce.GTC if otype is OrderType.LIMIT_MAKER else TimeInForce.IOC),
            price=price_s,
            quantity=qty_s,
            quote_order_qty=quote_s,
            client_order_id=f"c{self.next_id}",
            stp=stp,
            ts=0,
            stop_price=stop,
            trailing_delta=delta,
            iceberg_qty=iceberg,
        )
        self.next_id += 1
        self.offset += 1
        try:
            spec = check(req, MARKET)
            hold = size_hold(spec, side, MARKET, self.balances.get((user, spec.hold_asset), [0, 0])[0])
        except ApiError:
            return
        self.post(user, hold.asset, Bucket.AVAILABLE, -hold.atoms)
        self.post(user, hold.asset, Bucket.HELD, hold.atoms)
        self.orders[req.order_id] = OrderHold(
            user, hold.asset, hold.atoms, side.value, otype.value, spec.price_ticks, spec.qty_lots
        )
        assert req.tif is not None
        conditional = {"stop_ticks": spec.stop_ticks, "trailing_delta": spec.trailing_delta} if otype.is_stop else {}
        cmd = (AcceptedStop if otype.is_stop else AcceptedOrder)(
            src_partition=0,
            src_offset=self.offset,
            order_id=req.order_id,
            user_id=user,
            symbol="BTCUSDT",
            side=side,
            type=otype,
            tif=req.tif,
            price_ticks=spec.price_ticks,
            qty_lots=spec.qty_lots,
            quote_nu=spec.quote_nu,
            budget=hold.budget,
            client_order_id=req.client_order_id,
            stp=stp,
            ts=0,
            iceberg_lots=spec.iceberg_lots,
            maker_bps=tier[0],
            taker_bps=tier[1],
            **conditional,
        )
        self.run(cmd)

    def _leg(self, user: int, side: Side, otype: OrderType, price: int, lots: int, stop: int = 0) -> NewOrderRequest:
        """A list leg's request, as ``parse_order_list`` makes it."""
        unpriced = otype.triggered is OrderType.MARKET
        self.next_id += 1
        tif = None if otype is OrderType.LIMIT_MAKER or unpriced else TimeInForce.GTC
        return NewOrderRequest(
            order_id=self.next_id - 1,
            user_id=user,
            symbol="BTCUSDT",
            side=side,
            type=otype,
            tif=tif or (TimeInForce.IOC if unpriced else TimeInForce.GTC),
            price=None if unpriced else str(MARKET.ticks_to_price(price)),
            quantity=str(MARKET.lots_to_qty(lots)),
            client_order_id=f"c{self.next_id - 1}",
            ts=0,
            stop_price=str(MARKET.ticks_to_price(stop)) if stop else None,
        )

    def _list(self, user: int, contingency: str, legs: list[NewOrderRequest], pairs: list[list[int]]) -> None:
        """An order list, held and sent as the processor decides it (``Holds._decide_list``): every leg checked,
        each ``pairs`` group held once at its largest need (on its first leg that needs it, ``shared``), each leg's
        budget its own need; refused whole (nothing held) if any leg or hold is refused."""
        try:
            specs = [check(r, MARKET) for r in legs]
            trial: dict[str, int] = {}
            shares: dict[int, tuple[int, int, str, bool]] = {}  # leg -> (what its row holds, budget, asset, shared)
            for pair in pairs:
                asset = specs[pair[0]].hold_asset
                available = self.balances.get((user, asset), [0, 0])[0] - trial.get(asset, 0)
                own = [size_hold(specs[k], legs[k].side, MARKET, available) for k in pair]
                most = max(h.atoms for h in own)
                holder = next(k for k, h in zip(pair, own, strict=True) if h.atoms == most)
                for k, h in zip(pair, own, strict=True):
                    shares[k] = (most if k == holder else 0, h.budget, asset, len(pair) > 1)
                trial[asset] = trial.get(asset, 0) + most
        except ApiError:
            return
        list_id = self.next_id
        self.next_id += 1
        orders: list[AcceptedOrder] = []
        for k, (r, spec) in enumerate(zip(legs, specs, strict=True)):
            held, budget, asset, shared = shares[k]
            self.post(user, asset, Bucket.AVAILABLE, -held)
            self.post(user, asset, Bucket.HELD, held)
            self.orders[r.order_id] = OrderHold(
                user,
                asset,
                held,
                r.side.value,
                r.type.value,
                spec.price_ticks,
                spec.qty_lots,
                list_id=list_id,
                shared=shared,
            )
            self.lists.setdefault(list_id, []).append(r.order_id)
            stop = {"stop_ticks": spec.stop_ticks, "trailing_delta": spec.trailing_delta} if r.type.is_stop else {}
            assert r.tif is not None
            orders.append(
                (AcceptedStop if r.type.is_stop else AcceptedOrder)(
                    src_partition=0,
                    src_offset=self.offset,
                    order_id=r.order_id,
                    user_id=user,
                    symbol="BTCUSDT",
                    side=r.side,
                    type=r.type,
                    tif=r.tif,
                    price_ticks=spec.price_ticks,
                    qty_lots=spec.qty_lots,
                    budget=budget,
                    client_order_id=r.client_order_id,
                    ts=0,
                    **stop,
                )
            )
        self.offset += 1
        working = 2 if contingency == "OCO" else 1
        self.run(
            OrderListCommand(
                src_partition=0,
                src_offset=self.offset,
                list_id=list_id,
                user_id=user,
                symbol="BTCUSDT",
                contingency=contingency,
                list_client_id=f"l{list_id}",
                working=working,
                ts=0,
                orders=orders,
            )
        )

    def oco(
        self, user: int, side: Side, limit: int, stop: int, stop_limit: int, lots: int, as_limit: bool, stp: StpMode
    ) -> None:
        """An OCO: below leg, then above (a SELL's LIMIT_MAKER above its stop-loss, a BUY's below)."""
        if (limit <= stop) if side is Side.SELL else (limit >= stop):
            return  # the gateway refuses prices the wrong way round
        kind = OrderType.STOP_LOSS_LIMIT if as_limit else OrderType.STOP_LOSS
        stop_leg = self._leg(user, side, kind, stop_limit, lots, stop)
        limit_leg = self._leg(user, side, OrderType.LIMIT_MAKER, limit, lots)
        legs = [stop_leg, limit_leg] if side is Side.SELL else [limit_leg, stop_leg]
        self._list(user, "OCO", legs, [[0, 1]])

    def oto(self, user: int, side: Side, price: int, pending_price: int, lots: int) -> None:
        """An OTO: a working LIMIT, its pending LIMIT_MAKER on the other side, each held for itself."""
        working = self._leg(user, side, OrderType.LIMIT, price, lots)
        pending = self._leg(user, side.opposite, OrderType.LIMIT_MAKER, pending_price, lots)
        self._list(user, "OTO", [working, pending], [[0], [1]])

    def cancel(self, user: int, order_id: int, restriction: CancelRestriction | None = None) -> None:
        self.offset += 1
        self.run(
            CancelOrder(
                src_partition=0,
                src_offset=self.offset,
                request_id=10**6 + self.offset,
                order_id=order_id,
                user_id=user,
                symbol="BTCUSDT",
                ts=0,
                restriction=restriction,
            )
        )

    def amend(self, user: int, order_id: int, lots: int) -> MatchedEvent:
        self.offset += 1
        return self.run(
            AmendOrder(
                src_partition=0,
                src_offset=self.offset,
                request_id=10**6 + self.offset,
                order_id=order_id,
                user_id=user,
                symbol="BTCUSDT",
                qty_lots=lots,
                client_order_id=f"a{self.offset}",
                ts=0,
            )
        )

    def run(self, cmd: AcceptedOrder | CancelOrder | AmendOrder | OrderListCommand) -> MatchedEvent:
        event = self.book.apply(cmd, 0)
        assert event is not None
        settled = settle([event], MARKET, self.orders)
        for p in settled.postings:
            if p.kind == "release":  # a hold goes back once, when its order ends
                assert p.ref not in self.released, f"{p.ref} released twice"
                self.released.add(p.ref)
            self.post(p.debit_user, p.asset, p.debit_bucket, -p.amount)
            self.post(p.credit_user, p.asset, p.credit_bucket, p.amount)
        self.last = settled
        return event

    def assert_invariants(self) -> None:
        for asset, atoms in START.items():
            total = sum(a + h for (u, a_), (a, h) in self.balances.items() if a_ == asset)
            assert total == atoms * len(USERS), f"{asset} not conserved"
        assert all(a >= 0 and h >= 0 for a, h in self.balances.values()), self.balances
        shared: dict[int, list[int]] = {}  # the OCO pairs still sharing one hold: their open legs
        for oid, o in self.orders.items():
            if not OrderStatus(o.status).is_open:
                assert o.hold_left == 0, f"order {oid} ended holding {o.hold_left}"
            elif o.shared:
                shared.setdefault(o.list_id, []).append(oid)
            elif OrderType(o.type).triggered is not OrderType.MARKET:  # what the order still needs: limit x lots left
                left = o.qty_lots - o.executed_lots - o.prevented_lots  # prevented: by DECREMENT / TRANSFER
                need = left * o.price_ticks * MARKET.atoms_per_nu if o.side == Side.BUY else left * MARKET.atoms_per_lot
                assert o.hold_left == need, f"order {oid} holds {o.hold_left}, needs {need}"
        for list_id, legs in shared.items():  # a pair holds its larger need once, until one leg acts
            assert sorted(legs) == sorted(self.lists[list_id]), f"list {list_id}: only {legs} still share its hold"
            held = sum(self.orders[i].hold_left for i in legs)
            needs = [
                (o.qty_lots - o.executed_lots) * (o.price_ticks * MARKET.atoms_per_nu if o.side == Side.BUY else 0)
                + (0 if o.side == Side.BUY else (o.qty_lots - o.executed_lots) * MARKET.atoms_per_lot)
                for o in (self.orders[i] for i in legs)
                if OrderType(o.type).triggered is not OrderType.MARKET
            ]
            assert held >= max(needs, default=0), f"list {list_id} holds {held}, a leg needs {max(needs)}"
        for r in self.book.orders():  # what settlement counts left of a resting order is what the book has left
            # (an iceberg: what it shows and what it hides)
            o = self.orders[r.order_id]
            assert r.remaining + r.hidden == o.qty_lots - o.executed_lots - o.prevented_lots, (r, o)
        for (user, asset), (_, held) in self.balances.items():
            if user == FEE_USER_ID:
                continue
            open_holds = sum(
                o.hold_left
                for o in self.orders.values()
                if o.user_id == user and o.hold_asset == asset and OrderStatus(o.status).is_open
            )
            assert held == open_holds, (user, asset, held, open_holds)


def run_steps(steps: list) -> None:
    ex = Exchange()
    for s in steps:  # conditional orders among them: held from acceptance, released once however they end
        if s[0] == "new":
            ex.new(*s[1:])
        elif s[0] == "stop":
            ex.stop(*s[1:])
        elif s[0] in ("oco", "oto"):
            getattr(ex, s[0])(*s[1:])
        elif s[0] == "amend":
            ex.amend(*s[1:])
        else:
            ex.cancel(*s[1:])
        ex.assert_invariants()


self_trades = st.one_of(  # two users, a narrow band of prices: own orders meet often, under every mode
    st.tuples(
        st.just("new"),
        st.sampled_from(USERS[:2]),
        st.sampled_from(Side),
        st.sampled_from([(OrderType.LIMIT, TimeInForce.GTC), (OrderType.LIMIT, TimeInForce.IOC)]),
        st.integers(49_998, 50_002),
        st.integers(1_000, 6_000),  # from 1000 lots at 500.00: above minNotional
        st.sampled_from([StpMode.DECREMENT, StpMode.TRANSFER, StpMode.EXPIRE_MAKER, StpMode.NONE]),
        st.sampled_from([0, 2, 3]),
        st.tuples(st.integers(-1, 40), st.integers(-1, 40)),
    ),
    st.tuples(st.just("cancel"), st.sampled_from(USERS[:2]), st.integers(0, 40), st.none()),
    st.tuples(st.just("amend"), st.sampled_from(USERS[:2]), st.integers(0, 40), st.integers(1, 6_000)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(self_trades, max_size=40))
def test_decrement_and_icebergs_keep_holds_equal_to_what_open_orders_need(steps: list) -> None:
    """DECREMENT / TRANSFER shrink both orders without a trade; icebergs refill; amends cut: after every step
    each open order holds exactly what its lots left need, and every ended one nothing (released once)."""
    ex = Exchange()
    for s in steps:
        getattr(ex, s[0])(*s[1:])
        ex.assert_invariants()


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=60))
def test_money_is_conserved_and_holds_end_exactly_once(steps: list) -> None:
    run_steps(steps)


list_steps = st.one_of(step, oco_step, oto_step)  # lists more often than in ``step``


@settings(max_examples=200, deadline=None)
@given(st.lists(list_steps, min_size=20, max_size=80))
def test_order_lists_hold_once_and_release_once(steps: list) -> None:
    """OCO pairs hold their larger need once, OTO legs each their own: after every step, money is conserved, no
    balance is negative, a pair still sharing holds at least what either leg needs, every other open order
    exactly what it needs, and every hold goes back once, whichever leg acts (fills, triggers, is canceled)."""
    run_steps(steps)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=30, max_size=80))
def test_conditional_orders_hold_from_acceptance_and_release_once_in_long_flows(steps: list) -> None:
    """Long flows, where trades trigger the conditional orders (and their fills trigger more): every hold is
    what its open order needs, ends once, and money is conserved."""
    run_steps(steps)


def test_amend_releases_what_the_cut_lots_held_once_and_keeps_the_rest_held() -> None:
    ex = Exchange()
    ex.new(2, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 1_000, StpMode.NONE)  # holds 50000 * 0.01
    before = ex.balances[(2, "USDT")][:]
    event = ex.amend(2, 1, 400)
    (update,) = event.updates
    assert (update.exec_type, update.status, update.qty_lots) == (ExecType.REPLACED, OrderStatus.NEW, 400)
    cut = 600 * 50_000 * MARKET.atoms_per_nu
    assert [(p.kind, p.amount) for p in ex.last.postings] == [("amend", cut)]
    assert ex.balances[(2, "USDT")] == [before[0] + cut, before[1] - cut]
    assert ex.orders[1].hold_left == 400 * 50_000 * MARKET.atoms_per_nu
    again = ex.amend(2, 1, 400)  # not smaller: refused, nothing moves
    assert again.error is not None and again.error.code == -2038 and not ex.last.postings
    ex.cancel(2, 1)
    assert [(p.kind, p.amount) for p in ex.last.postings] == [("release", 400 * 50_000 * MARKET.atoms_per_nu)]
    ex.assert_invariants()


def test_amend_of_a_partly_filled_sell_keeps_what_its_lots_left_need() -> None:
    ex = Exchange()
    ex.new(2, Side.SELL, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 5_000, StpMode.NONE)
    ex.new(3, Side.BUY, (OrderType.LIMIT, TimeInForce.IOC), 50_000, 1_500, StpMode.NONE)
    event = ex.amend(2, 1, 2_500)
    assert event.updates[0].status is OrderStatus.PARTIALLY_FILLED
    assert ex.orders[1].hold_left == 1_000 * MARKET.atoms_per_lot  # 2500 - 1500 executed
    below = ex.amend(2, 1, 1_500)  # not above what it executed
    assert below.error is not None and below.error.code == -2038
    ex.assert_invariants()


def test_trade_moves_notional_and_fees_exactly() -> None:
    ex = Exchange()
    ex.new(2, Side.SELL, (OrderType.LIMIT, TimeInForce.GTC), 5_000_000, 20_000, StpMode.EXPIRE_MAKER)  # 0.2 @ 50000
    ex.new(3, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 5_001_000, 10_000, StpMode.EXPIRE_MAKER)  # 0.1 @ 50010
    notional = 5_000 * 10**8  # 0.1 BTC at the maker's 50000 USDT
    taker_fee_btc = 10**7 * 13 // 10_000
    maker_fee_usdt = notional * 7 // 10_000
    assert ex.balances[(3, "BTC")] == [START["BTC"] + 10**7 - taker_fee_btc, 0]
    assert ex.balances[(3, "USDT")] == [START["USDT"] - notional, 0]  # price improvement refunded at once
    assert ex.balances[(2, "USDT")] == [START["USDT"] + notional - maker_fee_usdt, 0]
    assert ex.balances[(2, "BTC")] == [START["BTC"] - 2 * 10**7, 10**7]  # 0.1 still held for the rest
    assert ex.balances[(FEE_USER_ID, "BTC")] == [taker_fee_btc, 0]
    assert ex.balances[(FEE_USER_ID, "USDT")] == [maker_fee_usdt, 0]
    ex.assert_invariants()


def _refusal(order_id: int) -> RejectedOrder:
    return RejectedOrder(
        src_partition=0,
        src_offset=order_id,
        order_id=order_id,
        user_id=2,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        client_order_id="taken",
        code=errors.NEW_ORDER_REJECTED,
        msg=errors.DUPLICATE_ORDER_MSG,
        ts=0,
    )


def test_a_refusal_without_a_row_settles_to_nothing() -> None:
    """The processor refuses a client order id already taken without writing a row (the id is unique per
    user): its REJECTED update reaches settlement for an order it has no row of, and moves nothing."""
    ex = Exchange()
    ex.new(2, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 5_000_000, 10_000, StpMode.EXPIRE_MAKER)
    before = {k: list(v) for k, v in ex.balances.items()}
    event = ex.book.apply(_refusal(99), 0)
    assert event is not None and event.updates[0].status is OrderStatus.REJECTED
    settled = settle([event], MARKET, ex.orders)
    assert (settled.postings, settled.touched) == ([], {})
    assert ex.balances == before
    ex.assert_invariants()


def test_any_other_update_of_an_order_without_a_row_is_refused() -> None:
    ex = Exchange()
    ex.new(2, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 5_000_000, 10_000, StpMode.EXPIRE_MAKER)
    event = ex.book.apply(
        CancelOrder(src_partition=0, src_offset=50, request_id=50, order_id=1, user_id=2, symbol="BTCUSDT", ts=0), 0
    )
    assert event is not None and event.updates
    with pytest.raises(UnknownOrder):
        settle([event], MARKET, {})  # the canceled order's row is missing: a bug upstream, never skipped


@pytest.mark.parametrize("mode", [StpMode.EXPIRE_TAKER, StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH])
def test_a_prevented_match_is_one_row_with_the_takers_mode_and_what_the_maker_had_left(mode: StpMode) -> None:
    ex = Exchange()
    ex.new(2, Side.SELL, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 5_000, StpMode.NONE)
    ex.new(3, Side.BUY, (OrderType.LIMIT, TimeInForce.IOC), 50_000, 1_500, StpMode.NONE)  # the maker: 3500 left
    ex.new(2, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 2_000, mode)
    (row,) = ex.last.prevented
    assert row == PreventedMatch("BTCUSDT", 1, 2, 3, 1, mode.value, 50_000, 3_500, 0)
    assert not OrderStatus(ex.orders[3].status).is_open or mode is StpMode.EXPIRE_MAKER  # a taker left rests
    ex.assert_invariants()


@pytest.mark.parametrize("mode", [StpMode.DECREMENT, StpMode.TRANSFER])
def test_decrement_frees_the_hold_of_the_prevented_lots_and_records_them(mode: StpMode) -> None:
    ex = Exchange()
    ex.new(2, Side.SELL, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 5_000, StpMode.NONE)
    ex.new(3, Side.BUY, (OrderType.LIMIT, TimeInForce.IOC), 50_000, 1_500, StpMode.NONE)  # the maker: 3500 left
    held = ex.balances[(2, "BTC")][1]
    ex.new(2, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 2_000, mode)  # smaller: expires, 2000 off both
    (row,) = ex.last.prevented
    assert row == PreventedMatch("BTCUSDT", 1, 2, 3, 1, mode.value, 50_000, 2_000, 0)
    maker, taker = ex.orders[1], ex.orders[3]
    assert (maker.status, maker.prevented_lots, taker.status, taker.prevented_lots) == (
        "PARTIALLY_FILLED",
        2_000,
        "EXPIRED_IN_MATCH",
        2_000,
    )
    assert ex.balances[(2, "BTC")][1] == held - 2_000 * MARKET.atoms_per_lot  # the maker's 2000 lots released
    freed = [p for p in ex.last.postings if p.kind == "prevented"]
    assert [(p.ref, p.amount) for p in freed] == [("order:1", 2_000 * MARKET.atoms_per_lot)]
    ex.assert_invariants()
    ex.new(3, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 50_000, 1_500, StpMode.NONE)  # fills the 1500 left
    assert ex.orders[1].status == "FILLED" and ex.orders[1].hold_left == 0
    ex.assert_invariants()


def test_an_oco_holds_its_quantity_once_and_its_filled_leg_keeps_what_it_needs() -> None:
    """A SELL OCO of 3,000 lots holds 3,000 lots once; a buyer takes 1,200 from its LIMIT_MAKER: the stop leg is
    canceled in the same step (releasing nothing: its row held nothing), the limit leg holds its 1,800 left."""
    ex = Exchange()
    ex.oco(2, Side.SELL, 50_050, 49_950, 49_940, 3_000, True, StpMode.EXPIRE_MAKER)
    stop_id, limit_id = ex.lists[next(iter(ex.lists))]
    assert ex.balances[(2, "BTC")][1] == 3_000 * MARKET.atoms_per_lot
    assert (ex.orders[stop_id].hold_left, ex.orders[limit_id].hold_left) == (3_000 * MARKET.atoms_per_lot, 0)
    ex.assert_invariants()
    ex.new(3, Side.BUY, (OrderType.LIMIT, TimeInForce.GTC), 50_050, 1_200, StpMode.EXPIRE_MAKER)
    ex.assert_invariants()
    assert (ex.orders[stop_id].status, ex.orders[limit_id].status) == ("CANCELED", "PARTIALLY_FILLED")
    assert ex.orders[limit_id].hold_left == 1_800 * MARKET.atoms_per_lot and not ex.orders[limit_id].shared
    assert ex.balances[(2, "BTC")][1] == 1_800 * MARKET.atoms_per_lot
    assert not any(p.kind == "release" for p in ex.last.postings if p.ref == f"order:{stop_id}")
