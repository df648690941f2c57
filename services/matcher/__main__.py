"""matcher: apply validated orders to each symbol's book, commit the book, publish what happened.

Wiring only. One matcher owns a symbol at a time (Kafka assigns the partition). ``pipeline.Matcher`` takes each
batch of ``validated-orders`` through the pure ``book.py``, commits the touched books and their outboxes to
Redis (``bookstore.py``) and publishes ``matched-events`` and ``trade-execution`` (``outputs.py``), the wait
for one batch's acks overlapping the next batch's work. Before serving, ``startup`` refuses a Redis that lost
the books settlement has already applied.
"""

from __future__ import annotations

import asyncio
import contextlib

from shared import kafka, postgres, resilience
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, run
from shared.messages import Topic, unpack_commands

from . import startup
from .bookstore import BookStore
from .pipeline import SERVICE, Matcher, collect_by_growth, sealer

VALIDATED = Topic.VALIDATED_ORDERS.value


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    collect_by_growth()
    async with postgres.pool(settings, max_size=1) as db:
        markets, settled = await postgres.load_markets(db), await startup.settled_sequences(db)
    count = settings.kafka_partitions
    async with (
        kafka.producer(settings) as outbox,
        sredis.client(settings) as cache,
        kafka.segment_ring(settings, SERVICE, sealer(outbox))
        if settings.kafka_segment_s
        else contextlib.nullcontext() as ring,
    ):
        store = BookStore(cache)
        startup.refuse_lost_writes(await store.sequences(list(markets)), settled)
        on_log = (lambda p: ring.epoch_of(VALIDATED, p)) if ring is not None else (lambda p: settings.log_epoch)
        matcher = Matcher(store, markets, outbox, on_log)
        matcher.partitions = count
        async with kafka.consumer(
            settings, [Topic.VALIDATED_ORDERS], SERVICE, kafka.Envelopes(unpack_commands), outbox,
            on_assign=lambda tps: matcher.assigned(tps, count), on_revoke=lambda tps: matcher.revoked(tps, count),
            ring=ring,
        ) as inbox:  # fmt: skip
            health.watch(resilience.probes(cache=cache, outbox=outbox))
            health.up()
            await matcher.run(inbox, stop)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
