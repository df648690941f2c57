"""What the order processor does with one batch, once Postgres has decided its new orders. Pure, no I/O.

``decide_batch`` takes the batch's records and what ``Holds.take`` answered for its new orders (through
``deadletter.isolate``: the parts it cut the batch into, and the requests that failed alone) and gives back
what the main loop writes, in the order it writes it:

- the requests to dead-letter (each refused alone: its owner is told REJECTED through the matcher);
- the accepted orders for the hot book, each once;
- what each owner's user stream is told (``shared.owner_reports``): the NEW of each accepted order, its
  first copy only and not on a redelivery, then the balances the holds changed, one message per channel;
- the ``validated-orders`` records: one command per request (cancels and amends pass as they came; but one
  nobody can be told of), grouped by
  symbol into envelopes, each command continuing its request's trace.

The same records and the same answers from Postgres give the same bytes, so a redelivered batch re-sends what
the first delivery sent, which the matcher skips by source position.

The commands go as envelopes (``shared.messages.MatcherCommands``): one record per symbol per batch (more only
past ``ENVELOPE_MAX_BYTES``), its commands in input order, each with the trace of its request inside, since the
Kafka client's cost is per record. The matcher skips a redelivered command by its ``(src_partition,
src_offset)``: the request's partition and ``source_position`` (its record's offset and, since the gateway
sends envelopes too, its place in that record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import orjson

from shared import deadletter, errors, kafka, tracing
from shared import redis as sredis
from shared.binance import account_positions, execution_report
from shared.domain import INT64_MAX, Market
from shared.identity import source_partition
from shared.messages import (
    AcceptedOrder,
    AmendOrder,
    AmendRequest,
    CancelAllOrders,
    CancelAllRequest,
    CancelOrder,
    CancelRequest,
    MarketChange,
    MarketChangeRequest,
    MatcherCommand,
    NewListRequest,
    NewOrderRequest,
    OrderListCommand,
    OrderRequest,
    RejectedOrder,
    Topic,
    encode,
    envelopes,
    market_of,
    source_position,
)
from shared.owner_reports import acceptance_update, confirmed_on_acceptance

from .holds import Decision, Located, Taken, rejected

VALIDATED = Topic.VALIDATED_ORDERS.value
UNAPPLIED_MSG_MAX = 200  # characters of the reason a refused owner reads

Taking = tuple[list[tuple[Sequence[Located], Taken]], list[tuple[Located, Exception]]]
"""``deadletter.isolate`` over ``Holds.take``: each part's requests with its answer, and each request that
failed alone with why (``Holds.unstorable``'s added)."""


@dataclass(slots=True)
class Envelope:
    """One ``validated-orders`` record: its key, the log segment its requests were read from, its bytes."""

    symbol: str
    epoch: int
    value: bytes


@dataclass(slots=True)
class BatchDecision:
    """What one batch makes the processor write, in writing order (see the module's docstring)."""

    dead: list[tuple[kafka.Record[OrderRequest], Exception]] = field(default_factory=list)
    accepted: list[AcceptedOrder] = field(default_factory=list)
    told: dict[str, list[bytes]] = field(default_factory=dict)  # user channel -> its events, in order
    commands: list[MatcherCommand] = field(default_factory=list)  # in input order
    envelopes: list[Envelope] = field(default_factory=list)


def located(records: Sequence[kafka.Record[OrderRequest]]) -> list[Located]:
    """The batch's new-order requests, each with the source position the matcher deduplicates by.

    Positions rank by the log segment each request was read from: a newer segment's or log's come after every
    older one's (``shared.identity``)."""
    out: list[Located] = []
    for r in records:
        if isinstance(r.value, NewOrderRequest):
            out.append(Located(source_partition(r.epoch, r.partition), source_position(r.offset, r.index), r.value))
        elif isinstance(r.value, NewListRequest):  # each leg, at the list's position, decided with the others
            partition, position = source_partition(r.epoch, r.partition), source_position(r.offset, r.index)
            out += (Located(partition, position, leg, r.value) for leg in r.value.legs)
    return out


def decide_batch(
    records: Sequence[kafka.Record[OrderRequest]],
    news: Sequence[Located],
    taking: Taking,
    markets: Mapping[str, Market],
    channels: sredis.Channels,
    now: int,
    traced: tracing.Consumed = tracing.NOT_TRACED,
) -> BatchDecision:
    """The batch's outputs from its ``records``, their new orders ``news`` (``located``) and ``taking``, the
    holds' answer for them; ``now`` stamps the reports, ``traced`` has the records' traces."""
    taken, failed = taking
    decisions, balances, redelivered = combined(news, taken, failed)
    dropped = {loc.request.order_id for loc, d in zip(news, decisions, strict=True) if d is None}
    out = BatchDecision(dead=dead_letters(records, failed))
    decided = iter(decisions)
    seen: set[int] = set()  # accepted order ids: a second copy of a request is told of once
    for r in records:
        if isinstance(r.value, CancelRequest):
            out.commands.append(cancel_command(r, r.value))
            continue
        if isinstance(r.value, CancelAllRequest):
            out.commands.append(cancel_all_command(r, r.value))
            continue
        if isinstance(r.value, MarketChangeRequest):
            out.commands.append(market_command(r, r.value))
            continue
        if isinstance(r.value, AmendRequest):
            out.commands.append(amend_command(r, r.value))
            continue
        if isinstance(r.value, NewListRequest):
            legs = [next(decided) for _ in r.value.legs]
            if any(d is None for d in legs):
                dropped.add(r.value.list_id)  # a leg nobody can be told of: the list goes nowhere
                continue
            command = list_command(r, r.value, [d for d in legs if d is not None])
            out.commands.append(command)
            if r.value.list_id not in seen:
                seen.add(r.value.list_id)
                out.accepted += command.orders  # their NEW comes from the matcher, which may refuse the list
            continue
        decision = next(decided)
        if decision is None:
            continue  # dead-lettered, and no owner to tell (an id past what any store holds)
        out.commands.append(decision)
        if isinstance(decision, AcceptedOrder) and decision.order_id not in seen:
            seen.add(decision.order_id)
            out.accepted.append(decision)
            if confirmed_on_acceptance(decision.type) and decision.order_id not in redelivered:
                new = acceptance_update(decision)
                event = orjson.dumps(execution_report(markets[decision.symbol], new, now))
                if traced.tracked:
                    event = tracing.wrap(event, traced.traceparent(r.value))
                out.told.setdefault(channels.user(decision.user_id), []).append(event)
    for user_id, position in account_positions(balances, now).items():
        out.told.setdefault(channels.user(user_id), []).append(orjson.dumps(position))
    sent = [r for r in records if r.value.request_id not in dropped] if dropped else records
    for symbol, part in by_symbol(sent, out.commands, traced).items():
        for value in envelopes(VALIDATED, symbol, part.encoded, part.traces):
            out.envelopes.append(Envelope(symbol, part.epoch, value))
    return out


def list_command(r: kafka.Record[OrderRequest], lst: NewListRequest, legs: list[Decision]) -> OrderListCommand:
    """An order list goes to the matcher as one command at its source position: its accepted legs, or, when
    any leg was refused, every leg's refusal (a leg accepted alone, its list cut apart by a batch decided in
    parts, is refused with the first refusal: the matcher's REJECTED releases its hold)."""
    refusals = [d for d in legs if isinstance(d, RejectedOrder)]
    orders = [d for d in legs if isinstance(d, AcceptedOrder)]
    rejected: list[RejectedOrder] = []
    if refusals:
        first = refusals[0]
        rejected = [
            d
            if isinstance(d, RejectedOrder)
            else RejectedOrder(
                src_partition=d.src_partition,
                src_offset=d.src_offset,
                order_id=d.order_id,
                user_id=d.user_id,
                symbol=d.symbol,
                side=d.side,
                type=d.type,
                tif=d.tif,
                price_ticks=d.price_ticks,
                qty_lots=d.qty_lots,
                client_order_id=d.client_order_id,
                code=first.code,
                msg=first.msg,
                ts=d.ts,
            )
            for d in legs
        ]
        orders = []
    return OrderListCommand(
        src_partition=source_partition(r.epoch, r.partition),
        src_offset=source_position(r.offset, r.index),
        list_id=lst.list_id,
        user_id=lst.user_id,
        symbol=lst.symbol,
        contingency=lst.contingency,
        list_client_id=lst.list_client_id,
        working=lst.working,
        ts=lst.ts,
        orders=orders,
        rejected=rejected,
    )


def cancel_command(r: kafka.Record[OrderRequest], cancel: CancelRequest) -> CancelOrder:
    """A cancel request goes to the matcher as it came, at its source position (the matcher decides it)."""
    return CancelOrder(
        src_partition=source_partition(r.epoch, r.partition),
        src_offset=source_position(r.offset, r.index),
        request_id=cancel.request_id,
        order_id=cancel.order_id,
        user_id=cancel.user_id,
        symbol=cancel.symbol,
        ts=cancel.ts,
        restriction=cancel.restriction,
    )


def amend_command(r: kafka.Record[OrderRequest], amend: AmendRequest) -> AmendOrder:
    """An amend goes to the matcher as it came, like a cancel: it only ever shrinks a hold, which settlement
    releases from the matcher's REPLACED update, so there is nothing to decide or hold here."""
    return AmendOrder(
        src_partition=source_partition(r.epoch, r.partition),
        src_offset=source_position(r.offset, r.index),
        request_id=amend.request_id,
        order_id=amend.order_id,
        user_id=amend.user_id,
        symbol=amend.symbol,
        qty_lots=amend.qty_lots,
        client_order_id=amend.client_order_id,
        ts=amend.ts,
    )


def cancel_all_command(r: kafka.Record[OrderRequest], cancel: CancelAllRequest) -> CancelAllOrders:
    """A mass cancel goes to the matcher as a cancel does: at its source position, decided there, so it takes
    what is open at one point of the symbol's sequence."""
    return CancelAllOrders(
        src_partition=source_partition(r.epoch, r.partition),
        src_offset=source_position(r.offset, r.index),
        request_id=cancel.request_id,
        user_id=cancel.user_id,
        symbol=cancel.symbol,
        ts=cancel.ts,
    )


def market_command(r: kafka.Record[OrderRequest], change: MarketChangeRequest) -> MarketChange:
    """A market change goes on to the matcher at its source position: it applies it at the same point."""
    return MarketChange(
        src_partition=source_partition(r.epoch, r.partition),
        src_offset=source_position(r.offset, r.index),
        request_id=change.request_id,
        symbol=change.symbol,
        market=change.market,
        ts=change.ts,
    )


def market_runs(records: Sequence[kafka.Record[OrderRequest]]) -> list[Sequence[kafka.Record[OrderRequest]]]:
    """The batch cut around its market changes, each alone, in order: a change applies from the next run on.
    A batch without one (nearly all) is one run, not copied.

    A change (``spot admin market``) is passed on to the matcher at its place and its row taken from there
    on, so a halt refuses exactly the orders after it in the symbol's sequence."""
    if not any(type(r.value) is MarketChangeRequest for r in records):  # exact type: cheap per request
        return [records]
    runs: list[Sequence[kafka.Record[OrderRequest]]] = []
    run: list[kafka.Record[OrderRequest]] = []
    for r in records:
        if isinstance(r.value, MarketChangeRequest):
            if run:
                runs.append(run)
            runs.append([r])
            run = []
        else:
            run.append(r)
    if run:
        runs.append(run)
    return runs


def changed_markets(records: Sequence[kafka.Record[OrderRequest]]) -> dict[str, Market]:
    """The rows a run's market changes set (a change whose row does not make a ``Market`` is refused whole
    by ``spot admin market`` before it is sent, so one here is well formed)."""
    return {r.value.symbol: market_of(r.value.market) for r in records if isinstance(r.value, MarketChangeRequest)}


def refusal(loc: Located, exc: Exception) -> RejectedOrder | None:
    """The REJECTED a request that cannot be applied gets (it holds nothing, it has no row), or None when its
    ids are past what Postgres and the clients read: nobody can be told of it, it is only dead-lettered."""
    r = loc.request
    if not all(0 <= n <= INT64_MAX for n in (r.order_id, r.user_id, r.ts)):
        return None
    msg = f"Order could not be applied: {deadletter.reason_of(exc)}"[:UNAPPLIED_MSG_MAX]
    return rejected(loc, r, errors.NEW_ORDER_REJECTED, msg)


def combined(
    news: Sequence[Located],
    taken: Sequence[tuple[Sequence[Located], Taken]],
    failed: Sequence[tuple[Located, Exception]],
) -> tuple[list[Decision | None], list[asyncpg.Record], set[int]]:
    """``Holds.take``'s results over the parts ``deadletter.isolate`` cut a batch into, back in input order;
    a request that failed alone gets its ``refusal``. The balances are the last each part wrote."""
    by_request: dict[int, Decision | None] = {}
    balances: dict[tuple[int, str], asyncpg.Record] = {}
    redelivered: set[int] = set()
    for part, (decisions, written, again) in taken:
        by_request.update((id(loc), d) for loc, d in zip(part, decisions, strict=True))
        balances.update(((b["user_id"], b["asset"]), b) for b in written)
        redelivered |= again
    by_request.update((id(loc), refusal(loc, exc)) for loc, exc in failed)
    return [by_request[id(loc)] for loc in news], list(balances.values()), redelivered


def dead_letters(
    records: Sequence[kafka.Record[OrderRequest]], failed: Sequence[tuple[Located, Exception]]
) -> list[tuple[kafka.Record[OrderRequest], Exception]]:
    """Each request that cannot be applied, with the record it came in, for ``order-requests.dlq``."""
    by_request = {id(r.value): r for r in records}
    return [(by_request[id(loc.request)], exc) for loc, exc in failed]


class Part:
    """One symbol's commands of a batch, each encoded once, in input order, with the traces they continue."""

    __slots__ = ("encoded", "epoch", "traces")

    def __init__(self) -> None:
        self.encoded: list[bytes] = []
        self.traces: dict[int, str] = {}  # position in ``encoded`` -> traceparent
        self.epoch = 0


def by_symbol(
    records: Sequence[kafka.Record[OrderRequest]], commands: Sequence[MatcherCommand], traced: tracing.Consumed
) -> dict[str, Part]:
    """The batch's commands (one per request, in order) grouped by symbol for ``envelopes``: the order of a
    symbol's commands is its requests' order, and each continues its request's trace. A part goes to the log
    segment its requests were read from (one partition, so one segment, per symbol)."""
    parts: dict[str, Part] = {}
    tracked = traced.tracked
    for r, c in zip(records, commands, strict=True):
        part = parts.get(c.symbol)
        if part is None:
            part = parts[c.symbol] = Part()
            part.epoch = r.epoch
        if tracked and (tp := traced.traceparent(r.value)) is not None:
            part.traces[len(part.encoded)] = tp.decode()
        part.encoded.append(encode(c))
    return parts
