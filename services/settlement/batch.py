"""What settlement does with one batch of matched events: settle it, say what changed, feed the breaker.

``settle`` applies a batch in one Postgres transaction (``accounts.py``); a record that cannot be applied
(``unappliable``: the record's own fault, not an outage) stops only its symbol (``halts.py``): the batch is
settled again symbol by symbol, then event by event in the symbol that fails, and the other symbols go on.
``tell`` publishes what the committed batch changed in one Redis round trip (``told.py`` decides what is said,
pure), and ``trip_breakers`` feeds each symbol's trades to the circuit breaker (``breaker.py`` decides, pure;
``trips.py`` acts). ``traded`` and ``unappliable`` are pure; the rest wires them to Postgres and Redis.
``Settler.settle_batch`` takes one consumer batch through the three, committing its input after ``settle``.

A lost dependency (a connection error, a timeout) is an outage: the batch is settled again once it answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter, Histogram

from shared import kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.lifecycle import now_ms
from shared.messages import MatchedEvent

from .accounts import Accounts
from .breaker import Breaker
from .halts import Halts, by_symbol
from .told import settled_marks, told
from .trips import trip

Settlement = tuple[list[MatchedEvent], list[asyncpg.Record]]
SETTLED = Counter("spot_settled_events_total", "Matched events settled")
BATCH_SECONDS = Histogram("spot_settlement_batch_seconds", "Time to settle one batch")

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


async def tell(
    cache: sredis.Client,
    markets: dict[str, Market],
    applied: Sequence[MatchedEvent],
    balances: Sequence[asyncpg.Record],
    channels: sredis.Channels,
    now: int,
    traced: tracing.Consumed,
) -> None:
    """Publish a committed batch's outcomes and changed balances, and mark how far it settled each symbol (the
    matcher's outbox keeps a batch until then): one round trip."""
    news = told(markets, applied, balances, channels, now, traced)
    with sredis.timed("publish_outcomes"):
        pipe = cache.pipeline(transaction=False)
        news.queue(pipe)
        for key, seq in settled_marks(applied).items():
            pipe.set(key, seq)
        await pipe.execute()


async def trip_breakers(
    settings: Settings,
    breaker: Breaker,
    applied: Sequence[MatchedEvent],
    markets: dict[str, Market],
    db: asyncpg.Pool,
    outbox: kafka.Outbox,
    cache: sredis.Client,
) -> None:
    """Feed the batch's trades to the breaker; put each market it trips in BREAK (``trips.trip``)."""
    if not any(m.breaker_pct for m in markets.values()):  # off by default: nothing to feed
        return
    for symbol, trades in traded(applied).items():
        if breaker.observe(markets[symbol], trades):
            await trip(settings, db, outbox, cache, markets, symbol)


def traded(events: Sequence[MatchedEvent]) -> dict[str, list[tuple[int, int]]]:
    """Each symbol's trades of a settled batch, (time, price ticks), in sequence order: the breaker's input."""
    out: dict[str, list[tuple[int, int]]] = {}
    for e in events:
        if e.trades:
            out.setdefault(e.symbol, []).extend((t.ts, t.price_ticks) for t in e.trades)
    return out


class Settler:
    """One consumer batch at a time: settled (the records of a halted symbol wait), committed, told, traded."""

    def __init__(
        self,
        settings: Settings,
        db: asyncpg.Pool,
        cache: sredis.Client,
        dlq: kafka.Outbox,
        markets: dict[str, Market],
        halts: Halts,
    ) -> None:
        self.settings, self.db, self.cache, self.dlq, self.markets, self.halts = (
            settings,
            db,
            cache,
            dlq,
            markets,
            halts,
        )
        self.accounts = Accounts(db, markets)
        self.channels = sredis.Channels(settings.topic_suffix)
        self.breaker = Breaker()

    async def settle_batch(self, inbox: kafka.Inbox[MatchedEvent], batch: kafka.Batch[MatchedEvent]) -> None:
        if not batch.records:
            if batch.ends:  # only a segment's seal: committed, so the consumer moves to the next segment
                await inbox.commit(batch, self.halts.held_offsets())
            return
        with BATCH_SECONDS.time(), tracing.consume(batch.records) as traced:
            now = now_ms()
            records = [r for r in batch.records if not self.halts.waits(r)]
            await postgres.learn_markets(self.db, self.markets, {r.value.symbol for r in records})  # added live
            applied, balances = await settle(self.accounts, self.halts, records, now)
            await inbox.commit(batch, self.halts.held_offsets())
            if not applied:
                return
            SETTLED.inc(len(applied))
            await tell(self.cache, self.markets, applied, balances, self.channels, now, traced)
            await trip_breakers(self.settings, self.breaker, applied, self.markets, self.db, self.dlq, self.cache)
