"""matcher: apply validated orders to each symbol's book, commit the book, publish what happened.

One matcher owns a symbol at a time (Kafka assigns the partition). Per batch: apply every command (pure,
``book.py``), commit each touched symbol's book and outbox to Redis (``bookstore.py``), publish the
``matched-events`` and ``trade-execution`` records, wait for the acks, commit the input offsets.
On a partition assignment, the books of the symbols it carries are reloaded from Redis and their
outboxes re-published, so a crash anywhere loses and doubles nothing.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from prometheus_client import Counter, Histogram

from shared import kafka, postgres, resilience
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


def partition_of(symbol: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so we know which partition carries a symbol."""
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % partitions


class Matcher:
    def __init__(self, store: BookStore, markets: dict[str, Market], outbox: kafka.Outbox) -> None:
        self.store = store
        self.markets = markets
        self.outbox = outbox
        self.books: dict[str, Book] = {}

    async def assigned(self, partitions: set[TopicPartition], count: int) -> None:
        """Reload the books of the symbols these partitions carry and re-publish their outboxes."""
        mine = {tp.partition for tp in partitions}
        for symbol in self.markets:
            if partition_of(symbol, count) in mine:
                await self._take_over(symbol)
        await self.outbox.flush()
        log.info("assigned partitions %s: books %s", sorted(mine), sorted(self.books))

    async def revoked(self, partitions: set[TopicPartition], count: int) -> None:
        gone = {tp.partition for tp in partitions}
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
                with BATCH_SECONDS.time():
                    ts = now_ms()
                    per_symbol: dict[str, tuple[list[MatchedEvent], list[tuple[str, bytes]], list[int]]] = {}
                    for record in batch.records:
                        command = record.value
                        book = await matcher.book(command.symbol)
                        if book is None:
                            log.warning("no market %s; command %s skipped", command.symbol, command.request_id)
                            continue
                        event = book.apply(command, ts)
                        if event is None:
                            continue  # a redelivered command, already in the book
                        events, outputs, taken = per_symbol.setdefault(command.symbol, ([], [], []))
                        events.append(event)
                        outputs.append((Topic.MATCHED_EVENTS.value, encode(event)))
                        if event.trades:
                            trades = TradeExecution(symbol=event.symbol, seq=event.seq, trades=event.trades)
                            outputs.append((Topic.TRADE_EXECUTION.value, encode(trades)))
                            TRADES.labels(event.symbol).inc(len(event.trades))
                        if isinstance(command, AcceptedOrder):
                            taken.append(command.order_id)
                    for symbol, (events, outputs, taken) in per_symbol.items():
                        await matcher.store.commit(matcher.books[symbol], events, outputs, taken)
                    for symbol, (events, outputs, _) in per_symbol.items():
                        for topic, value in outputs:
                            await outbox.send(topic, value, key=symbol)
                        EVENTS.inc(len(events))
                    await outbox.flush()
                    await inbox.commit(batch)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
