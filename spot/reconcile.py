"""`spot admin reconcile`: the operator's job that compares the warm book (Postgres) with the hot book (Redis)
for every market and repairs what is safe.

Built on the shared pieces only (``shared/reconcile.py``: the comparison and the repair; the key layouts and
book records it reads): the job connects, runs it per market, and returns each market's report. Without
``repair`` it changes nothing. The order processor runs the same reconciliation on start.
"""

from __future__ import annotations

from shared import identity, kafka, postgres
from shared import redis as sredis
from shared.config import Settings
from shared.reconcile import reconcile_symbol


async def run(settings: Settings, repair: bool = True) -> list[dict[str, object]]:
    """Each market's report (``shared.reconcile.Report.as_json``); repaired when ``repair``."""
    async with postgres.pool(settings, max_size=2) as db, sredis.client(settings) as cache:
        markets = await postgres.load_markets(db)
        fleet = await identity.stored(db)
        log_epoch = fleet.epoch if fleet else 0  # where the broker's log began: an order of an older one is lost
        if not repair:
            return [(await reconcile_symbol(m, db, cache, None, None, log_epoch)).as_json() for m in markets.values()]
        async with kafka.producer(settings) as outbox:
            return [(await reconcile_symbol(m, db, cache, outbox, None, log_epoch)).as_json() for m in markets.values()]
