"""Records that decode but cannot be applied: told from an outage, isolated, and dead-lettered.

A record may decode and still be impossible to apply: a number past what Postgres, Redis or Parquet
stores, a broken invariant, a constraint. Retrying it forever stops its whole partition (every user's
orders on it), so a consumer isolates it and sends it to ``<topic>.dlq``; the partition keeps flowing.
An outage (``resilience.outage``: connection errors, timeouts, a broker, database or cache away) is not
the record's fault and stays on the outage path: wait and serve again from committed state.

A dead letter is the message alone, as a single-message record (a message taken out of an envelope goes
without its neighbours, which were applied), keyed by its symbol, with the record's own headers followed
by ``reason``, ``source`` (``topic/partition/offset``, the topic without a run's suffix) and
``source-index`` (its place in an envelope). ``spot admin dlq`` lists, shows and replays them.

``isolate`` is the generic way to find the records a batch step cannot apply, for a step that is all or
nothing (one transaction): the whole batch first, then halves, down to single records.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from . import resilience
from .kafka import DLQ_TOTAL, Outbox, Record

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

REASON, SOURCE, INDEX = "reason", "source", "source-index"
OWN_HEADERS = frozenset((REASON, SOURCE, INDEX))  # what a dead letter adds to the record's own headers
REASON_MAX = 500  # characters of the exception kept: a header, not a log


def unappliable(exc: BaseException) -> bool:
    """Whether an exception is the record's fault (dead-letter it) rather than a dependency's (wait)."""
    return isinstance(exc, Exception) and resilience.outage(exc) is None


def reason_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:REASON_MAX]


def headers_of(
    own: Sequence[tuple[str, bytes]], reason: str, topic: str, partition: int, offset: int, index: int
) -> list[tuple[str, bytes]]:
    """The dead letter's headers: the record's own (less any of an earlier dead-lettering), then ours."""
    kept = [(k, v) for k, v in own if k not in OWN_HEADERS]
    return [
        *kept,
        (REASON, reason.encode()),
        (SOURCE, f"{topic}/{partition}/{offset}".encode()),
        (INDEX, str(index).encode()),
    ]


class DeadLetters:
    """Sends a consumer's unappliable messages to ``<topic>.dlq``, each acknowledged before ``send`` returns,
    so a caller that commits its progress afterwards never commits past a dead letter the broker lacks."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def send(self, record: Record[Any], value: bytes, key: str, exc: BaseException | str) -> None:
        """Dead-letter one message of ``record`` (``value``: the message alone, encoded)."""
        reason = exc if isinstance(exc, str) else reason_of(exc)
        log.warning(
            "unappliable message %s[%d]@%d#%d sent to %s.dlq: %s",
            record.topic,
            record.partition,
            record.offset,
            record.index,
            record.topic,
            reason,
        )
        headers = headers_of(record.headers, reason, record.topic, record.partition, record.offset, record.index)
        await self._outbox.send_now(f"{record.topic}.dlq", value, key=key, headers=headers)
        DLQ_TOTAL.labels(record.topic).inc()


async def isolate(
    items: Sequence[T], apply: Callable[[Sequence[T]], Awaitable[R]]
) -> tuple[list[tuple[Sequence[T], R]], list[tuple[T, Exception]]]:
    """Apply ``items`` in order in as few calls as failures allow: all at once, else each half, down to
    single items. ``apply`` must be all or nothing (a transaction), so a failed call changed nothing.

    Returns each successful call's items with its result, in order, and each item that failed alone with
    an unappliable error. An outage is raised as it comes (nothing is isolated from it).
    """
    applied: list[tuple[Sequence[T], R]] = []
    failed: list[tuple[T, Exception]] = []

    async def run(chunk: Sequence[T]) -> None:
        try:
            applied.append((chunk, await apply(chunk)))
            return
        except Exception as exc:
            if not unappliable(exc):
                raise
            if len(chunk) == 1:
                failed.append((chunk[0], exc))
                return
        middle = len(chunk) // 2
        await run(chunk[:middle])
        await run(chunk[middle:])

    if items:
        await run(items)
    return applied, failed
