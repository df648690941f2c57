"""What settlement says after a batch commits, and to whom: pure, no I/O.

Waiting REST calls hear each request's outcome (``outcome.py``), all of a batch's in one message on the
outcomes channel; each owner whose balances the batch changed hears its ``outboundAccountPosition`` on its
user channel (``shared.owner_reports`` has who else tells the owner what). An outcome of a traced request
carries its trace (``tracing.wrap``), so the gateway's reply continues it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from shared import redis as sredis
from shared import tracing
from shared.binance import account_positions
from shared.domain import Market
from shared.messages import MatchedEvent
from shared.rediskeys import settled_key

from .outcome import outcome


def told(
    markets: Mapping[str, Market],
    applied: Sequence[MatchedEvent],
    balances: Iterable[Mapping[str, Any]],
    channels: sredis.Channels,
    now: int,
    traced: tracing.Consumed = tracing.NOT_TRACED,
) -> sredis.Publications:
    """The messages for a settled batch: its ``applied`` events' outcomes, then the changed ``balances``."""
    said = []
    for e in applied:
        one = orjson.dumps(outcome(markets[e.symbol], e))
        tp = traced.traceparent(e) if traced.tracked else None
        said.append(one if tp is None else tracing.wrap(one, tp))
    publications = sredis.Publications()
    publications.add_all(channels.outcomes, said)  # one message per batch
    for user_id, event in account_positions(balances, now).items():
        publications.add(channels.user(user_id), orjson.dumps(event))
    return publications


def settled_marks(applied: Sequence[MatchedEvent]) -> dict[str, int]:
    """Per ``settled_key``, the seq settlement has now applied its symbol's events up to: the matcher keeps a
    batch's outputs in its outbox until this passes them (``services/matcher/retention.py``)."""
    marks: dict[str, int] = {}
    for e in applied:
        key = settled_key(e.symbol)
        marks[key] = max(marks.get(key, 0), e.seq)
    return marks
