"""The circuit breaker's action (``breaker.py`` decides): a tripped market goes to ``BREAK`` as an operator's halt
does (``spot/markets.py``): its row first, then a ``MarketChangeRequest`` in-band on its partition (the order
processor refuses its orders from that point of its sequence), then the gateways (exchangeInfo says BREAK).

The row is changed only from ``TRADING``, in one statement (``circuit_break``, the one market write
settlement's role may make), so a trip repeated (a redelivered batch, two
settlement replicas) sends nothing twice, and a market an operator halted meanwhile stays as it is. The
market rows are read again every ``ROWS_S`` so a changed breaker setting or a resume reaches the breaker.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import asyncpg
from prometheus_client import Counter

from shared import apikeys, kafka, postgres, segment_fence
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.ids import BLOCK
from shared.lifecycle import now_ms
from shared.messages import MarketChangeRequest, Topic, encode, spec_of

log = logging.getLogger("settlement")
TRIPS = Counter("spot_circuit_breaks_total", "Markets the circuit breaker put in BREAK", ["symbol"])
ROWS_S: Final = 2.0


class Rows:
    """When the market rows are read again."""

    def __init__(self) -> None:
        self.read_at = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self.read_at < ROWS_S:
            return False
        self.read_at = time.monotonic()
        return True


async def trip(
    settings: Settings, db: asyncpg.Pool, outbox: kafka.Outbox, cache: Any, markets: dict[str, Market], symbol: str
) -> bool:
    """Put ``symbol`` in BREAK if it is TRADING; False if it was not (nothing sent)."""
    async with db.acquire() as conn:
        if not await conn.fetchval("SELECT circuit_break($1)", symbol):  # TRADING -> BREAK, nothing else (0014)
            return False
        broken = (await postgres.load_markets(conn))[symbol]
        request_id = await conn.fetchval("SELECT nextval('order_id_blocks')") * BLOCK
    markets[symbol] = broken
    change = MarketChangeRequest(request_id=request_id, symbol=symbol, market=spec_of(broken), ts=now_ms())
    await segment_fence.send_into_ring(settings, outbox, cache, Topic.ORDER_REQUESTS.value, encode(change), symbol)
    await cache.publish(sredis.Channels(settings.topic_suffix).access, apikeys.MARKETS_CHANGED)
    TRIPS.labels(symbol).inc()
    log.warning("%s: the last price moved past the circuit breaker's %s within %d s: BREAK until resumed",
                symbol, broken.breaker_pct, broken.breaker_window_s)  # fmt: skip
    return True
