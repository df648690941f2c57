"""REST calls that wait for an order's outcome: futures resolved from settlement's pub/sub channel.

Each gateway replica subscribes once to ``order-outcomes``. An outcome can arrive before the caller
starts waiting (the fleet may be faster than ingestion's HTTP reply), so recent unclaimed outcomes are
kept briefly in a bounded map, as the bytes received: most are never claimed (``newOrderRespType=ACK``),
and 20,000 parsed orders with their fills held ~90 MB where their bytes hold a few. Briefly means both
``EARLY_KEEP_S`` and ``EARLY_KEPT``: an early outcome waits only for its caller's ACK to come back, and a
count bound alone let the map fill for minutes at a modest rate (the soak saw the gateway grow ~2 MB a
minute at 50 orders/s, flat only past 20,000 outcomes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import orjson

log = logging.getLogger(__name__)
EARLY_KEPT = 20_000
EARLY_KEEP_S = 30.0  # far longer than an ACK takes to reach its caller, even under load


class Outcomes:
    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._early: OrderedDict[int, tuple[float, bytes]] = OrderedDict()  # arrival order: oldest first

    def deliver(self, raw: bytes) -> None:
        try:
            outcome = orjson.loads(raw)
            request_id = int(outcome["requestId"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed outcome ignored")
            return
        fut = self._waiting.pop(request_id, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(outcome)
            return
        now = time.monotonic()
        self._early[request_id] = (now, raw)
        early = self._early
        while len(early) > EARLY_KEPT or early[next(iter(early))][0] < now - EARLY_KEEP_S:
            early.popitem(last=False)

    async def wait(self, request_id: int, timeout_s: float) -> dict[str, Any] | None:
        early = self._early.pop(request_id, None)
        if early is not None:
            found: dict[str, Any] = orjson.loads(early[1])
            return found
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request_id, None)
