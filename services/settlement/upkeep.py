"""What settlement refreshes between batches, each when it is due: cheap checks, rare work.

What the last ``spot admin audit`` found (``audits.py``), the one-second candles kept bounded
(``retention.py``), the market rows read again (``trips.Rows``: a resume, a new breaker setting), and halts an
operator resolved, whose symbol is read again from the record that stopped it (``halts.py``).
"""

from __future__ import annotations

import asyncpg

from shared import kafka, postgres
from shared.domain import Market
from shared.lifecycle import now_ms
from shared.messages import MatchedEvent

from .audits import Audits
from .halts import Halts
from .retention import Retention
from .trips import Rows


class Upkeep:
    def __init__(self, db: asyncpg.Pool, markets: dict[str, Market], halts: Halts) -> None:
        self.db, self.markets, self.halts = db, markets, halts
        self.audits, self.retention, self.rows = Audits(db), Retention(db), Rows()

    async def run(self, inbox: kafka.Inbox[MatchedEvent]) -> None:
        if self.audits.due():
            await self.audits.refresh()
        if self.retention.due():
            await self.retention.prune(now_ms())
        if self.rows.due():
            self.markets.update(await postgres.load_markets(self.db))
        if self.halts.due():
            for resolved in await self.halts.refresh():
                await inbox.rewind(resolved.topic, resolved.partition, resolved.offset, resolved.epoch)
