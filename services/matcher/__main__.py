"""matcher: apply validated orders to each symbol's book, commit the book, publish what happened.

One matcher owns a symbol at a time (Kafka assigns the partition). Per batch: apply every command (pure,
``book.py``), commit each touched symbol's book and outbox to Redis (``bookstore.py``), publish the
``matched-events`` and ``trade-execution`` records, wait for the acks, commit the input offsets.
On a partition assignment, the books of the symbols it carries are reloaded from Redis and their
outboxes re-published, so a crash anywhere loses and doubles nothing.

An event continues the trace of the command that caused it (its Kafka headers); the match latency of
every order (ingestion's acceptance ``ts`` to the event's ``ts``) is observed once per batch.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections import Counter as Tally

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from prometheus_client import Counter, Histogram

from shared import kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.lifecycle import Health, now_ms, run
from shared.messages import (
    AcceptedOrder,
    MatchedEvent,
    Topic,
    TradeExecution,
    decode_command,
    encode,
)

from .book import Book
from .bookstore import BookStore

SERVICE = "matcher"
log = logging.getLogger(SERVICE)

EVENTS = Counter("spot_matcher_events_total", "Matched events published")
TRADES = Counter("spot_trades_total", "Trades executed", ["symbol"])
BATCH_SECONDS = Histogram("spot_matcher_batch_seconds", "Time to match, commit and publish one batch")
MATCH_SECONDS = Histogram(
    "spot_match_latency_seconds",
    "From ingestion accepting an order to the matcher's event for it (ms resolution; two hosts' clocks)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_MATCH_BOUNDS_MS = [bound * 1000 for bound in MATCH_SECONDS._upper_bounds]


def observe_latencies(event_ts: int, accepted_ts: list[int]) -> None:
    """Add the match latencies of a batch's orders (all matched at ``event_ts``) to ``MATCH_SECONDS``.

    prometheus_client has no bulk observe, and ``observe`` per order takes a lock per bucket and sum on the
    matcher's hot path; this adds the same counts and sum with one update per distinct millisecond and per
    bucket touched (tests/e2e/test_observability.py checks it against ``observe``). A negative wait (clock
    skew between hosts) counts as zero.
    """
    per_bucket: dict[int, int] = {}
    total = 0
    for stamp, n in Tally(accepted_ts).items():
        waited = max(event_ts - stamp, 0)
        total += waited * n
        i = bisect_left(_MATCH_BOUNDS_MS, waited)
        per_bucket[i] = per_bucket.get(i, 0) + n
    MATCH_SECONDS._sum.inc(total / 1000)
    for i, n in per_bucket.items():
        MATCH_SECONDS._buckets[i].inc(n)


Heads = dict[int, list[tuple[str, bytes]] | None]  # Kafka headers by output index, for traced commands only
Pending = tuple[list[MatchedEvent], list[tuple[str, bytes]], list[int], Heads]  # a symbol's part of a batch


def partition_of(symbol: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so we know which partition carries a symbol."""
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % partitions


class Matcher:
    def __init__(self, store: BookStore, markets: dict[str, Market], outbox: kafka.Outbox) -> None:
        self.store = store
        self.markets = markets
        self.outbox = outbox
        self.books: dict[str, Book] = {}
        # held while a batch is applied and committed: a revoke waits for it, so the next owner of a
        # symbol loads a book no batch of ours will write again
        self.lock = asyncio.Lock()

    async def assigned(self, partitions: set[TopicPartition], count: int) -> None:
        """Reload the books of the symbols these partitions carry and re-publish their outboxes."""
        mine = {tp.partition for tp in partitions}
        async with self.lock:
            for symbol in self.markets:
                if partition_of(symbol, count) in mine:
                    await self._take_over(symbol)
            await self.outbox.flush()
        log.info("assigned partitions %s: books %s", sorted(mine), sorted(self.books))

    async def revoked(self, partitions: set[TopicPartition], count: int) -> None:
        gone = {tp.partition for tp in partitions}
        async with self.lock:
            for symbol in [s for s in self.books if partition_of(s, count) in gone]:
                del self.books[symbol]

    async def book(self, symbol: str) -> Book | None:
        book = self.books.get(symbol)
        if book is None and symbol in self.markets:
            book = await self._take_over(symbol)
        return book

    async def _take_over(self, symbol: str) -> Book:
        """Load a symbol's committed book and queue its outbox again (sent before any new output)."""
        book, pending = await self.store.load(self.markets[symbol])
        for topic, value in pending:
            await self.outbox.send(topic, value, key=symbol)
        self.books[symbol] = book
        return book


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with postgres.pool(settings, max_size=1) as db:
        markets = await postgres.load_markets(db)
    async with kafka.producer(settings) as outbox, sredis.client(settings) as cache:
        matcher = Matcher(BookStore(cache), markets, outbox)
        count = settings.kafka_partitions

        async def on_assign(tps: set[TopicPartition]) -> None:
            await matcher.assigned(tps, count)

        async def on_revoke(tps: set[TopicPartition]) -> None:
            await matcher.revoked(tps, count)

        async with kafka.consumer(
            settings,
            [Topic.VALIDATED_ORDERS],
            SERVICE,
            decode_command,
            outbox,
            on_assign=on_assign,
            on_revoke=on_revoke,
        ) as inbox:
            health.watch(resilience.probes(cache=cache, outbox=outbox))
            health.up()
            async for batch in inbox.batches(stop):
                async with matcher.lock:
                    with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
                        ts = now_ms()
                        per_symbol: dict[str, Pending] = {}
                        accepted_ts: list[int] = []
                        for record in batch.records:
                            if not inbox.owns(record):
                                continue  # fetched before a rebalance moved its partition away
                            command = record.value
                            book = matcher.books.get(command.symbol)  # no await on the hot path
                            if book is None:
                                book = await matcher.book(command.symbol)
                            if book is None:
                                log.warning("no market %s; command %s skipped", command.symbol, command.request_id)
                                continue
                            event = book.apply(command, ts)
                            if event is None:  # a redelivered command, already in the book
                                if isinstance(command, AcceptedOrder):  # its hot entry was written again: drop it
                                    per_symbol.setdefault(command.symbol, ([], [], [], {}))[2].append(command.order_id)
                                continue
                            events, outputs, taken, heads = per_symbol.setdefault(command.symbol, ([], [], [], {}))
                            first = len(outputs)
                            events.append(event)
                            outputs.append((Topic.MATCHED_EVENTS.value, encode(event)))
                            if event.trades:
                                trades = TradeExecution(symbol=event.symbol, seq=event.seq, trades=event.trades)
                                outputs.append((Topic.TRADE_EXECUTION.value, encode(trades)))
                                TRADES.labels(event.symbol).inc(len(event.trades))
                            if traced.tracked:  # the event continues its command's trace
                                heads.update(dict.fromkeys(range(first, len(outputs)), traced.headers(command)))
                            if isinstance(command, AcceptedOrder):
                                taken.append(command.order_id)
                                accepted_ts.append(command.ts)
                        if accepted_ts:
                            observe_latencies(ts, accepted_ts)
                        for symbol, (events, outputs, taken, _) in per_symbol.items():
                            await matcher.store.commit(matcher.books[symbol], events, outputs, taken)
                        for symbol, (events, outputs, _, heads) in per_symbol.items():
                            for i, (topic, value) in enumerate(outputs):
                                await outbox.send(topic, value, key=symbol, headers=heads.get(i) if heads else None)
                            EVENTS.inc(len(events))
                        await outbox.flush()
                        await inbox.commit(batch)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
