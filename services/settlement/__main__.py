"""settlement: turn matched events into balances, ledger rows, trades and order states, exactly once.

Consumes ``matched-events`` (they carry the trades and the order states of each step in sequence, so a
hold is released only after the trades of the same step consumed their part). After each committed
batch it tells waiting REST calls the outcomes, in one message per batch, and the owners their new
balances (Redis pub/sub).
"""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client import Counter, Histogram

from shared import kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.binance import account_positions
from shared.config import Settings
from shared.lifecycle import Health, now_ms, run
from shared.messages import Topic, unpack_matched

from .accounts import Accounts
from .outcome import outcome

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
        accounts = Accounts(db, markets)
        channels = sredis.Channels(settings.topic_suffix)
        health.watch(resilience.probes(db=db, cache=cache, outbox=dlq))
        health.up()
        async for batch in inbox.batches(stop):
            with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
                now = now_ms()
                applied, balances = await accounts.apply([r.value for r in batch.records], now)
                await inbox.commit(batch)
                if not applied:
                    continue
                SETTLED.inc(len(applied))
                told = sredis.Publications()
                said = []
                for e in applied:
                    one = orjson.dumps(outcome(markets[e.symbol], e))
                    tp = traced.traceparent(e) if traced.tracked else None
                    said.append(one if tp is None else tracing.wrap(one, tp))
                told.add_all(channels.outcomes, said)  # one message per batch
                for user_id, event in account_positions(balances, now).items():
                    told.add(channels.user(user_id), orjson.dumps(event))
                with sredis.timed("publish_outcomes"):
                    await told.send(cache)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
