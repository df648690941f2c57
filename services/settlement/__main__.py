"""settlement: turn matched events into balances, ledger rows, trades and order states, exactly once.

Wiring only. Consumes ``matched-events`` (they carry the trades and the order states of each step in sequence,
so a hold is released only after the trades of the same step consumed their part). ``batch.Settler`` settles
each batch in one transaction (a record that cannot be applied stops only its symbol, ``halts.py``), commits
its input, then tells what changed in one Redis round trip and feeds the circuit breaker; between batches
``upkeep.Upkeep`` does what is due.
"""

from __future__ import annotations

import asyncio

from shared import kafka, postgres, resilience
from shared import redis as sredis
from shared.config import Settings
from shared.lifecycle import Health, run
from shared.messages import Topic, unpack_matched

from .batch import Settler
from .halts import Halts
from .upkeep import Upkeep

SERVICE = "settlement"


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with (
        kafka.producer(settings) as dlq,
        kafka.consumer(settings, [Topic.MATCHED_EVENTS], SERVICE, kafka.Envelopes(unpack_matched), dlq) as inbox,
        postgres.pool(settings) as db,
        sredis.client(settings) as cache,
    ):
        markets, halts = await postgres.load_markets(db), Halts(db)
        await halts.refresh()
        settler, upkeep = Settler(settings, db, cache, dlq, markets, halts), Upkeep(db, markets, halts)
        health.watch(resilience.probes(db=db, cache=cache, outbox=dlq))
        health.up()
        async for batch in inbox.batches(stop, yield_empty=True):
            await upkeep.run(inbox)
            await settler.settle_batch(inbox, batch)


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
