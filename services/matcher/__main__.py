"""matcher: apply validated orders to each symbol's book, commit the book, publish what happened.

One matcher owns a symbol at a time (Kafka assigns the partition). Per batch: apply every command (pure,
``book.py``), commit each touched symbol's book and outbox to Redis (``bookstore.py``), publish the
``matched-events`` and ``trade-execution`` records (``outputs.py``), wait for the acks, commit the input
offsets; the wait for one batch's acks overlaps the next batch's work (``pipeline.py``'s ``Matcher``). On a
partition assignment, the books of the symbols it carries are reloaded from Redis and their outboxes
re-published, so a crash anywhere loses and doubles nothing.

Inputs are envelopes too (``shared.messages.MatcherCommands``: one record per symbol per order-processor
batch; single commands, as older processors wrote them, still decode). An envelope is applied whole within
one batch, and a redelivered command is skipped by its own ``(src_partition, src_offset)`` (the request's
position, not the record's), whatever record carried it.

Outputs are envelopes (``shared.messages.MatchedEvents``, ``TradeExecutions``): per topic, one record per
symbol per batch (more only past ``ENVELOPE_MAX_BYTES``) carries that batch's messages in order, since the
Kafka client's cost is per record. The outbox holds exactly those records, so a re-publish after a crash
sends the same bytes at new offsets, and consumers skip each message by ``(symbol, seq)``.

An event continues the trace of the command that caused it (its ``traceparent``, inside the envelope); the
match latency of every order (ingestion's acceptance ``ts`` to the event's ``ts``) is observed once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

from aiokafka import TopicPartition
from prometheus_client import Histogram

from shared import kafka, postgres, resilience
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.lifecycle import Health, run
from shared.messages import Topic, unpack_commands
from shared.segment_ring import Ring

from . import startup
from .bookstore import BookStore
from .outputs import MATCHED, TRADES_OUT
from .pipeline import SERVICE, Matcher

BATCH_SECONDS = Histogram(
    "spot_matcher_batch_seconds",
    "Time to match, commit and send one batch, and to see the batch before it acknowledged",
)
# Tracked objects allocated (net of those freed) before CPython runs a young collection; its default, 700,
# is crossed dozens of times by every batch, whose records, commands and events all die with the batch
# anyway (acyclic: reference counting frees them), and each collection promotes the live ones towards the
# full collections that walk the books. Above what one batch holds, collections come from growth only.
GC_YOUNG_THRESHOLD = 50_000

VALIDATED = Topic.VALIDATED_ORDERS.value


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    async with postgres.pool(settings, max_size=1) as db:
        markets = await postgres.load_markets(db)
        settled = await startup.settled_sequences(db)
    async with kafka.producer(settings) as outbox, sredis.client(settings) as cache:
        store = BookStore(cache)
        startup.refuse_lost_writes(await store.sequences(list(markets)), settled)
        count = settings.kafka_partitions

        async def segment_done(topic: str, partition: int, epoch: int) -> None:
            """Every command of segment ``epoch`` on this partition is matched and its outputs acknowledged
            (its batch was committed after its acks): the readers of both outputs may leave the segment."""
            await outbox.seal(MATCHED, partition, epoch)
            await outbox.seal(TRADES_OUT, partition, epoch)

        async with contextlib.AsyncExitStack() as stack:
            ring = None
            if settings.kafka_segment_s:
                ring = await stack.enter_async_context(kafka.segment_ring(settings, SERVICE, segment_done))
            await match_forever(settings, stop, health, outbox, cache, store, markets, count, ring)


async def match_forever(
    settings: Settings,
    stop: asyncio.Event,
    health: Health,
    outbox: kafka.Outbox,
    cache: sredis.Client,
    store: BookStore,
    markets: dict[str, Market],
    count: int,
    ring: Ring | None,
) -> None:
    """The matcher's loop over its assigned partitions, on the segment ``ring`` when segments are on."""

    def segment_of(partition: int) -> int:
        return ring.epoch_of(VALIDATED, partition) if ring is not None else settings.log_epoch

    matcher = Matcher(store, markets, outbox, segment_of)
    matcher.partitions = count

    async def on_assign(tps: set[TopicPartition]) -> None:
        await matcher.assigned(tps, count)

    async def on_revoke(tps: set[TopicPartition]) -> None:
        await matcher.revoked(tps, count)

    async with kafka.consumer(
        settings,
        [Topic.VALIDATED_ORDERS],
        SERVICE,
        kafka.Envelopes(unpack_commands),  # the processor's envelopes, or single commands
        outbox,
        on_assign=on_assign,
        on_revoke=on_revoke,
        ring=ring,
    ) as inbox:
        health.watch(resilience.probes(cache=cache, outbox=outbox))
        health.up()
        try:
            async for batch in inbox.batches(stop):
                async with matcher.lock:
                    with BATCH_SECONDS.time():
                        await matcher.match(inbox, batch)
            async with matcher.lock:
                await matcher.settle()  # stopping: the last batch's offsets committed before leaving
        finally:
            matcher.abandon()


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
