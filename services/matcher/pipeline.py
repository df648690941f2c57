"""The matcher's batches, pipelined one deep: apply, commit to Redis, publish, and commit the input.

Per batch: apply every command (pure, ``book.py``), commit each touched symbol's book and outbox to Redis
(``bookstore.py``), publish the ``matched-events`` and ``trade-execution`` records (``outputs.py``), wait for
the acks, commit the input offsets; the wait for one batch's acks overlaps the next batch's work. On a
partition assignment, the books of the symbols it carries are reloaded from Redis and their outboxes
re-published, so a crash anywhere loses and doubles nothing. A ``MarketChange`` (``spot admin market``) is
applied at its place in the symbol's commands: a new symbol's book is made there, and a changed row's fees
hold from there on. A command that cannot be applied is
dead-lettered and its symbol's part of the batch applied again without it (``Matcher._isolate``).

Inputs are envelopes too (``shared.messages.MatcherCommands``: one record per symbol per order-processor
batch; single commands, as older processors wrote them, still decode). An envelope is applied whole within
one batch, and a redelivered command is skipped by its own ``(src_partition, src_offset)`` (the request's
position, not the record's), whatever record carried it. The outbox holds exactly the output records
(``outputs.py``), so a re-publish after a crash sends the same bytes at new offsets, and consumers skip each
message by ``(symbol, seq)``. The match latency of every order (ingestion's acceptance ``ts`` to the event's
``ts``) is observed once per batch (``observe_latencies``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from prometheus_client import Counter, Histogram

from shared import deadletter, kafka, tracing
from shared.domain import Market
from shared.lifecycle import now_ms
from shared.messages import AcceptedOrder, MarketChange, MatcherCommand, OrderListCommand, encode, market_of

from .book import Book
from .bookstore import BookStore
from .outputs import MATCHED, TRADES_OUT, Part
from .retention import Entry, release, spans

SERVICE = "matcher"  # also the consumer group, the Deployment and the dead letters' sender
log = logging.getLogger(SERVICE)

EVENTS = Counter("spot_matcher_events_total", "Matched events published")
RELEASED_UNSETTLED = Counter(
    "spot_matcher_outbox_released_unsettled_total",
    "Outbox entries removed before settlement applied them (it was stopped longer than the outbox keeps)",
)
TRADES = Counter("spot_trades_total", "Trades executed", ["symbol"])
MATCH_SECONDS = Histogram(
    "spot_match_latency_seconds",
    "From ingestion accepting an order to the matcher's event for it (ms resolution; two hosts' clocks)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_MATCH_BOUNDS_MS = [bound * 1000 for bound in MATCH_SECONDS._upper_bounds]
BATCH_SECONDS = Histogram(
    "spot_matcher_batch_seconds",
    "Time to match, commit and send one batch, and to see the batch before it acknowledged",
)
# Tracked objects allocated (net of those freed) before CPython runs a young collection; its default, 700,
# is crossed dozens of times by every batch, whose records, commands and events all die with the batch
# anyway (acyclic: reference counting frees them), and each collection promotes the live ones towards the
# full collections that walk the books. Above what one batch holds, collections come from growth only.
GC_YOUNG_THRESHOLD = 50_000


def collect_by_growth() -> None:
    """Young collections from growth only (``GC_YOUNG_THRESHOLD``), not from every batch's short-lived objects."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


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


def sealer(outbox: kafka.Outbox) -> kafka.SegmentDone:
    """The input ring's ``on_done``: every command of segment ``epoch`` on a partition is matched and its outputs
    acknowledged (its batch was committed after its acks), so the readers of both outputs may leave it."""

    async def segment_done(ends: Sequence[kafka.SegmentEnd]) -> None:
        await outbox.seal_all(
            [(out, partition, epoch) for _, partition, epoch in ends for out in (MATCHED, TRADES_OUT)]
        )

    return segment_done


def partition_of(symbol: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so we know which partition carries a symbol."""
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % partitions


class Matcher:
    """The books of the symbols this replica owns, and the batch whose outputs are still being acknowledged.

    Batches are pipelined one deep: batch N's outputs are sent, then batch N+1 is fetched, applied and
    committed to Redis while the broker acknowledges N; N's acks are awaited and its input offsets
    committed (``publishing``) before N+1's outputs are sent. The Redis outbox keeps every batch until a
    later commit learns that its acks are in (``acked``) and that settlement applied it (``settled``,
    ``retention.py``), so a crash at any point, or a broker that lost its log, re-publishes, in order,
    whatever may be missing.
    """

    def __init__(
        self,
        store: BookStore,
        markets: dict[str, Market],
        outbox: kafka.Outbox,
        segment_of: Callable[[int], int] = lambda partition: 0,
    ) -> None:
        self.store = store
        # the log segment the matcher reads on an input partition: a take-over's re-published outbox goes there
        # (a matcher leaves a segment only once its outputs are acknowledged, so the outbox holds nothing older
        # than acknowledged duplicates, which consumers skip by seq)
        self.segment_of = segment_of
        self.markets = markets
        self.outbox = outbox
        self.dead = deadletter.DeadLetters(outbox, SERVICE)
        self.books: dict[str, Book] = {}
        # held while a batch is applied and committed: a revoke waits for it, so the next owner of a
        # symbol loads a book no batch of ours will write again
        self.lock = asyncio.Lock()
        self.publishing: asyncio.Task[None] | None = None  # the last batch's acks, then its offset commit
        # outbox entries acknowledged, (first, last) seq: each removed at a commit of its symbol once settled
        self.acked: dict[str, list[Entry]] = {}
        self.settled: dict[str, int] = {}  # per symbol, settlement's seq as the last commit read it
        self.resent: dict[str, list[Entry]] = {}  # outbox entries re-published at a take-over, not yet acked
        self.partitions = 1  # of the input topic (set by serve)

    async def assigned(self, partitions: set[TopicPartition], count: int) -> None:
        """Reload the books of the symbols these partitions carry and re-publish their outboxes."""
        mine = {tp.partition for tp in partitions}
        async with self.lock:
            await self.settle()
            for symbol in self.markets:
                if partition_of(symbol, count) in mine:
                    await self._take_over(symbol)
            await self.outbox.flush()
            resent, self.resent = self.resent, {}
            for symbol, entries in resent.items():
                self.acked.setdefault(symbol, []).extend(entries)
        log.info("assigned partitions %s: books %s", sorted(mine), sorted(self.books))

    async def revoked(self, partitions: set[TopicPartition], count: int) -> None:
        gone = {tp.partition for tp in partitions}
        async with self.lock:
            try:
                await self.settle()  # offsets committed while still ours, so the next owner repeats less
            except Exception as exc:  # nothing is lost: the outbox and the uncommitted offsets remain
                log.warning("batch in flight not acknowledged before a revoke: %s", exc)
            for symbol in [s for s in self.books if partition_of(s, count) in gone]:
                del self.books[symbol]
                self.acked.pop(symbol, None)
                self.settled.pop(symbol, None)
                self.resent.pop(symbol, None)

    async def book(self, symbol: str) -> Book | None:
        book = self.books.get(symbol)
        if book is None and symbol in self.markets:
            book = await self._take_over(symbol)
        return book

    async def _take_over(self, symbol: str) -> Book:
        """Load a symbol's committed book and queue its outbox again (sent before any new output)."""
        book, pending = await self.store.load(self.markets[symbol])
        epoch = self.segment_of(partition_of(symbol, self.partitions))
        for _, outputs in pending:
            for topic, value in outputs:
                await self.outbox.send(topic, value, key=symbol, epoch=epoch)
        self.acked.pop(symbol, None)
        self.resent[symbol] = spans([entry for entry, _ in pending], book.state.seq)
        self.books[symbol] = book
        return book

    async def settle(self) -> None:
        """Wait until the batch in flight is acknowledged and its offsets committed."""
        task, self.publishing = self.publishing, None
        if task is not None:
            await task

    def abandon(self) -> None:
        """Stop waiting for the batch in flight (the service is going down on an error)."""
        task, self.publishing = self.publishing, None
        if task is not None:
            task.cancel()

    async def run(self, inbox: kafka.Inbox[MatcherCommand], stop: asyncio.Event) -> None:
        """Every batch until ``stop``; then the last batch's offsets committed before leaving."""
        try:
            async for batch in inbox.batches(stop):
                async with self.lock:
                    with BATCH_SECONDS.time():
                        await self.match(inbox, batch)
            async with self.lock:
                await self.settle()
        finally:
            self.abandon()

    async def match(self, inbox: kafka.Inbox[MatcherCommand], batch: kafka.Batch[MatcherCommand]) -> None:
        """Apply a batch and commit it to Redis, wait for the previous batch's acks, send this one's outputs
        and leave their acks to the next call. Under the lock."""
        with tracing.consume(batch.records) as traced:
            ts = now_ms()
            parts = await self._apply(inbox, batch, traced, ts)
            outputs = {symbol: part.outputs(symbol) for symbol, part in parts.items()}
            prepared = []
            for symbol, part in parts.items():
                released, kept = release(self.acked.get(symbol, ()), self.settled.get(symbol, 0))
                unsettled = sum(1 for e in released if e[1] > self.settled.get(symbol, 0))
                if unsettled:
                    RELEASED_UNSETTLED.inc(unsettled)
                self.acked[symbol] = kept
                acked = [first for first, _ in released]
                try:  # packed before any symbol is written: what cannot be stored is isolated, not half-written
                    packed = self.store.prepare(self.books[symbol], part.events, outputs[symbol], part.taken, acked)
                except Exception as exc:
                    if not deadletter.unappliable(exc):
                        raise
                    part = parts[symbol] = await self._isolate(inbox, batch, symbol, traced, ts)
                    outputs[symbol] = part.outputs(symbol)
                    packed = self.store.prepare(self.books[symbol], part.events, outputs[symbol], part.taken, acked)
                prepared.append(packed)
            commits = [self.store.write(p) for p in prepared]
            # one Redis script per symbol (a Cluster slot each), at once
            committed = [await commits[0]] if len(commits) == 1 else await asyncio.gather(*commits)
            for symbol, c in zip(parts, committed, strict=True):
                self.settled[symbol] = c.settled
            # the previous batch's acks came in while this one was applied and committed; they are awaited
            # before this batch's outputs are sent, so should a send fail for good, no later output of its
            # symbols is on the broker before the outbox re-publishes it (consumers skip a seq they passed)
            await self.settle()
            for symbol, records in outputs.items():
                part = parts[symbol]
                for topic, value in records:
                    await self.outbox.send(topic, value, key=symbol, epoch=part.epoch)
                EVENTS.inc(len(part.events))
                if part.trade_count:
                    TRADES.labels(symbol).inc(part.trade_count)
            acks = self.outbox.sent()
            done = [(s, (c.entry, c.last)) for s, c in zip(parts, committed, strict=True) if c.entry is not None]
            resent, self.resent = self.resent, {}
            done += [(symbol, entry) for symbol, resent_entries in resent.items() for entry in resent_entries]
            self.publishing = asyncio.create_task(self._published(acks, done, inbox, batch))

    async def _published(
        self,
        acks: Awaitable[None],
        done: list[tuple[str, Entry]],
        inbox: kafka.Inbox[MatcherCommand],
        batch: kafka.Batch[MatcherCommand],
    ) -> None:
        await acks
        for symbol, entry in done:
            self.acked.setdefault(symbol, []).append(entry)
        await inbox.commit(batch)

    async def _apply(
        self,
        inbox: kafka.Inbox[MatcherCommand],
        batch: kafka.Batch[MatcherCommand],
        traced: tracing.Consumed,
        ts: int,
    ) -> dict[str, Part]:
        """Apply every command of the batch to its book; each symbol's events encoded, with their traces.

        A symbol whose command raised is left half-changed here; it is applied again from its committed book
        one command at a time (``_isolate``), so the fast path pays nothing for it."""
        parts: dict[str, Part] = {}
        accepted_ts: list[int] = []
        books = self.books
        owned = inbox.owned()
        tracked = traced.tracked
        broken: set[str] = set()  # symbols with a command that raised: isolated below
        for record in batch.records:
            if (record.topic, record.partition) not in owned:
                continue  # fetched before a rebalance moved its partition away
            command = record.value
            symbol = command.symbol
            book = books.get(symbol)  # no await on the hot path
            if book is None:
                if type(command) is MarketChange and symbol not in self.markets:  # a market added live
                    self.markets[symbol] = market_of(command.market)
                book = await self.book(symbol)
                owned = inbox.owned()  # it awaited: look again
                if book is None:
                    log.warning("no market %s; command %s skipped", symbol, command.request_id)
                    continue
                if (record.topic, record.partition) not in owned:
                    continue
            if broken and symbol in broken:
                continue
            part = parts.get(symbol)
            if part is None:
                part = parts[symbol] = Part(record.epoch)
            try:
                event = book.apply(command, ts)
                if event is None:  # a redelivered command, already in the book, or a market change
                    if type(command) is MarketChange:
                        self.markets[symbol] = book.market  # a take-over from here on loads the new row
                    if isinstance(command, AcceptedOrder):  # its hot entry was written again: drop it
                        part.taken.append(command.order_id)
                    elif type(command) is OrderListCommand:  # its legs' hot entries, likewise
                        part.taken += (leg.order_id for leg in command.orders)
                    continue
                part.add(symbol, event, traced.traceparent(command) if tracked else None)  # its trace continues
            except Exception as exc:
                if not deadletter.unappliable(exc):
                    raise
                broken.add(symbol)
                continue
            if isinstance(command, AcceptedOrder):
                part.taken.append(command.order_id)
                accepted_ts.append(command.ts)
            elif type(command) is OrderListCommand:  # an order list's legs had hot entries too
                part.taken += (leg.order_id for leg in command.orders)
        for symbol in broken:
            parts[symbol] = await self._isolate(inbox, batch, symbol, traced, ts)
        if accepted_ts:
            observe_latencies(ts, accepted_ts)
        return parts

    async def _isolate(
        self,
        inbox: kafka.Inbox[MatcherCommand],
        batch: kafka.Batch[MatcherCommand],
        symbol: str,
        traced: tracing.Consumed,
        ts: int,
    ) -> Part:
        """One symbol's commands of the batch applied again, one at a time, from its committed book: each
        that raises, or leaves what cannot be stored, is dead-lettered and skipped (``Book.skip``), and the
        book is rebuilt without it, so it is never left half-changed.

        Deterministic, so a replay after a crash decides the same: the book is pure and the batch keeps its
        ``ts``; a position committed past a dead-lettered command skips it as a redelivery. Each dead letter
        is acknowledged before the commit that skips its command (at least once: a crash before that commit
        sends it again). A slow path, for a batch that failed: a book reload per dead letter.
        """
        market = self.markets[symbol]
        owned = inbox.owned()
        records = [r for r in batch.records if r.value.symbol == symbol and (r.topic, r.partition) in owned]
        skipped: set[tuple[int, int]] = set()
        while True:
            book, _ = await self.store.load(market)  # as of the batch before: this one wrote nothing yet
            part = Part(records[0].epoch if records else 0)
            failed: tuple[kafka.Record[MatcherCommand], Exception] | None = None
            for record in records:
                command = record.value
                position = (command.src_partition, command.src_offset)
                if position in skipped:
                    book.skip(*position)
                    continue
                try:
                    event = book.apply(command, ts)
                    if event is not None:
                        self.store.prepare(book, [event], [])  # what it changed can be stored
                        part.add(symbol, event, traced.traceparent(command) if traced.tracked else None)
                except Exception as exc:
                    if not deadletter.unappliable(exc):
                        raise
                    failed = (record, exc)
                    break
                if isinstance(command, AcceptedOrder):
                    part.taken.append(command.order_id)
            if failed is None:
                self.books[symbol] = book
                return part
            record, error = failed
            await self.dead.send(record, encode(record.value), symbol, error)
            skipped.add((record.value.src_partition, record.value.src_offset))
