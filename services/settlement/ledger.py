"""Settlement arithmetic: from matched events to double-entry postings. Pure, no I/O.

Each trade moves, in atoms:

* quote: buyer ``held`` -> seller ``available`` (notional - seller fee), buyer ``held`` -> fee account (seller fee);
* base: seller ``held`` -> buyer ``available`` (qty - buyer fee), seller ``held`` -> fee account (buyer fee).

The buyer's order hold shrinks by the notional at the trade price, the seller's by the quantity. A limit
order still open after an event keeps exactly what its lots left need (``Market.limit_hold_atoms``, the
processor's formula): a BUY that traded below its limit frees the price improvement at that event
(``improvement``), so a user's ``held`` always equals the remaining need of their open orders, as Binance's
``locked`` does. When an order ends (filled, canceled, expired, rejected), what is left of its hold goes
back to ``available`` exactly once (``hold_left`` becomes 0); an amend (REPLACED) makes the order smaller, and
what the cut lots held goes back at that event (``amend``), once, since ``hold_left`` then equals the need; a
MARKET order ends in the event that placed it, so that release is its only one. Every posting moves units
between two accounts, so the per-asset sum over all accounts never changes; the property tests assert it.

An event that cannot be applied (an order without a row, a hold smaller than what the order needs) raises
an ``Unappliable``: never skipped here, it is the caller's to stop its symbol on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.db.models import FEE_USER_ID
from shared.domain import Bucket, ExecType, Market, OrderStatus, OrderType, Side
from shared.messages import ListedEvent, MatchedEvent, OrderUpdate, Trade, leg_lists


@dataclass(slots=True)
class OrderHold:
    """What settlement tracks per order: whose it is, how much of its hold is left, and what sizes that hold."""

    user_id: int
    hold_asset: str
    hold_left: int
    side: str
    type: str
    price_ticks: int
    qty_lots: int
    status: str = OrderStatus.NEW.value
    executed_lots: int = 0
    cum_nu: int = 0
    last_seq: int = 0
    updated_ts: int = 0
    amended_client_order_id: str | None = None  # set by a REPLACED update: the orders row takes it and qty_lots
    prevented_lots: int = 0  # lots lost to DECREMENT/TRANSFER prevented matches: never traded, no longer held
    symbol: str = ""  # its market (``open_order_counts`` counts per user and symbol)
    working_ts: int = 0  # set when a conditional order triggered (its update's ``stop.working_ts``), else 0
    list_id: int = -1  # an order list's leg: its list
    shared: bool = False  # ... sharing one hold with the other leg of its OCO pair (``_pool``)


@dataclass(frozen=True, slots=True)
class Posting:
    kind: str
    ref: str
    asset: str
    debit_user: int
    debit_bucket: Bucket
    credit_user: int
    credit_bucket: Bucket
    amount: int


@dataclass(frozen=True, slots=True)
class PreventedMatch:
    """A row of ``prevented_matches``: ``maker_prevented_lots`` is what the maker had left when its match with
    the taker was prevented (whichever of them expired)."""

    symbol: str
    prevented_match_id: int
    user_id: int
    taker_order_id: int
    maker_order_id: int
    mode: str
    price_ticks: int
    maker_prevented_lots: int
    ts: int


@dataclass(slots=True)
class Settled:
    postings: list[Posting] = field(default_factory=list)
    trades: list[tuple[str, int, Trade]] = field(default_factory=list)  # (symbol, seq, trade)
    touched: dict[int, OrderHold] = field(default_factory=dict)
    prevented: list[PreventedMatch] = field(default_factory=list)

    def move(
        self,
        kind: str,
        ref: str,
        asset: str,
        from_user: int,
        from_bucket: Bucket,
        to_user: int,
        to_bucket: Bucket,
        amount: int,
    ) -> None:
        if amount < 0:
            raise HoldShortfall(f"{ref}: negative posting {amount} {asset}")
        if amount:
            self.postings.append(Posting(kind, ref, asset, from_user, from_bucket, to_user, to_bucket, amount))

    def balance_deltas(self) -> dict[tuple[int, str], list[int]]:
        """Net change per (user, asset) as [available, held]."""
        out: dict[tuple[int, str], list[int]] = {}
        for p in self.postings:
            d = out.setdefault((p.debit_user, p.asset), [0, 0])
            d[0 if p.debit_bucket is Bucket.AVAILABLE else 1] -= p.amount
            c = out.setdefault((p.credit_user, p.asset), [0, 0])
            c[0 if p.credit_bucket is Bucket.AVAILABLE else 1] += p.amount
        return out


class Unappliable(Exception):
    """An event settlement cannot apply as it stands: its symbol stops settling until an operator decides."""


class UnknownOrder(Unappliable):
    """An event names an order settlement has no row for: a bug upstream, never silently skipped. The one
    exception is a REJECTED update: the processor refuses a client order id already taken without a row."""


class HoldShortfall(Unappliable):
    """A trade or an open order needs more than its order's hold has left: the hold was sized wrong."""


def remaining_need(o: OrderHold, m: Market) -> int | None:
    """What an open order's hold must still cover: its limit hold for the lots left. None for a MARKET
    order, whose hold is sized by what was available or its quote and which ends in the step that placed it."""
    if OrderType(o.type).triggered is OrderType.MARKET:  # a STOP_LOSS / TAKE_PROFIT holds as the MARKET it becomes
        return None
    return m.limit_hold_atoms(Side(o.side), o.price_ticks, o.qty_lots - o.executed_lots - o.prevented_lots)


def settle(events: Iterable[MatchedEvent], market: Market, orders: dict[int, OrderHold]) -> Settled:
    """Postings and order states for ``events`` (one symbol, in seq order, none applied before)."""
    out = Settled()
    m = market
    held, avail = Bucket.HELD, Bucket.AVAILABLE
    for event in events:
        if isinstance(event, ListedEvent):
            _pool(event, orders)
        for t in event.trades:
            buyer, seller = _order(orders, t.buyer_order_id), _order(orders, t.seller_order_id)
            ref = f"trade:{m.symbol}:{t.trade_id}"
            notional = t.price_ticks * t.qty_lots * m.atoms_per_nu
            base = t.qty_lots * m.atoms_per_lot
            out.move("trade", ref, m.quote, buyer.user_id, held, seller.user_id, avail, notional - t.seller_fee)
            out.move("fee", ref, m.quote, buyer.user_id, held, FEE_USER_ID, avail, t.seller_fee)
            out.move("trade", ref, m.base, seller.user_id, held, buyer.user_id, avail, base - t.buyer_fee)
            out.move("fee", ref, m.base, seller.user_id, held, FEE_USER_ID, avail, t.buyer_fee)
            buyer.hold_left -= notional
            seller.hold_left -= base
            if buyer.hold_left < 0 or seller.hold_left < 0:
                raise HoldShortfall(f"{ref}: a trade consumed more than its order's hold")
            out.touched[t.buyer_order_id] = buyer
            out.touched[t.seller_order_id] = seller
            out.trades.append((m.symbol, event.seq, t))
        _prevented(event, m, orders, out)
        updated: list[tuple[OrderUpdate, OrderHold]] = []
        for u in event.updates:
            if u.exec_type is ExecType.REJECTED and u.order_id not in orders:
                continue  # refused without a row (a client order id already taken): it never held anything
            o = _order(orders, u.order_id)
            o.status, o.executed_lots, o.cum_nu = u.status.value, u.executed_lots, u.cum_nu
            if u.exec_type is ExecType.REPLACED:
                o.qty_lots, o.amended_client_order_id = u.qty_lots, u.client_order_id
            elif u.exec_type is ExecType.TRADE_PREVENTION and u.last_prevented_lots:
                o.prevented_lots = u.prevented_lots  # DECREMENT/TRANSFER: the hold of those lots goes back below
            if u.stop is not None and u.stop.working_ts > 0:
                o.working_ts = u.stop.working_ts
            o.last_seq, o.updated_ts = event.seq, event.ts
            out.touched[u.order_id] = o
            updated.append((u, o))
        for u, o in updated:  # an order updated twice in the event is seen twice: the second finds nothing to do
            if not OrderStatus(o.status).is_open:
                if o.hold_left:
                    out.move(
                        "release", f"order:{u.order_id}", o.hold_asset, o.user_id, held, o.user_id, avail, o.hold_left
                    )
                    o.hold_left = 0
                continue
            if o.shared:  # its pair's one hold: sized by the pair, not by this leg, until the pair resolves
                continue
            need = remaining_need(o, m)
            if need is None or need == o.hold_left:
                continue
            if need > o.hold_left:
                raise HoldShortfall(f"order {u.order_id}: holds {o.hold_left} {o.hold_asset}, its lots need {need}")
            freed = o.hold_left - need  # a BUY's price improvement (held at its limit, traded below it), or an amend
            if u.exec_type is ExecType.REPLACED:
                kind = "amend"
            elif u.exec_type is ExecType.TRADE_PREVENTION:
                kind = "prevented"
            else:
                kind = "improvement"
            out.move(kind, f"order:{u.order_id}", o.hold_asset, o.user_id, held, o.user_id, avail, freed)
            o.hold_left = need
    return out


def _pool(event: MatchedEvent, orders: dict[int, OrderHold]) -> None:
    """An OCO pair's one hold moves to the leg that acts, before the event's trades draw on it.

    The processor holds the larger need of the pair once, on one leg's row (``shared``; the other holds 0). The
    matcher resolves the pair in one step: the leg that acts (trades, triggers, ends) stays, the others are
    CANCELED in the same event. So for each list in the event whose shared legs it cancels while one of them
    survives, the cancelled legs' hold goes to the survivor (held to held, one owner and asset: no posting), and
    the pair is no longer shared: the survivor's hold is then sized as any order's (what it does not need is
    released as an ``improvement``, or at its end). A pair canceled whole keeps its hold where it is: each leg
    releases what its row holds as it ends, so the hold still goes back once."""
    legs = leg_lists(event)
    last: dict[int, OrderUpdate] = {}
    for u in event.updates:
        if u.order_id in legs:
            last[u.order_id] = u
    by_list: dict[int, list[int]] = {}
    for order_id in last:
        o = orders.get(order_id)
        if o is not None and o.shared:
            by_list.setdefault(legs[order_id], []).append(order_id)
    for ids in by_list.values():
        canceled = [i for i in ids if last[i].status is OrderStatus.CANCELED]
        staying = [i for i in ids if last[i].status is not OrderStatus.CANCELED]
        if len(staying) != 1 or not canceled:
            continue
        survivor = orders[staying[0]]
        for i in canceled:
            o = orders[i]
            if o.hold_asset != survivor.hold_asset:
                continue
            survivor.hold_left += o.hold_left
            o.hold_left = 0
            o.shared = False
        survivor.shared = False


def _prevented(event: MatchedEvent, m: Market, orders: dict[int, OrderHold], out: Settled) -> None:
    """The event's prevented matches (before its updates apply: the maker's row still says what it had left).
    The taker is the order the event placed (its ``request_id``); under EXPIRE_BOTH both orders report the
    same match, which is one row. ``maker_prevented_lots``: what the maker lost, all it had left under the
    EXPIRE modes, the lots of the match under DECREMENT and TRANSFER (``last_prevented_lots``)."""
    seen: set[int] = set()
    for u in event.updates:
        pid = u.prevented_match_id
        if pid < 0 or pid in seen:
            continue
        seen.add(pid)
        if u.order_id == event.request_id:
            taker_id, maker_id, mode = u.order_id, u.counter_order_id, u.stp
        else:
            taker_id, maker_id = u.counter_order_id, u.order_id
            mode = next((t.stp for t in event.updates if t.order_id == taker_id), u.stp)
        maker = _order(orders, maker_id)
        out.prevented.append(
            PreventedMatch(
                m.symbol,
                pid,
                u.user_id,
                taker_id,
                maker_id,
                mode.value,
                maker.price_ticks,
                u.last_prevented_lots or maker.qty_lots - maker.executed_lots - maker.prevented_lots,
                event.ts,
            )
        )


def ended_per_user(open_before: set[int], touched: dict[int, OrderHold]) -> dict[tuple[int, str], int]:
    """Per (user, symbol), how many of the orders open before a batch the batch ended (for
    ``open_order_counts``)."""
    out: dict[tuple[int, str], int] = {}
    for order_id, o in touched.items():
        if order_id in open_before and not OrderStatus(o.status).is_open:
            key = (o.user_id, o.symbol)
            out[key] = out.get(key, 0) + 1
    return out


def _order(orders: dict[int, OrderHold], order_id: int) -> OrderHold:
    try:
        return orders[order_id]
    except KeyError:
        raise UnknownOrder(f"order {order_id} has no row") from None
