"""One-second candles kept bounded: settlement, which writes the candles (the ``trades`` trigger of migration 0012),
deletes the 1s ones older than ``shared.candles.SECONDS_KEPT_MS``.

A pass deletes at most ``CHUNK`` rows a market, oldest first, through the primary key (symbol, width, open time),
so it costs a few milliseconds between two batches; it runs every ``EVERY_S``, or at the next batch (at most every
``CATCH_UP_S``) while a pass found a full chunk (a table that grew before this existed drains at
``CHUNK`` / ``CATCH_UP_S`` rows a second a market). Markets are read from the table at each pass, so a new one is
kept bounded too. A failed pass (an outage) is logged and tried again later; settling goes on.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from prometheus_client import Counter

from shared.candles import SECOND_MS, SECONDS_KEPT_MS

log = logging.getLogger(__name__)

EVERY_S = 10.0
CATCH_UP_S = 0.5
CHUNK = 2_000
PRUNED = Counter("spot_klines_pruned_total", "One-second candles deleted past their retention")
PRUNE = """
DELETE FROM klines WHERE (symbol, width_ms, open_time) IN (
    SELECT m.symbol, $1::int, k.open_time FROM markets m CROSS JOIN LATERAL (
        SELECT open_time FROM klines WHERE symbol = m.symbol AND width_ms = $1 AND open_time < $2
        ORDER BY open_time LIMIT $3) k)"""


class Retention:
    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self.db = db
        self._last = 0.0
        self._behind = False  # the last pass deleted a full chunk: more are waiting

    def due(self) -> bool:
        return time.monotonic() - self._last >= (CATCH_UP_S if self._behind else EVERY_S)

    async def prune(self, now_ms: int) -> int:
        """Delete one chunk a market of the 1s candles that opened before ``now_ms - SECONDS_KEPT_MS``; how many."""
        self._last = time.monotonic()
        try:
            status = await self.db.execute(PRUNE, SECOND_MS, now_ms - SECONDS_KEPT_MS, CHUNK)
        except Exception as exc:  # an outage: the candles wait for the next pass, settling goes on
            log.warning("old one-second candles not pruned (%s: %s)", type(exc).__name__, exc)
            return 0
        deleted = int(status.rsplit(" ", 1)[-1])
        self._behind = deleted >= CHUNK
        PRUNED.inc(deleted)
        return deleted
