"""The kill switch: cancel every open order of a user (or of a whole symbol) in sequence, from the operator's seat.

``spot admin cancel-all`` and ``spot admin user disable`` send one ``CancelAllRequest`` per symbol to
``order-requests``, as the gateway sends a cancel: the order processor passes it on at its source position and
the matcher cancels, in one event, whatever of it is open at that point of the symbol's sequence, so settlement
releases each hold once and the owners hear an ``executionReport`` per order, as for any cancel. Nothing here
touches a book or a balance: the order path is the only writer.

Then it waits (``wait_s``) until Postgres shows every order that was open when it sent as ended, and says how
many still are (an order accepted after the request is not the request's: it is sequenced later).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from shared import dbsecret, kafka, segment_fence
from shared import redis as sredis
from shared.config import Settings
from shared.ids import BLOCK
from shared.lifecycle import now_ms
from shared.messages import EVERY_OWNER, CancelAllRequest, Topic, encode

OPEN = ["NEW", "PARTIALLY_FILLED", "PENDING_NEW"]
POLL_S = 0.05


@dataclass
class MassCancel:
    """What one run sent and what it saw end."""

    user_id: int
    requests: dict[str, int] = field(default_factory=dict)  # symbol -> request id
    open_before: int = 0
    still_open: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "userId": self.user_id or None,
            "requests": [{"symbol": s, "requestId": r} for s, r in self.requests.items()],
            "canceled": self.open_before - self.still_open,
            "stillOpen": self.still_open,
        }


async def cancel_all(settings: Settings, user_id: int, symbol: str | None = None, wait_s: float = 5.0) -> MassCancel:
    """Cancel every open order of ``user_id`` (``EVERY_OWNER``: of everyone, which needs ``symbol``) on
    ``symbol``, or on every symbol where it has one. Raises ``LookupError`` for an unknown symbol or user."""
    if user_id == EVERY_OWNER and symbol is None:
        raise ValueError("canceling every owner's orders needs a symbol")
    db = await dbsecret.connect(settings)
    try:
        if symbol is not None and not await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM markets WHERE symbol = $1)", symbol
        ):
            raise LookupError(f"no market {symbol}")
        if user_id != EVERY_OWNER and not await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)", user_id
        ):
            raise LookupError(f"no user {user_id}")
        open_ids = await _open(db, user_id, symbol)
        symbols = [symbol] if symbol is not None else sorted({s for _, s in open_ids})
        done = MassCancel(user_id, open_before=len(open_ids))
        if symbols:
            first = await db.fetchval("SELECT nextval('order_id_blocks')") * BLOCK  # ids no replica hands out
            done.requests = {s: first + i for i, s in enumerate(symbols)}
            await _send(settings, user_id, done.requests)
        done.still_open = await _wait(db, [i for i, _ in open_ids], wait_s)
        return done
    finally:
        await db.close()


async def _open(db: asyncpg.Connection, user_id: int, symbol: str | None) -> list[tuple[int, str]]:
    rows = await db.fetch(
        "SELECT order_id, symbol FROM orders WHERE status = ANY($1::text[]) "
        "AND ($2::bigint = 0 OR user_id = $2) AND ($3::text IS NULL OR symbol = $3)",
        OPEN,
        user_id,
        symbol,
    )
    return [(r["order_id"], r["symbol"]) for r in rows]


async def _send(settings: Settings, user_id: int, requests: dict[str, int]) -> None:
    """One request per symbol, where the order processor reads (``segment_fence.send_into_ring``)."""
    topic = Topic.ORDER_REQUESTS.value
    async with kafka.producer(settings) as out, sredis.client(settings) as cache:
        for symbol, request_id in requests.items():
            request = CancelAllRequest(request_id=request_id, user_id=user_id, symbol=symbol, ts=now_ms())
            await segment_fence.send_into_ring(settings, out, cache, topic, encode(request), symbol)


async def _wait(db: asyncpg.Connection, order_ids: list[int], wait_s: float) -> int:
    """How many of ``order_ids`` are still open once all ended or ``wait_s`` passed."""
    deadline = time.monotonic() + wait_s
    while True:
        left: int = await db.fetchval(
            "SELECT count(*) FROM orders WHERE order_id = ANY($1::bigint[]) AND status = ANY($2::text[])",
            order_ids,
            OPEN,
        )
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(POLL_S)
