"""REST calls that wait for an order's outcome: futures resolved from settlement's pub/sub channel.

Each gateway replica subscribes once to ``order-outcomes``. An outcome can arrive before the caller
starts waiting (the fleet may be faster than ingestion's HTTP reply), so recent unclaimed outcomes are
kept briefly in a bounded map, as the bytes received: most are never claimed (``newOrderRespType=ACK``),
and 20,000 parsed orders with their fills held ~90 MB where their bytes hold a few.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import orjson

log = logging.getLogger(__name__)
EARLY_KEPT = 20_000


class Outcomes:
    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._early: OrderedDict[int, bytes] = OrderedDict()

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
        self._early[request_id] = raw
        while len(self._early) > EARLY_KEPT:
            self._early.popitem(last=False)

    async def wait(self, request_id: int, timeout_s: float) -> dict[str, Any] | None:
        early = self._early.pop(request_id, None)
        if early is not None:
            found: dict[str, Any] = orjson.loads(early)
            return found
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request_id, None)
