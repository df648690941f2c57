"""The order processor's writes for one decided batch, in the order the main loop makes them (``__main__``).

Postgres first (``take_holds``: every order row and hold of the batch in one transaction, cut in halves
around a request that cannot be applied); then one Redis round trip (``queue_redis``: the hot book, the
pending entries the rows settle, the owners told, the backlog for the gateways' admission), before the
matcher hears of the orders, so each NEW precedes whatever the matcher reports; the commands go to
``validated-orders`` after that, and ``count`` keeps the metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from prometheus_client import Counter

from shared import deadletter, pending
from shared import redis as sredis
from shared.messages import AcceptedOrder, MatcherCommand, RejectedOrder

from . import hotbook
from .batch import BatchDecision, Taking
from .holds import Holds, Located

DECISIONS = Counter("spot_orders_decided_total", "Order requests decided", ["outcome", "reason"])


async def take_holds(holds: Holds, news: Sequence[Located], now: int) -> Taking:
    """The batch's order rows and holds in Postgres: one transaction, cut in halves around a request that
    cannot be applied (``deadletter.isolate``) until it is found; an outage is raised as it comes."""
    taken, failed = await deadletter.isolate(news, functools.partial(holds.take, now=now))
    failed += holds.unstorable()  # refused alone inside the step: told and dead-lettered the same way
    return taken, failed


def queue_redis(pipe: sredis.Pipeline, decided: BatchDecision, news: Sequence[Located]) -> None:
    """What one batch writes to Redis once its rows are committed: the accepted orders into the hot book, the
    decided requests out of the pending ones (``shared.pending``), and the owners' user-stream events, one
    message per channel."""
    hotbook.queue(pipe, decided.accepted)
    pending.queue_decided(pipe, (loc.request for loc in news))
    publications = sredis.Publications()
    for channel, events in decided.told.items():
        publications.add_all(channel, events)
    publications.queue(pipe)


def count(commands: Sequence[MatcherCommand]) -> None:
    for c in commands:
        if isinstance(c, RejectedOrder):
            DECISIONS.labels("rejected", str(c.code)).inc()
        elif isinstance(c, AcceptedOrder):
            DECISIONS.labels("accepted", "").inc()
