"""The order processor's writes for one run of requests (``Writer.write``), in the seed's order ("Aurora first").

Postgres first (``take_holds``: every order row and hold of the run in one transaction); then what follows is
decided without I/O (``batch.decide_batch``); then one Redis round trip (``queue_redis``: the hot book, the
pending entries the rows settle, the owners told, the backlog for the gateways' admission), before the
matcher hears of the orders, so each NEW precedes whatever the matcher reports; then the commands to
``validated-orders``. The main loop commits the input only once the broker acknowledged them, which it waits for
while the next batch is decided (``Acks``). A crash between
any two steps is completed by the redelivery, because each step is idempotent.

A request that decodes but cannot be applied (its Postgres step raises for it alone: a broken invariant, a
value no column takes) must not fail its batch forever: the run's Postgres step is cut in halves until it is
found (``deadletter.isolate``; each part is one transaction, so a failed one changed nothing). It is refused,
REJECTED to its owner with the reason and holding nothing, and dead-lettered to ``order-requests.dlq`` for an
operator; an outage is waited out as before. A redelivery decides the same.

The user stream hears of an accepted order here, once its hold is committed (``shared.owner_reports`` says
why here and not after the matcher, and why a redelivered request's NEW is not sent again).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter

from shared import deadletter, kafka, pending, pressure, segment_store, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.lifecycle import now_ms
from shared.messages import AcceptedOrder, MatcherCommand, OrderListCommand, OrderRequest, RejectedOrder, encode

from . import hotbook
from .averages import Averages
from .batch import VALIDATED, BatchDecision, Taking, changed_markets, decide_batch, located
from .holds import Holds, Located

DECISIONS = Counter("spot_orders_decided_total", "Order requests decided", ["outcome", "reason"])


async def take_holds(holds: Holds, news: Sequence[Located], now: int) -> Taking:
    """The batch's order rows and holds in Postgres: one transaction, cut in halves around a request that
    cannot be applied (``deadletter.isolate``) until it is found; an outage is raised as it comes."""
    taken, failed = await deadletter.isolate(news, functools.partial(holds.take, now=now))
    failed += holds.unstorable()  # refused alone inside the step: told and dead-lettered the same way
    return taken, failed


def queue_redis(pipe: sredis.Pipeline, decided: BatchDecision, news: Sequence[Located]) -> None:
    """What one batch writes to Redis once its rows are committed: the accepted orders into the hot book, the
    decided requests out of the pending ones (``shared.pending``), and the owners' user-stream events, one
    message per channel."""
    hotbook.queue(pipe, decided.accepted)
    pending.queue_decided(pipe, (loc.request for loc in news))
    publications = sredis.Publications()
    for channel, events in decided.told.items():
        publications.add_all(channel, events)
    publications.queue(pipe)


def count(commands: Sequence[MatcherCommand]) -> None:
    for c in commands:
        if isinstance(c, RejectedOrder):
            DECISIONS.labels("rejected", str(c.code)).inc()
        elif isinstance(c, AcceptedOrder):
            DECISIONS.labels("accepted", "").inc()
        elif isinstance(c, OrderListCommand):  # each leg of an order list, as the single orders are counted
            for r in c.rejected:
                DECISIONS.labels("rejected", str(r.code)).inc()
            if c.orders:
                DECISIONS.labels("accepted", "").inc(len(c.orders))


class Writer:
    """Decides and writes runs of requests (``batch.market_runs``: a market change alone) for the main loop."""

    def __init__(
        self,
        settings: Settings,
        markets: dict[str, Market],
        outbox: kafka.Outbox,
        db: asyncpg.Pool,
        cache: sredis.Client,
    ) -> None:
        self.markets, self.outbox, self.cache = markets, outbox, cache
        self.holds = Holds(db, markets, settings.open_orders_max, settings.exchange_open_orders_max)
        self.averages = Averages(db)  # PERCENT_PRICE_BY_SIDE's reference
        self.channels = sredis.Channels(settings.topic_suffix)
        self.dead = deadletter.DeadLetters(outbox, "order-processor")
        self.backlog = pressure.Reporter(settings, "order-processor")

    async def write(
        self, records: Sequence[kafka.Record[OrderRequest]], traced: tracing.Consumed, oldest_ms: int | None
    ) -> None:
        """One run: holds in Postgres, the decision, one Redis round trip, the commands sent (not yet flushed)."""
        news = located(records)
        now = now_ms()
        self.holds.averages = await self.averages.of({loc.request.symbol for loc in news}, now)
        taking = await take_holds(self.holds, news, now)
        decided = decide_batch(records, news, taking, self.markets, self.channels, now, traced)
        for record, exc in decided.dead:  # for an operator (the owner is told through the matcher)
            await self.dead.send(record, encode(record.value), record.value.symbol, exc)
        pipe = self.cache.pipeline(transaction=False)  # one round trip, before the matcher hears of them
        queue_redis(pipe, decided, news)
        self.backlog.queue(pipe, oldest_ms, now_ms())  # how long requests waited: the gateways' admission
        with sredis.timed("hot_book"):
            await pipe.execute()
        for envelope in decided.envelopes:
            await self.outbox.send(VALIDATED, envelope.value, key=envelope.symbol, epoch=envelope.epoch)
        count(decided.commands)
        self.markets.update(changed_markets(records))


class Acks:
    """Batches pipelined one deep: batch N's commands are acknowledged by the broker while N+1 is decided, and
    N's input offsets are committed once its acks are in. The flush was 29% of the processor's time at 300
    orders/s (`bench soak`, its metrics), time in which the requests behind it waited for a loop that did
    nothing. The producer keeps each partition's records in order (one batch in flight per partition), so
    the matcher still reads N before N+1; a failed ack raises here, as the flush did, and the redelivery
    from N's offsets decides both again (every step is idempotent)."""

    def __init__(self, outbox: kafka.Outbox) -> None:
        self.outbox = outbox
        self._in_flight: asyncio.Future[None] | None = None
        self._batch: kafka.Batch[OrderRequest] | None = None

    async def sent(self, batch: kafka.Batch[OrderRequest], inbox: kafka.Inbox[OrderRequest]) -> None:
        """``batch`` is written and its commands sent: commit the one before once its acks are in."""
        in_flight = self.outbox.sent()
        await self.settle(inbox)
        self._in_flight, self._batch = in_flight, batch
        if batch.sealed:  # it reached a segment's end: the next segment is read only once it is committed
            await self.settle(inbox)

    async def settle(self, inbox: kafka.Inbox[OrderRequest]) -> None:
        """Wait for the acks of the batch in flight, and commit it."""
        await self.acked()
        batch, self._batch = self._batch, None
        if batch is not None:
            await inbox.commit(batch)

    async def acked(self) -> None:
        """Everything sent so far is acknowledged (what a seal must follow)."""
        await self.outbox.flush()
        if self._in_flight is not None:
            await self._in_flight


def sealer(settings: Settings, acks: Acks, cache: sredis.Client) -> kafka.SegmentDone:
    """The consumer's ``on_segment_done``: once order requests of segment ``epoch`` are all decided on a partition
    and their commands acknowledged, the matcher may leave the segment once it has read them (``shared.segments``)."""
    outbox = acks.outbox

    async def segment_done(ends: Sequence[kafka.SegmentEnd]) -> None:
        await acks.acked()
        await segment_store.record_seals(
            cache, settings, VALIDATED, [(partition, epoch) for _, partition, epoch in ends]
        )
        await outbox.seal_all([(VALIDATED, partition, epoch) for _, partition, epoch in ends])

    return segment_done
