"""trade-archiver: every executed trade, exactly once, in Parquet partitioned by date and symbol (MSK Connect's role).

Consumes ``trade-execution`` and hands each batch to the ``Archiver`` (``archiver.py``), which keeps an open
offset range per partition (``ranges.py``, pure) and commits the ranges it cuts through ``archive.py``: Parquet
files (``parquet.py``, pure) in a folder or S3 (``sink.py``), Kinesis when configured, a manifest per range,
then the Kafka offsets. Parquet is the exactly-once output (``manifest.py`` tells why); Kinesis is at least once
(consumers deduplicate by symbol and seq, as every consumer here does). On SIGTERM what was consumed is
committed before the consumer leaves.
"""

from __future__ import annotations

import asyncio
import logging

from shared import kafka, postgres, resilience
from shared.config import Settings
from shared.lifecycle import Health, run
from shared.messages import Topic, unpack_trades

from .archive import Archive
from .archiver import Archiver
from .sink import open_kinesis, open_store

SERVICE = "trade-archiver"
log = logging.getLogger(SERVICE)
ARCHIVE_FETCH_MIN_BYTES = 1 << 20  # a fetch returns at once past this, else after ARCHIVE_FETCH_MAX_WAIT_MS


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    archive = Archive(open_store(settings), open_kinesis(settings))
    log.info(
        "archiving to %s%s",
        archive.store.describe(),
        f" and Kinesis stream {settings.kinesis_stream}" if settings.kinesis_stream else "",
    )
    async with postgres.pool(settings, max_size=2) as db, kafka.producer(settings) as dlq:
        archiver = Archiver(settings, archive, db, dlq, SERVICE)
        async with kafka.consumer(
            settings,
            [Topic.TRADE_EXECUTION],
            SERVICE,
            kafka.Envelopes(unpack_trades),
            dlq,
            on_assign=archiver.assigned,
            on_revoke=archiver.revoked,
            fetch=(settings.archive_fetch_max_wait_ms, ARCHIVE_FETCH_MIN_BYTES),
        ) as inbox:
            archiver.inbox = inbox
            await asyncio.to_thread(archive.check)
            health.watch({**resilience.probes(db=db, outbox=dlq), "archive": lambda: asyncio.to_thread(archive.check)})
            health.up()
            async for batch in inbox.batches(stop, yield_empty=True):
                async with archiver.lock:
                    await archiver.handle(batch)
            async with archiver.lock:
                await archiver.flush()  # SIGTERM: what was consumed is committed before the consumer leaves


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
