"""market-data: depth, trades, klines, tickers and the owners' order updates, from the matcher's output.

Wiring only. Consumes ``matched-events`` (depth deltas and order updates) and ``trade-execution`` (trades).
``feed.Feed`` folds each batch into its writes (``batch.Outputs``, pure: the owners' ``executionReport``s as
``shared.owner_reports`` rules, the depth, the trades with the candles they move) and sends them in one
pipeline; the timed pushes go out when ``pushes.Schedule`` says, and only then are the input offsets committed.
On its first start on a new log, ``resync`` catches the depth up from the matcher's book.
"""

from __future__ import annotations

import asyncio

from shared import kafka, postgres, resilience
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, now_ms, run
from shared.messages import Topic, unpack_output

from . import resync
from .feed import Feed
from .pushes import DEPTH_INTERVAL_MS
from .streams import MarketStates

SERVICE = "market-data"


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    topics = [Topic.MATCHED_EVENTS, Topic.TRADE_EXECUTION]
    async with (
        postgres.pool(settings, max_size=1) as db,
        kafka.producer(settings) as dlq,
        sredis.client(settings) as cache,
        kafka.consumer(settings, topics, SERVICE, kafka.Envelopes(unpack_output), dlq) as inbox,
    ):
        channels = sredis.Channels(settings.topic_suffix)
        states = MarketStates(db, cache, channels)
        await states.load()
        await resync.on_new_log(cache, states.by_symbol, settings.log_epoch, now_ms())  # a broker lost its log
        feed = Feed(states, cache, dlq, channels)
        health.watch(resilience.probes(cache=cache, outbox=dlq))
        health.up()
        async for batch in inbox.batches(stop, timeout_ms=DEPTH_INTERVAL_MS // 2, yield_empty=True):
            await feed.apply(batch)
            await feed.push_due(inbox)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
