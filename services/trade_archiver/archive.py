"""Commit a cut range to the archive and recover a partition from it (the steps are in ``manifest.py``).

The I/O side of the archive: ``plan`` and ``layout`` decide, this module reads and writes through a
``Store`` (local folder or S3) and Kinesis, each blocking call in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Final

import pyarrow as pa

from shared.identity import EPOCH_STRIDE

from .layout import (
    MANIFESTS,
    TRADES,
    committed,
    data_key,
    intent_key,
    latest_key,
    manifest_key,
    manifest_prefix,
    manifest_span,
    newest_key,
)
from .manifest import Intent, Manifest, Plan, decode_intent, decode_manifest, encode, latest, plan
from .parquet import TradeRow
from .parquet import encode as parquet_bytes
from .ranges import Cut
from .sink import Kinesis, Store

PARALLEL_PUTS: Final = 8  # data files of one range written at once (S3 latency, not CPU, is the bound)


def files_of(cut: Cut) -> dict[str, list[TradeRow]]:
    """The range's rows grouped into data files by (dt, symbol), in consumption order."""
    groups: dict[str, list[TradeRow]] = defaultdict(list)
    for row in cut.rows:
        groups[data_key(row.dt, row.symbol, cut.span)].append(row)
    return dict(groups)


class Archive:
    def __init__(self, store: Store, kinesis: Kinesis | None = None) -> None:
        self.store = store
        self.kinesis = kinesis
        self._redo: dict[int, Intent] = {}  # partition -> the crashed attempt being redone
        self._puts = asyncio.Semaphore(PARALLEL_PUTS)

    async def recover(self, partition: int) -> Plan:
        """Read a partition's manifests and intent; remove an intent a manifest already committed."""
        pointer = await asyncio.to_thread(self.store.get, latest_key(partition))
        after = pointer.decode() if pointer else ""  # stale or missing: the listing is only longer
        keys = await asyncio.to_thread(self.store.list, manifest_prefix(partition), after)
        spans = [s for s in map(manifest_span, [after, *keys]) if s is not None and s.partition == partition]
        top = latest(spans)
        head = None
        if top is not None:
            raw = await asyncio.to_thread(self.store.get, manifest_key(top))
            if raw is None:
                raise FileNotFoundError(f"manifest {manifest_key(top)} was listed but cannot be read")
            head = decode_manifest(raw)
        raw_intent = await asyncio.to_thread(self.store.get, intent_key(partition))
        intent = decode_intent(raw_intent) if raw_intent is not None else None
        decided = plan(spans, head, intent)
        if decided.stale_intent:
            await asyncio.to_thread(self.store.delete, intent_key(partition))
        if decided.redo is not None:
            self._redo[partition] = decided.redo
        else:
            self._redo.pop(partition, None)
        return decided

    async def carried_seqs(self, label: int) -> dict[str, int]:
        """The sequence high-water a source partition with no manifest yet starts from: its Kafka
        partition's newest manifest in an earlier segment (segment 0's own pointer when no later one has
        any). A stale pointer only gives an older high-water: duplicates across a segment switch are not
        expected (the matcher re-publishes into the segment its input is in)."""
        kafka_partition = label % EPOCH_STRIDE
        if label == kafka_partition:
            return {}
        pointer = await asyncio.to_thread(self.store.get, newest_key(kafka_partition))
        if pointer is None:
            pointer = await asyncio.to_thread(self.store.get, latest_key(kafka_partition))
        span = manifest_span(pointer.decode()) if pointer else None
        if span is None or span.partition >= label:
            return {}
        raw = await asyncio.to_thread(self.store.get, manifest_key(span))
        return dict(decode_manifest(raw).seqs) if raw is not None else {}

    def forget(self, partition: int) -> None:
        """The partition went to another consumer: its redo, if any, is theirs now."""
        self._redo.pop(partition, None)

    async def commit(self, cut: Cut) -> Manifest:
        """Write one range: intent, Kinesis, data files, orphans removed, manifest, intent removed."""
        span = cut.span
        files = files_of(cut)
        earlier = self._redo.get(span.partition)
        if earlier is not None and earlier.span != span:
            raise ValueError(f"range {span} cut while {earlier.span} was being redone")
        orphans = sorted(set(earlier.files) - set(files)) if earlier else []
        if files:
            every = sorted({*files, *orphans})  # a crash during this attempt leaves both kinds to clean up
            intent = Intent(partition=span.partition, first=span.first, last=span.last, files=every)
            await asyncio.to_thread(self.store.put, intent_key(span.partition), encode(intent))
            if self.kinesis is not None:
                await asyncio.to_thread(self.kinesis.put, cut.rows)
            await asyncio.gather(*(self._put(key, rows) for key, rows in files.items()))
        for key in orphans:
            await asyncio.to_thread(self.store.delete, key)
        manifest = Manifest(
            partition=span.partition,
            first=span.first,
            last=span.last,
            files=sorted(files),
            rows=len(cut.rows),
            seqs=cut.seqs,
            committed_ms=time.time_ns() // 1_000_000,
        )
        await asyncio.to_thread(self.store.put, manifest_key(span), encode(manifest))
        await asyncio.to_thread(self.store.put, latest_key(span.partition), manifest_key(span).encode())
        if span.partition >= EPOCH_STRIDE:  # past log segment 0: where the partition's high-water is now
            kafka_partition = span.partition % EPOCH_STRIDE
            await asyncio.to_thread(self.store.put, newest_key(kafka_partition), manifest_key(span).encode())
        if files or earlier is not None:
            await asyncio.to_thread(self.store.delete, intent_key(span.partition))
        self._redo.pop(span.partition, None)
        return manifest

    async def _put(self, key: str, rows: list[TradeRow]) -> None:
        async with self._puts:
            await asyncio.to_thread(self._encode_and_put, key, rows)

    def _encode_and_put(self, key: str, rows: list[TradeRow]) -> None:
        """In a worker thread: encode, store, then hand this thread's freed Arrow pages back to the system.

        Arrow's default pool (mimalloc) keeps a heap per thread and collects it only when asked from that
        thread; left alone, the pages of the worker threads' files stayed resident and the archiver's RSS grew
        ~0.2 MB a minute at 300 orders/s (issue 27's soak). Once a file is written nothing of it is live.
        """
        self.store.put(key, parquet_bytes(rows))
        pa.default_memory_pool().release_unused()

    def check(self) -> None:
        self.store.check()
        if self.kinesis is not None:
            self.kinesis.check()


def committed_files(store: Store) -> list[str]:
    """Every committed data file of the archive (what a query may read)."""
    return committed(store.list(TRADES), store.list(MANIFESTS))
