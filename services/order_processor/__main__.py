"""order-processor: check each order request, hold its funds, publish the decision.

Per batch, in this order (the seed's "Aurora first"): one Postgres transaction for every order row and
hold; then one Redis pipeline for the hot book and the owners' user streams; then the decisions to
``validated-orders``; only when the broker acknowledged them is the input committed. A crash between any
two steps is completed by the redelivery, because each step is idempotent.

The user stream hears of an accepted order here, once its hold is committed (``confirmed_on_acceptance``):
its ``executionReport`` NEW and the owner's ``outboundAccountPosition``. Waiting for the matcher's output
would put two more Kafka hops between the REST ACK and the confirmation; the matcher cannot refuse such an
order, only fill or expire it, and market-data does not send its NEW again. A redelivered request's NEW
is not sent again: by then the matcher may have filled the order, and a client that saw the fill would
take a late NEW for the order reopening. So a crash between the commit and this step loses that NEW (as
pub/sub loses what is published while a client is away); the REST ACK and the matcher's reports remain.

The decisions go as envelopes (``shared.messages.MatcherCommands``): one record per symbol per batch (more
only past ``ENVELOPE_MAX_BYTES``), its commands in input order, each with the trace of its request inside,
since the Kafka client's cost is per record. A redelivered batch re-sends the same commands, which the
matcher skips by their ``(src_partition, src_offset)``: the request's partition and ``source_position`` (its
record's offset and, since the gateway sends envelopes too, its place in that record).

A request that decodes but cannot be applied (its Postgres step raises for it alone: a broken invariant,
a value no column takes) must not fail its batch forever: the batch's Postgres step is cut in halves until
it is found (``deadletter.isolate``; each part is one transaction, so a failed one changed nothing). It is
refused, REJECTED to its owner with the reason and holding nothing, and dead-lettered to
``order-requests.dlq`` for an operator; an outage is waited out as before. A redelivery decides the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence

import asyncpg
import orjson
from prometheus_client import Counter, Histogram

from shared import (
    deadletter,
    errors,
    kafka,
    postgres,
    pressure,
    resilience,
    segment_keeper,
    segment_store,
    segments,
    tracing,
)
from shared import redis as sredis
from shared.binance import acceptance_update, account_positions, confirmed_on_acceptance, execution_report
from shared.config import Settings
from shared.domain import INT64_MAX
from shared.identity import source_partition
from shared.lifecycle import Health, now_ms, run
from shared.messages import (
    AcceptedOrder,
    CancelOrder,
    CancelRequest,
    MatcherCommand,
    NewOrderRequest,
    OrderRequest,
    RejectedOrder,
    Topic,
    encode,
    envelopes,
    source_position,
    unpack_requests,
)
from shared.reconcile import reconcile_symbol

from . import hotbook
from .holds import Decision, Holds, Located, rejected

SERVICE = "order-processor"  # also the consumer group and the Deployment
log = logging.getLogger(SERVICE)

DECISIONS = Counter("spot_orders_decided_total", "Order requests decided", ["outcome", "reason"])
BATCH_SECONDS = Histogram("spot_processor_batch_seconds", "Time to decide and publish one batch")


VALIDATED = Topic.VALIDATED_ORDERS.value


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


UNAPPLIED_MSG_MAX = 200  # characters of the reason a refused owner reads


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
    taken: Sequence[tuple[Sequence[Located], tuple[list[Decision], list[asyncpg.Record], set[int]]]],
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


async def dead_letter(
    dead: deadletter.DeadLetters,
    records: Sequence[kafka.Record[OrderRequest]],
    failed: Sequence[tuple[Located, Exception]],
) -> None:
    """Each request that cannot be applied to ``order-requests.dlq``, for an operator (its owner is told too)."""
    by_request = {id(r.value): r for r in records}
    for loc, exc in failed:
        await dead.send(by_request[id(loc.request)], encode(loc.request), loc.request.symbol, exc)


REQUESTS = Topic.ORDER_REQUESTS.value


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with kafka.producer(settings) as outbox:

        async def segment_done(topic: str, partition: int, epoch: int) -> None:
            """Order requests of segment ``epoch`` are all decided on this partition and their commands
            acknowledged: the matcher may leave the segment once it has read them (``shared.segments``)."""
            await outbox.flush()
            await segment_store.record_seal(cache, settings, VALIDATED, partition, epoch)
            await outbox.seal(VALIDATED, partition, epoch)

        async with (
            kafka.consumer(
                settings,
                [Topic.ORDER_REQUESTS],
                SERVICE,
                kafka.Envelopes(unpack_requests),
                outbox,
                fetch=(settings.kafka_request_fetch_max_wait_ms, settings.kafka_request_fetch_min_bytes),
                on_segment_done=segment_done,
            ) as inbox,
            postgres.pool(settings) as db,
            sredis.client(settings) as cache,
        ):
            keeper = asyncio.create_task(segment_keeper.keep(settings, cache, db, stop))
            try:
                await decide(settings, stop, health, inbox, outbox, db, cache)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper


async def decide(
    settings: Settings,
    stop: asyncio.Event,
    health: Health,
    inbox: kafka.Inbox[OrderRequest],
    outbox: kafka.Outbox,
    db: asyncpg.Pool,
    cache: sredis.Client,
) -> None:
    """The processor's loop: each batch decided, held, told and published, then committed."""
    markets = await postgres.load_markets(db)
    holds = Holds(db, markets, settings.open_orders_max)
    channels = sredis.Channels(settings.topic_suffix)
    for market in markets.values():  # the reconciler runs on start: repair what a crash left behind
        partition = kafka.partition_of(market.symbol, settings.kafka_partitions)
        segment = inbox.epoch_of(REQUESTS, partition)
        if settings.kafka_segment_s:  # not past a seal written just before a crash: the matcher may have left
            segment = segments.unsealed(segment, await segment_store.sealed(cache, settings, VALIDATED, partition))
        report = await reconcile_symbol(market, db, cache, outbox, segment)
        if not report.clean:
            log.warning("reconciled %s: %s", market.symbol, report.as_json())
    health.watch(resilience.probes(db=db, cache=cache, outbox=outbox))
    health.up()
    # positions rank by the log segment each request was read from: a newer segment or log's after every
    # older one's (shared.identity)
    dead = deadletter.DeadLetters(outbox, SERVICE)
    backlog = pressure.Reporter(settings, SERVICE)
    async for batch in inbox.batches(stop):
        with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
            news = [
                Located(source_partition(r.epoch, r.partition), source_position(r.offset, r.index), r.value)
                for r in batch.records
                if isinstance(r.value, NewOrderRequest)
            ]
            now = now_ms()
            taken, failed = await deadletter.isolate(news, functools.partial(holds.take, now=now))
            failed += holds.unstorable()  # refused alone inside the step: told and dead-lettered the same way
            decisions, balances, redelivered = combined(news, taken, failed)
            dropped = {loc.request.order_id for loc, d in zip(news, decisions, strict=True) if d is None}
            if failed:
                await dead_letter(dead, batch.records, failed)
            decided = iter(decisions)
            commands: list[MatcherCommand] = []
            accepted: list[AcceptedOrder] = []
            told: dict[str, list[bytes]] = {}  # channel -> its events, in order: one message per user
            seen: set[int] = set()  # accepted order ids: a second copy of a request is told of once
            for r in batch.records:
                if isinstance(r.value, CancelRequest):
                    cancel = r.value
                    commands.append(
                        CancelOrder(
                            src_partition=source_partition(r.epoch, r.partition),
                            src_offset=source_position(r.offset, r.index),
                            request_id=cancel.request_id,
                            order_id=cancel.order_id,
                            user_id=cancel.user_id,
                            symbol=cancel.symbol,
                            ts=cancel.ts,
                        )
                    )
                    continue
                decision = next(decided)
                if decision is None:
                    continue  # dead-lettered, and no owner to tell (an id past what any store holds)
                commands.append(decision)
                if isinstance(decision, AcceptedOrder) and decision.order_id not in seen:
                    seen.add(decision.order_id)
                    accepted.append(decision)
                    if confirmed_on_acceptance(decision.type) and decision.order_id not in redelivered:
                        new = acceptance_update(decision)
                        event = orjson.dumps(execution_report(markets[decision.symbol], new, now))
                        if traced.tracked:
                            event = tracing.wrap(event, traced.traceparent(r.value))
                        told.setdefault(channels.user(decision.user_id), []).append(event)
            for user_id, position in account_positions(balances, now).items():
                told.setdefault(channels.user(user_id), []).append(orjson.dumps(position))
            # the hot book, and the owners told: their orders are NEW and their funds held (one round trip,
            # before the matcher hears of the orders, so each NEW precedes whatever the matcher reports)
            pipe = cache.pipeline(transaction=False)
            hotbook.queue(pipe, accepted)
            publications = sredis.Publications()
            for channel, events in told.items():
                publications.add_all(channel, events)
            publications.queue(pipe)
            backlog.queue(pipe, batch.oldest_ms, now_ms())  # how long requests waited: the gateways' admission
            with sredis.timed("hot_book"):
                await pipe.execute()
            sent = [r for r in batch.records if r.value.request_id not in dropped] if dropped else batch.records
            for symbol, part in by_symbol(sent, commands, traced).items():
                for value in envelopes(VALIDATED, symbol, part.encoded, part.traces):
                    await outbox.send(VALIDATED, value, key=symbol, epoch=part.epoch)
            for c in commands:
                if isinstance(c, RejectedOrder):
                    DECISIONS.labels("rejected", str(c.code)).inc()
                elif isinstance(c, AcceptedOrder):
                    DECISIONS.labels("accepted", "").inc()
            await outbox.flush()
            await inbox.commit(batch)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
