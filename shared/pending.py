"""Order requests acknowledged but not yet decided, kept in Redis until the order processor decides them.

An ACK promises the order is taken. The broker has it then, but a broker that loses its log (the local broker
on memory after a ``kill -9``, a new MSK cluster under an old Aurora and ElastiCache) would lose it with the
log, before the processor wrote the order's row: nothing else remembers it. So the ``Ingestor`` also adds each
new order to ``req:{SYMBOL}:pending`` (``shared.rediskeys.pending_key``) with the log epoch it was published
on, in the same event-loop turn as its client-id claim, and the processor removes the entries of every
request it decided, once their rows are committed (``queue_decided``). What stays is either on its way (in the
log, ahead of the processor) or was lost with an older log.

On start the processor sorts a symbol's entries (``sort_out``, pure): one with a row was decided and only its
entry is left (deleted); one without a row, published on an older log than the current one, was lost with
that log and is sent again (``resend_lost``), to be decided as if it had just come (the processor decides by
order id once, so a copy that was not lost after all is given its first decision). One of the current log
without a row is still ahead in the log and is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import asyncpg
import msgspec

from shared import kafka, segment_fence
from shared import redis as sredis
from shared.config import Settings
from shared.messages import NewListRequest, NewOrderRequest, Topic, encode, envelopes, unpack_requests
from shared.rediskeys import pending_key

log = logging.getLogger(__name__)
REQUESTS = Topic.ORDER_REQUESTS.value


Pending = NewOrderRequest | NewListRequest
"""What is kept pending: a new order, or an order list (OCO, OTO, OTOCO), whose legs are decided together."""


def field_of(request: Pending) -> int:
    """The field a pending request is kept under: its order id; an order list's, its first leg's (whose row, like
    every leg's, is written when the processor decides the list, refused or not)."""
    return request.legs[0].order_id if isinstance(request, NewListRequest) else request.order_id


def entry(request: Pending, log_epoch: int) -> bytes:
    """The pending entry of ``request``, published on the log of ``log_epoch``."""
    return msgspec.msgpack.encode((log_epoch, encode(request)))


def parse(value: bytes) -> tuple[int, Pending]:
    """An entry's log epoch and request; ``ValueError`` for bytes that are not one."""
    try:
        log_epoch, raw = msgspec.msgpack.decode(value, type=tuple[int, bytes])
        ((request, _),) = unpack_requests(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"not a pending order request: {exc}") from None
    if not isinstance(request, NewOrderRequest | NewListRequest):
        raise ValueError(f"not a new order: {type(request).__name__}")
    return log_epoch, request


def queue_decided(pipe: sredis.Pipeline, requests: Iterable[NewOrderRequest]) -> None:
    """Remove the entries of ``requests`` (decided: their rows committed) on ``pipe``, one HDEL per symbol."""
    by_symbol: dict[str, list[str]] = {}
    for r in requests:
        by_symbol.setdefault(r.symbol, []).append(str(r.order_id))
    for symbol, ids in by_symbol.items():
        pipe.hdel(pending_key(symbol), *ids)


@dataclass(slots=True)
class Sorted:
    """A symbol's pending entries by what becomes of them."""

    decided: list[str] = field(default_factory=list)  # fields to delete: a row exists, or the entry is unreadable
    lost: list[Pending] = field(default_factory=list)  # to send again, oldest first
    ahead: int = 0  # of the current log, not decided yet: still on their way


def sort_out(entries: Mapping[bytes, bytes], stored: set[int], log_epoch: int) -> Sorted:
    """Sort ``entries`` (field -> value) given the order ids that have a row (``stored``) and the current log's
    epoch (pure)."""
    out = Sorted()
    for key, value in entries.items():
        field_name = key.decode()
        try:
            epoch, request = parse(value)
        except ValueError as exc:
            log.warning("pending entry %s dropped: %s", field_name, exc)
            out.decided.append(field_name)
            continue
        if field_of(request) in stored:
            out.decided.append(field_name)
        elif epoch < log_epoch:
            out.lost.append(request)
        else:
            out.ahead += 1
    out.lost.sort(key=lambda r: (r.ts, field_of(r)))
    return out


async def resend_lost(
    settings: Settings, db: asyncpg.Pool, cache: sredis.Client, outbox: kafka.Outbox, symbol: str
) -> Sorted:
    """Sort ``symbol``'s pending entries (``sort_out``), delete the decided ones and send the lost ones again to
    ``order-requests``, where the processor reads them (in one envelope, as a gateway's turn would send them).
    Run before the processor serves, so nothing it decides meanwhile races the deletes."""
    key = pending_key(symbol)
    entries = {_bytes(k): _bytes(v) for k, v in (await cache.hgetall(key)).items()}
    if not entries:
        return Sorted()
    ids = [int(k) for k in entries if k.isdigit()]
    rows = await db.fetch("SELECT order_id FROM orders WHERE order_id = ANY($1::bigint[])", ids)
    found = sort_out(entries, {r["order_id"] for r in rows}, settings.log_epoch)
    if found.decided:
        await cache.hdel(key, *found.decided)
    if found.lost:
        for value in envelopes(Topic.ORDER_REQUESTS, symbol, [encode(r) for r in found.lost], {}):
            await segment_fence.send_into_ring(settings, outbox, cache, REQUESTS, value, symbol)
        # now on the current log: a restart before they are decided finds them ahead, not lost again
        await cache.hset(key, mapping={str(field_of(r)): entry(r, settings.log_epoch) for r in found.lost})
        log.warning(
            "%s: %d acknowledged order(s) lost with an earlier log sent again: %s",
            symbol,
            len(found.lost),
            ", ".join(str(field_of(r)) for r in found.lost[:20]),
        )
    return found


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


__all__ = ["Pending", "Sorted", "entry", "field_of", "parse", "queue_decided", "resend_lost", "sort_out"]
