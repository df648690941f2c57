"""settlement: turn matched events into balances, ledger rows, trades and order states, exactly once.

Consumes ``matched-events`` (they carry the trades and the order states of each step in sequence, so a
hold is released only after the trades of the same step consumed their part). After each committed
batch it tells waiting REST calls the outcomes, in one message per batch, and the owners their new
balances (Redis pub/sub; ``told.py`` decides what is said). It also exposes what the last ``spot admin audit``
found (``audits.py``).

A lost dependency (a connection error, a timeout) is an outage: the batch is settled again once it answers.
An event that cannot be applied stops only its symbol (``halts.py``): the batch is settled again symbol by
symbol, then event by event in the symbol that fails, and the other symbols go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter, Histogram

from shared import kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, now_ms, run
from shared.messages import MatchedEvent, Topic, unpack_matched

from .accounts import Accounts
from .audits import Audits
from .halts import Halts, by_symbol
from .told import told

SERVICE = "settlement"
SETTLED = Counter("spot_settled_events_total", "Matched events settled")
BATCH_SECONDS = Histogram("spot_settlement_batch_seconds", "Time to settle one batch")
Settlement = tuple[list[MatchedEvent], list[asyncpg.Record]]


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with (
        kafka.producer(settings) as dlq,
        kafka.consumer(settings, [Topic.MATCHED_EVENTS], SERVICE, kafka.Envelopes(unpack_matched), dlq) as inbox,
        postgres.pool(settings) as db,
        sredis.client(settings) as cache,
    ):
        markets = await postgres.load_markets(db)
        accounts = Accounts(db, markets)
        halts = Halts(db)
        await halts.refresh()
        audits = Audits(db)  # spot_audit_ok: what the last `spot admin audit` found
        channels = sredis.Channels(settings.topic_suffix)
        health.watch(resilience.probes(db=db, cache=cache, outbox=dlq))
        health.up()
        async for batch in inbox.batches(stop, yield_empty=True):
            if audits.due():
                await audits.refresh()
            if halts.due():
                for resolved in await halts.refresh():  # read again from the record that stopped it
                    await inbox.rewind(resolved.topic, resolved.partition, resolved.offset, resolved.epoch)
            if not batch.records:
                if batch.ends:  # only a segment's seal: committed, so the consumer moves to the next segment
                    await inbox.commit(batch, halts.held_offsets())
                continue
            with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
                now = now_ms()
                records = [r for r in batch.records if not halts.waits(r)]
                applied, balances = await settle(accounts, halts, records, now)
                await inbox.commit(batch, halts.held_offsets())
                if not applied:
                    continue
                SETTLED.inc(len(applied))
                news = told(markets, applied, balances, channels, now, traced)
                with sredis.timed("publish_outcomes"):
                    await news.send(cache)


async def settle(
    accounts: Accounts, halts: Halts, records: Sequence[kafka.Record[MatchedEvent]], now: int
) -> Settlement:
    """Settle ``records`` in one transaction; if one of them cannot be applied, settle them apart and stop
    the symbol of the one that fails at it."""
    if not records:
        return [], []
    try:
        return await accounts.apply([r.value for r in records], now, halts.skipped_seqs)
    except Exception as exc:
        if not unappliable(exc):
            raise
    applied: list[MatchedEvent] = []
    balances: list[asyncpg.Record] = []
    for symbol_records in by_symbol(records).values():
        try:
            done, changed = await accounts.apply([r.value for r in symbol_records], now, halts.skipped_seqs)
        except Exception as exc:
            if not unappliable(exc):
                raise
        else:
            applied += done
            balances += changed
            continue
        for r in symbol_records:  # in order: the first that fails stops its symbol, the rest wait behind it
            try:
                done, changed = await accounts.apply([r.value], now, halts.skipped_seqs)
            except Exception as exc:
                if not unappliable(exc):
                    raise
                await halts.stop(r, exc, now)
                break
            applied += done
            balances += changed
    return applied, balances


# Postgres refusals that say nothing about the record: another transaction's conflict (deadlock, serialization),
# a lock not granted, a full disk or too many connections. Like a bug, they stop the process, whose restart
# settles the batch again; a halt would stop a symbol for good over a passing condition.
TRANSIENT = (
    asyncpg.TransactionRollbackError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.InsufficientResourcesError,
)


def unappliable(exc: Exception) -> bool:
    """Whether applying a record failed for the record itself, not for a lost dependency (an outage: waited
    out, then settled again; a timeout is one) or a passing condition in Postgres (``TRANSIENT``)."""
    return resilience.outage(exc) is None and not isinstance(exc, TRANSIENT)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
