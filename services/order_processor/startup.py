"""What the order processor repairs before it serves: the books a crash left apart, and what a lost log took.

Per market, the reconciler (``shared.reconcile``) compares Postgres with the hot book and the matcher's book
and re-sends the accepted orders the matcher never read. It can only name those once settlement has caught
up with the book (nothing in flight). After a broker lost its log, open orders of the earlier log that the
book does not hold may be lost with it; settlement is then behind until the matcher has published its
outbox again and settlement applied it, a few seconds. So while there are such orders the processor waits
for settlement, up to ``SETTLE_WAIT_S``, before it serves (an order taken for lost and re-sent while its
command was still in flight could make the matcher skip the commands before it). Otherwise, as after any
ordinary restart, it reconciles once and serves; a market left behind is reported and judged at the next
start or by ``spot admin reconcile``.

Then the orders acknowledged on a log the broker has lost are sent again (``shared.pending``).
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from shared import kafka, pending, segment_store, segments
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.messages import OrderRequest, Topic
from shared.reconcile import reconcile_symbol

log = logging.getLogger("order-processor")

SETTLE_WAIT_S = 30.0
SETTLE_POLL_S = 0.5
REQUESTS, VALIDATED = Topic.ORDER_REQUESTS.value, Topic.VALIDATED_ORDERS.value


async def repair(
    settings: Settings,
    markets: dict[str, Market],
    inbox: kafka.Inbox[OrderRequest],
    outbox: kafka.Outbox,
    db: asyncpg.Pool,
    cache: sredis.Client,
    stop: asyncio.Event,
) -> None:
    """Reconcile every market once settlement has caught up with its book (waiting ``SETTLE_WAIT_S`` at most),
    then send again the acknowledged orders a lost log took."""
    behind = dict(markets)
    deadline = time.monotonic() + SETTLE_WAIT_S
    while behind and not stop.is_set():
        for symbol, market in list(behind.items()):
            segment = await _segment(settings, inbox, cache, symbol)
            report = await reconcile_symbol(market, db, cache, outbox, segment, settings.log_epoch)
            if not report.clean:
                log.warning("reconciled %s: %s", symbol, report.as_json())
            if report.in_sync or not report.unjudged:  # judged, or nothing a lost log may have taken to wait for
                del behind[symbol]
        if not behind or time.monotonic() > deadline:
            break
        try:
            await asyncio.wait_for(stop.wait(), SETTLE_POLL_S)
        except TimeoutError:
            pass
    for symbol in behind:
        log.warning("%s: settlement is behind the book after %.0fs; not reconciled (next start)", symbol, SETTLE_WAIT_S)
    for market in markets.values():
        await pending.resend_lost(settings, db, cache, outbox, market.symbol)


async def _segment(settings: Settings, inbox: kafka.Inbox[OrderRequest], cache: sredis.Client, symbol: str) -> int:
    """The log segment re-sent orders go to: the one the processor reads on the symbol's partition, not past
    a seal written just before a crash (the matcher may have left it)."""
    partition = kafka.partition_of(symbol, settings.kafka_partitions)
    segment = inbox.epoch_of(REQUESTS, partition)
    if settings.kafka_segment_s:
        segment = segments.unsealed(segment, await segment_store.sealed(cache, settings, VALIDATED, partition))
    return segment
