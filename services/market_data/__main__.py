"""market-data: depth, trades, klines, tickers and the owners' order updates, from the matcher's output.

Consumes ``matched-events`` (depth deltas and order updates) and ``trade-execution`` (trades). Each batch is folded
into its writes by ``batch.Outputs`` (pure): the owners' ``executionReport``s as ``shared.owner_reports`` rules,
the depth, the trades with the candles they move; they go out in one pipeline, each symbol's writes and
publications one atomic script call (``sredis.Atomic``). The timed pushes (depth diffs, top of the book, candles,
tickers) go out when ``pushes.Schedule`` says, and only then are the input offsets committed: the state they
produced is in Redis first. A traced order's reports and trades carry its ``traceparent`` (``tracing.wrap``).

A record that decodes but cannot be applied (a number no JSON or Redis write takes) is dead-lettered to
``<topic>.dlq`` (``shared.deadletter``) and changes nothing; the records after it still apply. A market added
while it runs (``spot admin market add``) is read from Postgres at its first record (``streams.MarketStates.learn``).
"""

from __future__ import annotations

import asyncio
import logging

from shared import deadletter, kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.kafka import Batch
from shared.lifecycle import Health, now_ms, run
from shared.messages import MatchedEvent, Topic, TradeExecution, encode, unpack_output

from . import resync
from .batch import Outputs
from .pushes import DEPTH_INTERVAL_MS, Schedule, queue_pushes
from .streams import MarketStates

SERVICE = "market-data"
log = logging.getLogger(SERVICE)


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with (
        postgres.pool(settings, max_size=1) as db,
        kafka.producer(settings) as dlq,
        sredis.client(settings) as cache,
        kafka.consumer(
            settings, [Topic.MATCHED_EVENTS, Topic.TRADE_EXECUTION], SERVICE, kafka.Envelopes(unpack_output), dlq
        ) as inbox,
    ):
        channels = sredis.Channels(settings.topic_suffix)
        dead = deadletter.DeadLetters(dlq, SERVICE)
        states = MarketStates(db, cache, channels)
        await states.load()
        await resync.on_new_log(cache, states.by_symbol, settings.log_epoch, now_ms())  # a broker lost its log
        health.watch(resilience.probes(cache=cache, outbox=dlq))
        health.up()
        unflushed: list[Batch[MatchedEvent | TradeExecution]] = []
        schedule = Schedule()
        async for batch in inbox.batches(stop, timeout_ms=DEPTH_INTERVAL_MS // 2, yield_empty=True):
            now = now_ms()
            if batch.records:
                with tracing.consume(batch.records) as traced:
                    out = Outputs(channels)
                    for record in batch.records:
                        v = record.value
                        state = states.by_symbol.get(v.symbol) or await states.learn(v.symbol)  # added live
                        if state is None:
                            log.warning("%s is in no market row; its record is passed over", v.symbol)
                            continue
                        try:
                            out.apply(state, v, traced, now)
                        except Exception as exc:
                            if not deadletter.unappliable(exc):
                                raise
                            await dead.send(record, encode(v), v.symbol, exc)
                    pipe = cache.pipeline(transaction=False)  # one round trip: order updates, then each symbol's
                    out.queue(pipe)
                    with sredis.timed("publish"):
                        await pipe.execute()
            if batch.ends:  # a batch that only carries a segment's seal too: committed, so the consumer moves on
                unflushed.append(batch)
            due = schedule.due()
            if due is not None:
                pipe = cache.pipeline(transaction=False)
                queue_pushes(pipe, states.by_symbol.values(), channels, due, now)
                with sredis.timed("depth"):
                    await pipe.execute()
                for done in unflushed:
                    await inbox.commit(done)
                unflushed.clear()


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
