"""order-processor: check each order request, hold its funds, publish the decision.

Wiring only. Per batch of ``order-requests``, each run of requests (``batch.market_runs``) is written by
``writes.Writer`` in the seed's order: the holds in one Postgres transaction (``holds.py``), the decision
without I/O (``batch.decide_batch``), one Redis round trip, the commands to ``validated-orders``; the input is
committed only once the broker acknowledged them. Before serving, ``startup.repair`` mends what a crash or a
lost log left.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

from shared import kafka, postgres, resilience, segment_keeper, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, background, run
from shared.messages import Topic, unpack_requests

from . import startup, writes
from .batch import market_runs

SERVICE = "order-processor"  # also the consumer group and the Deployment
BATCH_SECONDS = Histogram("spot_processor_batch_seconds", "Time to decide and publish one batch")


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    fetch = (settings.kafka_request_fetch_max_wait_ms, settings.kafka_request_fetch_min_bytes)
    requests = kafka.Envelopes(unpack_requests)
    async with (
        kafka.producer(settings) as outbox,
        postgres.pool(settings) as db,
        sredis.client(settings) as cache,
        kafka.consumer(
            settings,
            [Topic.ORDER_REQUESTS],
            SERVICE,
            requests,
            outbox,
            fetch=fetch,
            on_segment_done=writes.sealer(settings, acks := writes.Acks(outbox), cache),
        ) as inbox,
        background(segment_keeper.keep(settings, cache, db, stop)),
    ):
        markets = await postgres.load_markets(db)
        writer = writes.Writer(settings, markets, outbox, db, cache)
        await startup.repair(settings, markets, inbox, outbox, db, cache, stop)
        health.watch(resilience.probes(db=db, cache=cache, outbox=outbox))
        health.up()
        # an idle poll yields an empty batch, which commits the one in flight
        async for batch in inbox.batches(stop, yield_empty=True):
            if batch.records:
                with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
                    for records in market_runs(batch.records):  # a market change alone: the runs after it see it
                        await writer.write(records, traced, batch.oldest_ms)
            await acks.sent(batch, inbox)  # acknowledged while the next batch is decided
        await acks.settle(inbox)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
