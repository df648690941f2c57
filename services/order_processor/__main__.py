"""order-processor: check each order request, hold its funds, publish the decision.

Per batch, in this order (the seed's "Aurora first"): one Postgres transaction for every order row and
hold (``holds.py``); then what follows from it is decided without I/O (``batch.py``'s ``decide_batch``);
then one Redis pipeline for the hot book and the owners' user streams; then the decisions to
``validated-orders``; only when the broker acknowledged them is the input committed. A crash between any
two steps is completed by the redelivery, because each step is idempotent.

The user stream hears of an accepted order here, once its hold is committed (``shared.owner_reports``):
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

A market change (``MarketChangeRequest``, ``spot admin market``) is decided alone, between the requests before
and after it in the batch: it is passed on to the matcher at its place and its row taken from there on, so a
halt refuses exactly the orders after it in the symbol's sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from prometheus_client import Histogram

from shared import (
    deadletter,
    kafka,
    postgres,
    pressure,
    resilience,
    segment_keeper,
    segment_store,
    tracing,
)
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, now_ms, run
from shared.messages import OrderRequest, Topic, encode, unpack_requests

from . import startup, writes
from .averages import Averages
from .batch import VALIDATED, changed_markets, decide_batch, located, market_runs
from .holds import Holds

SERVICE = "order-processor"  # also the consumer group and the Deployment
log = logging.getLogger(SERVICE)

BATCH_SECONDS = Histogram("spot_processor_batch_seconds", "Time to decide and publish one batch")
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
    """The processor's loop: each batch read, its holds taken, decided (``decide_batch``), written, committed."""
    markets = await postgres.load_markets(db)
    holds = Holds(db, markets, settings.open_orders_max, settings.exchange_open_orders_max)
    averages = Averages(db)  # PERCENT_PRICE_BY_SIDE's reference
    channels = sredis.Channels(settings.topic_suffix)
    await startup.repair(settings, markets, inbox, outbox, db, cache, stop)
    health.watch(resilience.probes(db=db, cache=cache, outbox=outbox))
    health.up()
    dead = deadletter.DeadLetters(outbox, SERVICE)
    backlog = pressure.Reporter(settings, SERVICE)
    async for batch in inbox.batches(stop):
        with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
            for records in market_runs(batch.records):  # a market change alone: the runs after it see it
                news = located(records)
                now = now_ms()
                holds.averages = await averages.of({loc.request.symbol for loc in news}, now)
                taking = await writes.take_holds(holds, news, now)
                decided = decide_batch(records, news, taking, markets, channels, now, traced)
                for record, exc in decided.dead:  # for an operator (the owner is told through the matcher)
                    await dead.send(record, encode(record.value), record.value.symbol, exc)
                pipe = cache.pipeline(transaction=False)  # one round trip, before the matcher hears of them
                writes.queue_redis(pipe, decided, news)
                backlog.queue(pipe, batch.oldest_ms, now_ms())  # how long requests waited: the gateways' admission
                with sredis.timed("hot_book"):
                    await pipe.execute()
                for envelope in decided.envelopes:
                    await outbox.send(VALIDATED, envelope.value, key=envelope.symbol, epoch=envelope.epoch)
                writes.count(decided.commands)
                markets.update(changed_markets(records))
            await outbox.flush()
            await inbox.commit(batch)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
