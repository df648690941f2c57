"""settlement: turn matched events into balances, ledger rows, trades and order states, exactly once.

Consumes ``matched-events`` (they carry the trades and the order states of each step in sequence, so a
hold is released only after the trades of the same step consumed their part). Each batch is settled in one
transaction (``batch.settle``; a record that cannot be applied stops only its symbol, ``halts.py``), its input
committed, then what it changed told in one Redis round trip (``batch.tell``: REST outcomes, owners' balances,
how far each symbol settled, which tells the matcher what it may drop from its outbox), and its trades fed to
the circuit breaker (``batch.trip_breakers``). Between batches it refreshes what the last ``spot admin audit``
found (``audits.py``), keeps the one-second candles bounded (``retention.py``), reads the market rows again
(``trips.Rows``) and learns of resolved halts.

A lost dependency (a connection error, a timeout) is an outage: the batch is settled again once it answers.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Histogram

from shared import kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, now_ms, run
from shared.messages import Topic, unpack_matched

from .accounts import Accounts
from .audits import Audits
from .batch import settle, tell, trip_breakers
from .breaker import Breaker
from .halts import Halts
from .retention import Retention
from .trips import Rows

SERVICE = "settlement"
SETTLED = Counter("spot_settled_events_total", "Matched events settled")
BATCH_SECONDS = Histogram("spot_settlement_batch_seconds", "Time to settle one batch")


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with (
        kafka.producer(settings) as dlq,
        kafka.consumer(settings, [Topic.MATCHED_EVENTS], SERVICE, kafka.Envelopes(unpack_matched), dlq) as inbox,
        postgres.pool(settings) as db,
        sredis.client(settings) as cache,
    ):
        markets = await postgres.load_markets(db)
        accounts, halts, audits, retention = Accounts(db, markets), Halts(db), Audits(db), Retention(db)
        await halts.refresh()
        channels = sredis.Channels(settings.topic_suffix)
        health.watch(resilience.probes(db=db, cache=cache, outbox=dlq))
        health.up()
        breaker, rows = Breaker(), Rows()
        async for batch in inbox.batches(stop, yield_empty=True):
            if audits.due():
                await audits.refresh()
            if retention.due():
                await retention.prune(now_ms())
            if rows.due():  # a resume, a new breaker setting
                markets.update(await postgres.load_markets(db))
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
                await postgres.learn_markets(db, markets, {r.value.symbol for r in records})  # added live
                applied, balances = await settle(accounts, halts, records, now)
                await inbox.commit(batch, halts.held_offsets())
                if not applied:
                    continue
                SETTLED.inc(len(applied))
                await tell(cache, markets, applied, balances, channels, now, traced)
                await trip_breakers(settings, breaker, applied, markets, db, dlq, cache)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
