"""Order requests to ``order-requests`` as envelopes: what one event-loop turn took in goes as one record
per symbol. The sending half of ``shared/ingestor.py``.

A request's caller awaits its record's ack, so the ACK answer still means "the broker has it". The
broker's and the Kafka clients' cost is per record, not per request: at a few thousand orders a second the
gateway takes in several requests per loop turn, and each record it saves is a produce, a fetch and a
decode less for the broker and the order processor. Order is kept: a symbol's requests are queued in
arrival order and its envelopes are handed to the producer in the order of the turns that made them.
"""

from __future__ import annotations

import asyncio
from typing import Final

from shared import kafka
from shared.messages import OrderRequest, Topic, encode, envelopes
from shared.segment_fence import Fence

TOPIC: Final = Topic.ORDER_REQUESTS.value


class _Queued:
    """One symbol's requests of the current turn: encoded once, their traces, and who waits for the ack."""

    __slots__ = ("encoded", "traces", "waiting")

    def __init__(self) -> None:
        self.encoded: list[bytes] = []
        self.traces: dict[int, str] = {}
        self.waiting: list[asyncio.Future[None]] = []


class RequestSender:
    def __init__(self, outbox: kafka.Outbox, fence: Fence | None = None) -> None:
        self._outbox = outbox
        self._fence = fence  # the log segment a turn's records go to, sealed once they are acknowledged
        self._queued: dict[str, _Queued] = {}
        self._sending: set[asyncio.Task[None]] = set()  # strong references until each is done

    async def send(self, request: OrderRequest, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue ``request`` for this turn's envelope of its symbol; returns once the broker acked it (or
        raises what the send raised). ``headers``: the trace to continue (``tracing.Producing``)."""
        loop = asyncio.get_running_loop()
        if not self._queued:
            loop.call_soon(self._flush)
        queued = self._queued.get(request.symbol)
        if queued is None:
            queued = self._queued[request.symbol] = _Queued()
        if headers:
            queued.traces[len(queued.encoded)] = headers[0][1].decode()
        queued.encoded.append(encode(request))
        acked: asyncio.Future[None] = loop.create_future()
        queued.waiting.append(acked)
        await acked

    def _flush(self) -> None:
        queued, self._queued = self._queued, {}
        for symbol, q in queued.items():
            task = asyncio.ensure_future(self._send(symbol, q))  # starts in this order: the producer's order
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, symbol: str, q: _Queued) -> None:
        try:
            values = envelopes(TOPIC, symbol, q.encoded, q.traces)
            if self._fence is None:
                await self._outbox.send_all_now(TOPIC, values, key=symbol)
            else:
                async with self._fence.sending() as epoch:
                    await self._outbox.send_all_now(TOPIC, values, key=symbol, epoch=epoch)
        except Exception as failed:  # every waiter raises it: none of them is acknowledged
            for w in q.waiting:
                if not w.done():
                    w.set_exception(failed)
            return
        for w in q.waiting:
            if not w.done():  # a caller that went away (its request was cancelled) is not told
                w.set_result(None)
