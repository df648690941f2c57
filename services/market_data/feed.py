"""Market-data's I/O around its pure batch (``batch.Outputs``) and push clock (``pushes.Schedule``).

``Feed.apply`` folds a batch of the matcher's output into its writes and sends them in one pipeline, each
symbol's writes and publications one atomic script call (``sredis.Atomic``). A record that decodes but cannot be
applied (a number no JSON or Redis write takes) is dead-lettered to ``<topic>.dlq`` (``shared.deadletter``) and
changes nothing; the records after it still apply. A market added while it runs (``spot admin market add``) is
read from Postgres at its first record (``streams.MarketStates.learn``).

``Feed.push_due`` sends the timed pushes (depth diffs, top of the book, candles, tickers) when the schedule says,
and only then commits the batches applied since: the state they produced is in Redis first.
"""

from __future__ import annotations

import logging

from shared import deadletter, kafka, tracing
from shared import redis as sredis
from shared.kafka import Batch
from shared.lifecycle import now_ms
from shared.messages import MatchedEvent, TradeExecution, encode

from .batch import Outputs
from .pushes import Schedule, queue_pushes
from .streams import MarketStates

log = logging.getLogger("market-data")
Output = MatchedEvent | TradeExecution


class Feed:
    def __init__(
        self, states: MarketStates, cache: sredis.Client, dlq: kafka.Outbox, channels: sredis.Channels
    ) -> None:
        self.states, self.cache, self.channels = states, cache, channels
        self.dead = deadletter.DeadLetters(dlq, "market-data")
        self.schedule = Schedule()
        self.unflushed: list[Batch[Output]] = []

    async def apply(self, batch: Batch[Output]) -> None:
        if batch.records:
            now = now_ms()
            with tracing.consume(batch.records) as traced:
                out = Outputs(self.channels)
                for record in batch.records:
                    v = record.value
                    state = self.states.by_symbol.get(v.symbol) or await self.states.learn(v.symbol)
                    if state is None:
                        log.warning("%s is in no market row; its record is passed over", v.symbol)
                        continue
                    try:
                        out.apply(state, v, traced, now)
                    except Exception as exc:
                        if not deadletter.unappliable(exc):
                            raise
                        await self.dead.send(record, encode(v), v.symbol, exc)
                pipe = self.cache.pipeline(transaction=False)  # one round trip: order updates, then each symbol's
                out.queue(pipe)
                with sredis.timed("publish"):
                    await pipe.execute()
        if batch.ends:  # a batch that only carries a segment's seal too: committed, so the consumer moves on
            self.unflushed.append(batch)

    async def push_due(self, inbox: kafka.Inbox[Output]) -> None:
        due = self.schedule.due()
        if due is None:
            return
        pipe = self.cache.pipeline(transaction=False)
        queue_pushes(pipe, self.states.by_symbol.values(), self.channels, due, now_ms())
        with sredis.timed("depth"):
            await pipe.execute()
        for done in self.unflushed:
            await inbox.commit(done)
        self.unflushed.clear()
