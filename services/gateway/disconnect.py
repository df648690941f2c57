"""Cancel-on-disconnect for a WebSocket API session (opt-in, as Deribit, Kraken and Coinbase offer it).

A logged-on session asks for it with ``session.cancelOnDisconnect`` (``enabled``, ``graceMs`` up to
``GRACE_MAX_MS``). When the connection drops while it is on, the gateway waits the grace, then cancels every
open order of the session's account, one mass cancel per symbol where it has any (``CancelAllOrders``: the
matcher takes them out at one point of each symbol's sequence, holds released by settlement as for any cancel).
The account scope is the point: a market maker whose connection dies must not leave quotes resting on any
symbol. Not the user's rate limit: the exchange cancels, not the user. A gateway stopped during the grace sends
nothing (the timer is the connection's own).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from shared import errors
from shared.domain import OrderStatus
from shared.errors import ApiError

from .deps import Gateway

log = logging.getLogger(__name__)

GRACE_MAX_MS = 60_000  # the longest a client may ask the exchange to wait after its connection dropped
OPEN = [OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value, OrderStatus.PENDING_NEW.value]


@dataclass(frozen=True, slots=True)
class CancelOnDisconnect:
    """What a session asked for: on or off, and the grace after a drop (ms)."""

    enabled: bool
    grace_ms: int

    @classmethod
    def parse(cls, params: dict[str, Any]) -> CancelOnDisconnect:
        """``enabled`` (a JSON boolean, required) and ``graceMs`` (0 to ``GRACE_MAX_MS``, default 0)."""
        enabled = params.get("enabled")
        if not isinstance(enabled, bool):
            raise errors.mandatory("enabled") if enabled is None else _illegal("enabled")
        grace = params.get("graceMs", 0)
        if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= GRACE_MAX_MS:
            raise _illegal("graceMs")
        return cls(enabled, grace)

    def answer(self) -> dict[str, Any]:
        return {"cancelOnDisconnect": self.enabled, "graceMs": self.grace_ms}


def _illegal(name: str) -> ApiError:
    return ApiError(errors.ILLEGAL_CHARS, f"Illegal value for parameter '{name}'.")


async def cancel_everything(gw: Gateway, user_id: int, grace_ms: int) -> list[str]:
    """After ``grace_ms``, a mass cancel of ``user_id``'s open orders on each symbol where it has any; the
    symbols it was sent for."""
    await asyncio.sleep(grace_ms / 1000)
    rows = await gw.db.fetch(
        "SELECT DISTINCT symbol FROM orders WHERE user_id = $1 AND status = ANY($2::text[]) ORDER BY symbol",
        user_id,
        OPEN,
    )
    sent = []
    for symbol in [r["symbol"] for r in rows]:
        try:
            await gw.ingest.cancel_all(user_id, {"symbol": symbol})
        except Exception as exc:  # an outage or an overload refusal: said once, the other symbols still go
            log.warning("cancel-on-disconnect of user %d on %s not sent: %s", user_id, symbol, type(exc).__name__)
            continue
        sent.append(symbol)
    log.info("connection of user %d dropped: mass cancels sent on %s", user_id, ", ".join(sent) or "no symbol")
    return sent
