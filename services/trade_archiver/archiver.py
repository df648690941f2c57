"""The trade archiver's consumer side: the open offset ranges of the partitions it owns, and when to cut them.

Per Kafka partition it keeps an open offset range (``ranges.py``, pure: it decides what a range holds and
where it is cut), and every ``ARCHIVE_FLUSH_MS`` or ``ARCHIVE_BATCH_MAX`` trades it cuts the ranges and commits
each one (``archive.py``): Kinesis records when ``KINESIS_STREAM`` is set, Parquet files under
``trades/dt=YYYY-MM-DD/symbol=SYMBOL/`` in the local ``ARCHIVE_DIR`` or in ``ARCHIVE_S3_BUCKET``, then a
manifest per range, then the Kafka offsets. Why a crash anywhere writes no trade twice is told in
``manifest.py``; in short, the manifests are the truth, a newly assigned partition resumes right after
its last manifest, and a range that crashed mid-flush is cut again at the same offsets, so it rewrites
the same file names.

With the segment ring on (``shared.segments``) a range belongs to one log segment of its partition: its
source partition is ``source_partition(epoch, partition)`` (the Kafka partition itself in segment 0, so the
names are today's), a range is cut as soon as it reaches the segment's seal (so the consumer may move on),
and the next segment's range starts at its offset 0 with the sequence high-water reached. Recovery reads
the manifests of the segment the group reads now, and seeks that slot.

An execution that decodes but cannot be archived (a number past its column, a market not known) is
dead-lettered to ``trade-execution.dlq`` before the range that holds it is committed; the range goes on
without it, and its ``seq`` is not taken.

A rebalance waits for the batch in hand (``lock``), so a partition is never written by two consumers of
the group at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import asyncpg
from aiokafka import TopicPartition
from prometheus_client import Counter, Histogram

from shared import deadletter, kafka, postgres, segments
from shared.config import Settings
from shared.domain import Market
from shared.identity import EPOCH_STRIDE, source_partition
from shared.messages import Topic, TradeExecution, encode

from .archive import Archive
from .parquet import TradeRow, rows_of
from .ranges import Cut, OpenRange

log = logging.getLogger("trade-archiver")

ARCHIVED = Counter("spot_archived_trades_total", "Trades committed to the Parquet archive")
FILES = Counter("spot_archive_files_total", "Parquet files committed")
DUPLICATES = Counter("spot_archive_duplicates_total", "Trade executions skipped as already archived (symbol, seq)")
KINESIS_RECORDS = Counter("spot_archive_kinesis_records_total", "Trades put to Kinesis")
REDONE = Counter("spot_archive_redone_ranges_total", "Offset ranges cut again after a crash mid-flush")
BATCH_SECONDS = Histogram("spot_archive_batch_seconds", "Time to commit a flush: Kinesis, Parquet, manifests, offsets")


class Archiver:
    """The open ranges of the partitions this consumer owns, and when to cut them."""

    def __init__(
        self, settings: Settings, archive: Archive, db: asyncpg.Pool, dead_letters: kafka.Outbox, service: str
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(Topic.TRADE_EXECUTION)
        self.topics = set(kafka.physical_topics(settings, Topic.TRADE_EXECUTION))  # its slots, segments on
        self.batch_max = settings.archive_batch_max
        self.flush_s = settings.archive_flush_ms / 1000
        self.archive = archive
        self.db = db
        self.markets: dict[str, Market] = {}
        self.ranges: dict[int, OpenRange] = {}  # Kafka partition -> its open range (of the segment read now)
        self.fresh: set[int] = set()  # assigned, not yet recovered from the manifests
        self.lock = asyncio.Lock()  # one batch or one rebalance at a time
        self.inbox: kafka.Inbox[TradeExecution] | None = None
        self.dead = deadletter.DeadLetters(dead_letters, service)
        self.refused: list[tuple[TradeExecution, Exception]] = []  # this batch's executions that cannot be archived

    async def assigned(self, tps: set[TopicPartition]) -> None:
        """Only noted here: aiokafka swallows a listener's exceptions, so recovery runs in the batch loop."""
        self.fresh |= {tp.partition for tp in tps if tp.topic in self.topics}

    async def revoked(self, tps: set[TopicPartition]) -> None:
        async with self.lock:  # a flush in hand finishes before the partition may move to another consumer
            for tp in tps:
                gone = self.ranges.pop(tp.partition, None)  # what was not cut is consumed again by the new owner
                self.fresh.discard(tp.partition)
                if gone is not None:
                    self.archive.forget(gone.partition)

    def slot(self, epoch: int, partition: int) -> TopicPartition:
        """The physical partition of a Kafka partition in log segment ``epoch``."""
        if not self.settings.kafka_segment_s:
            return TopicPartition(self.topic, partition)
        name = segments.slot_name(Topic.TRADE_EXECUTION.value, segments.slot_of(epoch))
        return TopicPartition(self.settings.topic(name), partition)

    async def handle(self, batch: kafka.Batch[TradeExecution]) -> None:
        recovered = await self._recover() if self.fresh else set()
        await self._know_markets({r.value.symbol for r in batch.records})
        by_partition: dict[int, list[tuple[int, TradeExecution]]] = defaultdict(list)
        for r in batch.records:
            by_partition[r.partition].append((r.offset, r.value))
        now = time.monotonic()
        cuts: list[Cut] = []
        for tp, end in batch.ends.items():
            open_range = self.ranges.get(tp.partition)
            if open_range is None or tp.partition in recovered:
                continue  # revoked, or fetched before the seek: it comes again from the recovered offset
            label = source_partition(batch.epochs.get(tp, self.settings.log_epoch), tp.partition)
            if label != open_range.partition:
                if label < open_range.partition:
                    continue  # fetched from a segment this partition has left
                cut = open_range.cut()  # the previous segment's last range (empty when its seal cut it)
                cuts += [cut] if cut is not None else []
                open_range = self.ranges[tp.partition] = OpenRange(label, 0, open_range.seqs)
            cuts += open_range.feed(by_partition[tp.partition], end, self._rows_of(tp.partition), now)
            if tp in batch.sealed and open_range.redo_until is None:
                cut = open_range.cut()  # the segment's end: committed now, so the consumer moves on
                cuts += [cut] if cut is not None else []
        if self.refused:
            await self._dead_letter(batch)
        if cuts:
            await self._commit(cuts)  # a redone range closes at its exact boundary, at once
        if self._due(now):
            await self.flush()

    async def flush(self) -> None:
        cuts = [c for r in self.ranges.values() if (c := r.cut()) is not None]
        if cuts:
            await self._commit(cuts)

    def _due(self, now: float) -> bool:
        rows = sum(len(r.rows) for r in self.ranges.values())
        # a range being redone closes at its own boundary, not on time
        ages = (r.opened_at for r in self.ranges.values() if r.opened_at is not None and r.redo_until is None)
        oldest = min(ages, default=None)
        return rows >= self.batch_max or (oldest is not None and now - oldest >= self.flush_s)

    async def _commit(self, cuts: list[Cut]) -> None:
        by_partition: dict[int, list[Cut]] = defaultdict(list)
        for c in cuts:  # by Kafka partition: a segment's last range is committed before the next one's
            by_partition[c.span.partition % EPOCH_STRIDE].append(c)

        async def one_partition(partition_cuts: list[Cut]) -> None:
            for c in partition_cuts:  # one partition's ranges in order: they share its intent
                manifest = await self.archive.commit(c)
                ARCHIVED.inc(manifest.rows)
                FILES.inc(len(manifest.files))
                DUPLICATES.inc(c.duplicates)
                if self.archive.kinesis is not None:
                    KINESIS_RECORDS.inc(manifest.rows)

        with BATCH_SECONDS.time():
            await asyncio.gather(*(one_partition(cs) for cs in by_partition.values()))
            assert self.inbox is not None
            ends = {self._slot_of(c.span.partition): c.span.last + 1 for cs in by_partition.values() for c in cs}
            await self.inbox.commit(kafka.Batch(ends=ends))  # progress for lag metrics; the manifests decide

    def _slot_of(self, label: int) -> TopicPartition:
        epoch, partition = divmod(label, EPOCH_STRIDE)
        return self.slot(epoch, partition)

    async def _recover(self) -> set[int]:
        assert self.inbox is not None
        consumer = self.inbox.consumer
        fresh, self.fresh = self.fresh, set()
        owned = {tp.partition for tp in consumer.assignment() if tp.topic in self.topics}
        for partition in sorted(fresh & owned):
            epoch = self.inbox.epoch_of(Topic.TRADE_EXECUTION.value, partition)
            label = source_partition(epoch, partition)
            tp = self.slot(epoch, partition)
            decided = await self.archive.recover(label)
            start, seqs = decided.start, decided.seqs
            if start is None:  # nothing archived yet from this segment of the partition: where the group left off
                start = await consumer.committed(tp)
                if start is None:
                    start = (await consumer.beginning_offsets([tp]))[tp]
            if not seqs:  # no manifest in this segment yet (none, or its first range being redone)
                seqs = await self.archive.carried_seqs(label)
            redo_until = decided.redo.last if decided.redo else None
            self.ranges[partition] = OpenRange(label, start, seqs, redo_until)
            if self.settings.kafka_segment_s and start > 0:
                # the last record archived is read again (and skipped): if it was the segment's seal, the
                # consumer sees it and moves on; that is also the group's offset now
                consumer.seek(tp, start - 1)
                await self.inbox.commit(kafka.Batch(ends={tp: start}))
            else:
                consumer.seek(tp, start)
            if decided.redo:
                REDONE.inc()
            log.info(
                "partition %d (segment %d) resumes at offset %d%s",
                partition,
                epoch,
                start,
                f"; cutting {decided.redo.first}..{decided.redo.last} again after a crash mid-flush"
                if decided.redo
                else "",
            )
        return fresh & owned

    async def _know_markets(self, symbols: Iterable[str]) -> None:
        """Markets created since the last look (a trade of a market still unknown is dead-lettered)."""
        missing = set(symbols) - self.markets.keys()
        if missing:
            self.markets = await postgres.load_markets(self.db)

    def _rows_of(self, partition: int) -> Callable[[TradeExecution, int], list[TradeRow] | None]:
        """Rows of an execution; None for one that cannot be archived, noted in ``refused`` for ``handle``."""

        def rows(execution: TradeExecution, offset: int) -> list[TradeRow] | None:
            try:
                market = self.markets.get(execution.symbol)
                if market is None:
                    raise LookupError(f"trade-execution carries trades of an unknown market {execution.symbol}")
                return rows_of(execution, market, partition, offset)
            except Exception as exc:
                if not deadletter.unappliable(exc):
                    raise
                self.refused.append((execution, exc))
                return None

        return rows

    async def _dead_letter(self, batch: kafka.Batch[TradeExecution]) -> None:
        """Send the executions this batch refused to ``trade-execution.dlq``, acknowledged before any range
        that holds them is committed (a crash before that redoes the range and refuses them again)."""
        refused, self.refused = self.refused, []
        by_identity = {id(r.value): r for r in batch.records}
        for execution, exc in refused:
            await self.dead.send(by_identity[id(execution)], encode(execution), execution.symbol, exc)
