"""``decide_batch``, the processor's pure core, against a simple model of what one batch must make it write.

A batch is any mix of new orders and cancels over two symbols, with second copies of a request (a
producer's retry) and traced requests; Postgres's answer (``Holds.take`` through ``deadletter.isolate``) is
drawn too: each order accepted, rejected, decided before (a redelivery), refused alone (unappliable, or
unstorable inside the step), or refused with ids nobody can be told of, and the rest cut into parts as
``isolate`` cuts them. The model reads the batch one request at a time; ``decide_batch`` must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.order_processor.batch import (
    BatchDecision,
    Taking,
    changed_markets,
    decide_batch,
    located,
    market_runs,
)
from services.order_processor.holds import UNSTORABLE, Located, Taken, rejected
from shared import errors, kafka, tracing
from shared import redis as sredis
from shared.domain import INT64_MAX, OrderType, Side, StpMode, TimeInForce, fmt_amount
from shared.identity import source_partition
from shared.messages import (
    AcceptedOrder,
    CancelAllOrders,
    CancelAllRequest,
    CancelOrder,
    CancelRequest,
    MarketChange,
    MarketChangeRequest,
    MatcherCommand,
    NewOrderRequest,
    OrderRequest,
    RejectedOrder,
    source_position,
    spec_of,
    unpack_commands,
)
from shared.postgres import DEFAULT_MARKETS

MARKETS = {m.symbol: m for m in DEFAULT_MARKETS}
SYMBOLS = ("BTCUSDT", "ETHUSDT")
CHANNELS = sredis.Channels("-t")
NOW = 1_700_000_000_000
TP = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
FATES = ("accepted", "rejected", "redelivered", "unappliable", "unstorable", "untellable")


class Traced(tracing.Consumed):
    """The traced side of ``tracing.Consumed``: a traceparent for some of the batch's requests."""

    tracked = True

    def __init__(self, traced: set[int]) -> None:
        self.traced = traced

    def traceparent(self, value: object) -> bytes | None:
        return TP if id(value) in self.traced else None


@dataclass
class Drawn:
    """A batch and Postgres's answer for it, as ``decide_batch`` receives them."""

    records: list[kafka.Record[OrderRequest]]
    news: list[Located]
    taking: Taking
    fate: dict[int, str]  # order id -> what Postgres made of it
    balances: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)  # the last of each


def request(order_id: int, user: int, symbol: str, otype: OrderType) -> NewOrderRequest:
    return NewOrderRequest(
        order_id=order_id,
        user_id=user,
        symbol=symbol,
        side=Side.BUY,
        type=otype,
        tif=None if otype is OrderType.MARKET else TimeInForce.GTC,
        price=None if otype is OrderType.MARKET else "100",
        quantity="1",
        client_order_id=f"c{order_id}",
        stp=StpMode.EXPIRE_MAKER,
        ts=NOW - 5,
    )


def accept(loc: Located) -> AcceptedOrder:
    r = loc.request
    return AcceptedOrder(
        src_partition=loc.partition,
        src_offset=loc.offset,
        order_id=r.order_id,
        user_id=r.user_id,
        symbol=r.symbol,
        side=r.side,
        type=r.type,
        tif=r.tif or TimeInForce.GTC,
        price_ticks=10_000,
        qty_lots=100_000,
        budget=10**9,
        client_order_id=r.client_order_id,
        stp=r.stp,
        ts=r.ts,
    )


item = st.one_of(
    st.tuples(
        st.just("new"),
        st.integers(0, 5),  # which order (a repeated one is a second copy)
        st.integers(1, 3),  # owner
        st.sampled_from(SYMBOLS),
        st.sampled_from([OrderType.LIMIT, OrderType.MARKET, OrderType.LIMIT_MAKER]),
    ),
    st.tuples(st.just("cancel"), st.integers(1, 3), st.sampled_from(SYMBOLS)),
)


@st.composite
def batches(draw: st.DrawFn) -> Drawn:
    items = draw(st.lists(item, max_size=14))
    epoch = draw(st.sampled_from([0, 3]))
    fate = {1000 + key: draw(st.sampled_from(FATES)) for key in range(6)}
    records: list[kafka.Record[OrderRequest]] = []
    first: dict[int, NewOrderRequest] = {}  # a second copy repeats the first's fields
    for offset, it in enumerate(items):
        index = draw(st.integers(0, 2))  # its place in an envelope of the gateway's
        value: OrderRequest
        if it[0] == "new":
            _, key, user, symbol, otype = it
            order_id = 1000 + key
            if fate[order_id] == "untellable":
                user = INT64_MAX + 1  # an owner id no store holds: nobody can be told of it
            original = first.get(order_id)
            value = request(order_id, user, symbol, otype) if original is None else original.__copy__()
            first.setdefault(order_id, value)
        else:
            _, user, symbol = it
            value = CancelRequest(request_id=5000 + offset, user_id=user, symbol=symbol, order_id=1000, ts=NOW)
        records.append(kafka.Record("order-requests", 0, offset, value, index=index, epoch=epoch))
    news = located(records)
    # Postgres's answer: each copy gets the first copy's decision, in parts cut as isolate cuts them
    decided: dict[int, Any] = {}
    redelivered: set[int] = set()
    failed: list[tuple[Located, Exception]] = []  # isolate's: each failed alone
    unstorable: list[tuple[Located, Exception]] = []  # Holds.unstorable's: refused inside the step
    kept: list[Located] = []
    for loc in news:
        order_id = loc.request.order_id
        f = fate[order_id]
        if f in ("unappliable", "untellable"):
            failed.append((loc, ValueError(f"order {order_id} breaks an invariant")))
            continue
        if order_id not in decided:
            if f == "rejected":
                decided[order_id] = rejected(loc, loc.request, -1013, "Filter failure: PRICE_FILTER")
            elif f == "unstorable":
                decided[order_id] = rejected(loc, loc.request, errors.NEW_ORDER_REJECTED, UNSTORABLE)
                unstorable.append((loc, ValueError("value out of range for type bigint")))
            else:
                decided[order_id] = accept(loc)
                if f == "redelivered":
                    redelivered.add(order_id)
        kept.append(loc)
    cuts = sorted(draw(st.sets(st.integers(1, len(kept) - 1), max_size=3))) if len(kept) > 1 else []
    bounds = [0, *cuts, len(kept)]
    drawn = Drawn(records, news, ([], []), fate)
    taken: list[tuple[Sequence[Located], Taken]] = []
    for start, end in pairwise(bounds):
        part = kept[start:end]
        written = []
        for loc in part:  # an accepted order's owner's quote balance, as the part's WRITE returned it
            if fate[loc.request.order_id] == "accepted":
                available, held = draw(st.integers(0, 10**12)), draw(st.integers(0, 10**12))
                row = {"user_id": loc.request.user_id, "asset": "USDT", "available": available, "held": held}
                written.append(row)
                drawn.balances[(row["user_id"], row["asset"])] = row
        again = {loc.request.order_id for loc in part} & redelivered
        taken.append((part, ([decided[loc.request.order_id] for loc in part], written, again)))  # type: ignore[arg-type]
    drawn.taking = (taken, failed + unstorable)
    return drawn


def refused(loc: Located, exc: Exception) -> RejectedOrder:
    """What a request refused alone must get: REJECTED at its own position, with why, holding nothing."""
    r = loc.request
    return RejectedOrder(
        src_partition=loc.partition,
        src_offset=loc.offset,
        order_id=r.order_id,
        user_id=r.user_id,
        symbol=r.symbol,
        side=r.side,
        type=r.type,
        tif=r.tif,
        price_ticks=0,
        qty_lots=0,
        client_order_id=r.client_order_id,
        code=errors.NEW_ORDER_REJECTED,
        msg=f"Order could not be applied: {type(exc).__name__}: {exc}",
        ts=r.ts,
    )


def model(drawn: Drawn) -> tuple[list[MatcherCommand], list[AcceptedOrder], dict[str, list[int]]]:
    """One request at a time: its command, the accepted orders for the hot book, and per channel the order ids
    told NEW."""
    refusals = {id(loc.request): refused(loc, exc) for loc, exc in drawn.taking[1]}
    decisions = {id(loc.request): d for part, (ds, _, _) in drawn.taking[0] for loc, d in zip(part, ds, strict=True)}
    commands: list[MatcherCommand] = []
    accepted: list[AcceptedOrder] = []
    told: dict[str, list[int]] = {}
    for r in drawn.records:
        v = r.value
        if isinstance(v, CancelRequest):
            partition, offset = source_partition(r.epoch, r.partition), source_position(r.offset, r.index)
            commands.append(
                CancelOrder(
                    src_partition=partition,
                    src_offset=offset,
                    request_id=v.request_id,
                    order_id=v.order_id,
                    user_id=v.user_id,
                    symbol=v.symbol,
                    ts=v.ts,
                )
            )
            continue
        f = drawn.fate[v.order_id]
        if f == "untellable":
            continue  # dead-lettered only
        c = refusals.get(id(v)) or decisions[id(v)]
        commands.append(c)
        if isinstance(c, AcceptedOrder) and all(a.order_id != c.order_id for a in accepted):
            accepted.append(c)
            if c.type is not OrderType.LIMIT_MAKER and f != "redelivered":
                told.setdefault(CHANNELS.user(c.user_id), []).append(c.order_id)
    return commands, accepted, told


@given(batches(), st.lists(st.booleans(), min_size=14, max_size=14))
def test_decide_batch_agrees_with_a_request_at_a_time_model(drawn: Drawn, traced_at: list[bool]) -> None:
    traced = {id(r.value) for r, on in zip(drawn.records, traced_at, strict=False) if on}
    out = decide_batch(drawn.records, drawn.news, drawn.taking, MARKETS, CHANNELS, NOW, Traced(traced))
    commands, accepted, told_new = model(drawn)

    assert out.commands == commands
    assert out.accepted == accepted
    # dead letters: every request refused alone, with the record it came in, in the order they were found
    assert [(id(r.value), e) for r, e in out.dead] == [(id(loc.request), e) for loc, e in drawn.taking[1]]
    # the owners told: each accepted order's NEW once (a traced one continues its request's trace), then the
    # last state of every balance the holds changed; one list of events per channel
    positions = {}
    for channel, events in out.told.items():
        reports = [(orjson.loads(body), tp) for body, tp in map(tracing.unwrap, events)]
        news = [(report, tp) for report, tp in reports if report["e"] == "executionReport"]
        kinds = [report["e"] for report, _ in reports]
        assert kinds == ["executionReport"] * len(news) + ["outboundAccountPosition"] * (len(kinds) - len(news))
        assert [report["i"] for report, _ in news] == told_new.get(channel, [])
        for report, tp in news:
            assert (report["x"], report["X"], report["E"]) == ("NEW", "NEW", NOW)
            first = first_copy(drawn, report["i"])
            assert tp == (TP if id(first) in traced else None)  # the first copy's request, the one told
        for report, _ in reports[len(news) :]:
            user = int(channel.removeprefix("user:").removesuffix("-t"))
            positions.update({(user, b["a"]): (b["f"], b["l"]) for b in report["B"]})
    assert positions == {k: (fmt_amount(r["available"]), fmt_amount(r["held"])) for k, r in drawn.balances.items()}
    assert set(out.told) == {ch for ch, ids in told_new.items() if ids} | {CHANNELS.user(u) for u, _ in positions}
    assert_envelopes(out, drawn, traced)


def first_copy(drawn: Drawn, order_id: int) -> NewOrderRequest:
    """The first request of the batch for ``order_id``: the one its owner is told of."""
    return next(r.value for r in drawn.records if isinstance(r.value, NewOrderRequest) and r.value.order_id == order_id)


def assert_envelopes(out: BatchDecision, drawn: Drawn, traced: set[int]) -> None:
    """Each symbol's commands, in input order, each continuing its request's trace, to its requests' segment."""
    sent: dict[str, list[tuple[MatcherCommand, bytes | None]]] = {}
    for envelope in out.envelopes:
        assert envelope.epoch == drawn.records[0].epoch
        for c, tp in unpack_commands(envelope.value):
            assert c.symbol == envelope.symbol
            sent.setdefault(envelope.symbol, []).append((c, tp))
    kept = [
        r
        for r in drawn.records
        if not (isinstance(r.value, NewOrderRequest) and drawn.fate[r.value.order_id] == "untellable")
    ]
    assert len(kept) == len(out.commands)
    for symbol in SYMBOLS:
        want = [
            (c, TP if id(r.value) in traced else None)
            for r, c in zip(kept, out.commands, strict=True)
            if c.symbol == symbol
        ]
        assert sent.get(symbol, []) == want


def test_a_redelivered_batch_decides_the_same_bytes() -> None:
    """Postgres answers a redelivery with the stored decisions; the commands and envelopes are the same,
    and nobody is told NEW again."""
    records: list[kafka.Record[OrderRequest]] = [
        kafka.Record("order-requests", 2, 7, request(1, 1, "BTCUSDT", OrderType.LIMIT)),
        kafka.Record("order-requests", 2, 8, request(2, 2, "BTCUSDT", OrderType.LIMIT)),
    ]
    news = located(records)
    decisions: list[Any] = [accept(news[0]), rejected(news[1], news[1].request, -1013, "Filter failure: LOT_SIZE")]
    row = {"user_id": 1, "asset": "USDT", "available": 5, "held": 10}
    first = decide_batch(records, news, ([(news, (decisions, [row], set()))], []), MARKETS, CHANNELS, NOW)
    again = decide_batch(records, news, ([(news, (decisions, [], {1, 2}))], []), MARKETS, CHANNELS, NOW)
    assert again.commands == first.commands == decisions
    assert [e.value for e in again.envelopes] == [e.value for e in first.envelopes]
    assert again.accepted == first.accepted == [decisions[0]]
    assert list(first.told) == [CHANNELS.user(1)] and len(first.told[CHANNELS.user(1)]) == 2  # NEW, balance
    assert again.told == {}


def test_market_changes_are_decided_alone_between_the_requests_around_them() -> None:
    """A batch is cut around its market changes (``market_runs``): the change goes on to the matcher at its source
    position, and its row applies from the next run on (``changed_markets``)."""
    btc = DEFAULT_MARKETS[0]
    halted = spec_of(replace(btc, status="HALT"))
    values: list[Any] = [
        request(1, 7, "BTCUSDT", OrderType.LIMIT),
        MarketChangeRequest(request_id=90, symbol="BTCUSDT", market=halted, ts=5),
        request(2, 7, "BTCUSDT", OrderType.LIMIT),
        request(3, 7, "BTCUSDT", OrderType.LIMIT),
    ]
    records = [kafka.Record("order-requests", 0, 10 + i, v) for i, v in enumerate(values)]
    runs = market_runs(records)
    assert [[r.offset for r in run] for run in runs] == [[10], [11], [12, 13]]
    assert market_runs(records[2:]) == [records[2:]]
    assert changed_markets(runs[1]) == {"BTCUSDT": replace(btc, status="HALT")} and changed_markets(runs[2]) == {}
    decided = decide_batch(runs[1], [], ([], []), {"BTCUSDT": btc}, sredis.Channels(""), 0)
    (command,) = decided.commands
    assert isinstance(command, MarketChange) and command.market == halted
    assert (command.src_partition, command.src_offset) == (source_partition(0, 0), source_position(11, 0))
    assert [e.symbol for e in decided.envelopes] == ["BTCUSDT"] and not decided.accepted


def test_a_cancel_all_request_goes_on_at_its_source_position() -> None:
    value = CancelAllRequest(request_id=91, user_id=7, symbol="ETHUSDT", ts=5)
    record = kafka.Record("order-requests", 0, 12, value, index=3)
    decided = decide_batch([record], [], ([], []), {m.symbol: m for m in DEFAULT_MARKETS}, sredis.Channels(""), 0)
    position = {"src_partition": source_partition(0, 0), "src_offset": source_position(12, 3)}
    assert decided.commands == [CancelAllOrders(**position, request_id=91, user_id=7, symbol="ETHUSDT", ts=5)]
