"""The matcher's pipeline, with the broker and Redis faked: a batch is committed to Redis while the one
before it is being acknowledged, but its outputs go only after those acks; a batch's outbox entry is
removed by a commit after its acks and after settlement applied it; a failed send stops the matcher before
any later output goes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.matcher.book import Book
from services.matcher.bookstore import Committed
from services.matcher.pipeline import Matcher
from shared import kafka
from shared.domain import OrderType, Side, TimeInForce
from shared.messages import AcceptedOrder, Topic, unpack_matched
from shared.postgres import DEFAULT_MARKETS

MARKET = DEFAULT_MARKETS[0]
INPUT = Topic.VALIDATED_ORDERS.value


class Store:
    def __init__(self) -> None:
        self.commits: list[tuple[int, list[int]]] = []  # (outbox entry, entries released)
        self.settled = 0  # what settlement wrote (``settled_key``), as the commit script reads it

    async def load(self, market: Any) -> tuple[Book, list[Any]]:
        return Book(market), []

    def prepare(self, book: Book, events: list[Any], outputs: Any, taken: Any = (), acked: Any = ()) -> Any:
        return int(events[0].seq), list(acked), int(events[-1].seq)

    async def write(self, prepared: tuple[int, list[int], int]) -> Committed:
        entry, released, last = prepared
        self.commits.append((entry, released))
        return Committed(entry, last, self.settled)


class Outbox:
    def __init__(self) -> None:
        self.sent_values: list[bytes] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, topic: str, value: bytes, key: str, headers: Any = None, epoch: int | None = None) -> None:
        self.sent_values.append(value)

    def sent(self) -> asyncio.Future[None]:
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    async def flush(self) -> None:
        pass


class Inbox:
    def __init__(self) -> None:
        self.committed: list[dict[Any, int]] = []

    def owned(self) -> set[tuple[str, int]]:
        return {(INPUT, 0)}

    async def commit(self, batch: kafka.Batch[Any]) -> None:
        self.committed.append(dict(batch.ends))


def batch(first: int, n: int) -> kafka.Batch[AcceptedOrder]:
    records = [
        kafka.Record(
            INPUT,
            0,
            offset,
            AcceptedOrder(
                src_partition=0,
                src_offset=offset,
                order_id=1000 + offset,
                user_id=1,
                symbol=MARKET.symbol,
                side=Side.BUY,
                type=OrderType.LIMIT,
                tif=TimeInForce.GTC,
                price_ticks=4_000_000 + offset,
                qty_lots=1,
                budget=4_000_000 + offset,
                client_order_id=f"c{offset}",
                ts=1,
            ),
        )
        for offset in range(first, first + n)
    ]
    return kafka.Batch(records, {("in", 0): first + n})  # type: ignore[dict-item]  # any key will do here


def seqs(values: list[bytes]) -> list[int]:
    return [e.seq for value in values for e, _ in unpack_matched(value)]


def test_a_batch_goes_out_only_after_the_acks_of_the_one_before_and_its_entry_is_then_removed():
    async def run() -> None:
        store, outbox, inbox = Store(), Outbox(), Inbox()
        matcher = Matcher(store, {MARKET.symbol: MARKET}, outbox)  # type: ignore[arg-type]
        await matcher.assigned(set(), 4)
        await matcher.book(MARKET.symbol)
        await matcher.match(inbox, batch(0, 3))  # type: ignore[arg-type]
        assert seqs(outbox.sent_values) == [1, 2, 3] and inbox.committed == []

        second = asyncio.create_task(matcher.match(inbox, batch(3, 2)))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert store.commits == [(1, []), (4, [])]  # committed to Redis while batch 1 is unacknowledged ...
        assert seqs(outbox.sent_values) == [1, 2, 3]  # ... but not sent before batch 1's acks
        outbox.acks[0].set_result(None)
        await second
        assert seqs(outbox.sent_values) == [1, 2, 3, 4, 5]
        assert inbox.committed == [{("in", 0): 3}]

        outbox.acks[1].set_result(None)
        await matcher.settle()
        await matcher.match(inbox, batch(5, 1))  # type: ignore[arg-type]
        assert store.commits[-1] == (6, [])  # acknowledged, but settlement has applied neither: both kept
        assert inbox.committed == [{("in", 0): 3}, {("in", 0): 5}]

        async def acked_then(first: int) -> None:  # every batch sent so far acknowledged, then the next
            for ack in outbox.acks:
                if not ack.done():
                    ack.set_result(None)
            await matcher.settle()
            await matcher.match(inbox, batch(first, 1))  # type: ignore[arg-type]

        store.settled = 4  # settlement is past batch 1 (seq 1..3), inside batch 2 (4..5)
        await acked_then(6)  # this commit reads it ...
        await acked_then(7)  # ... the next one acts on it
        assert store.commits[-1] == (8, [1])
        store.settled = 7
        await acked_then(8)
        await acked_then(9)
        assert store.commits[-1] == (10, [4, 6, 7])  # every acknowledged batch settlement applied
        matcher.abandon()

    asyncio.run(run())


def test_a_failed_send_stops_the_matcher_before_a_later_output_goes():
    async def run() -> None:
        store, outbox, inbox = Store(), Outbox(), Inbox()
        matcher = Matcher(store, {MARKET.symbol: MARKET}, outbox)  # type: ignore[arg-type]
        await matcher.book(MARKET.symbol)
        await matcher.match(inbox, batch(0, 2))  # type: ignore[arg-type]
        outbox.acks[0].set_exception(ConnectionError("broker gone"))
        with pytest.raises(ConnectionError):
            await matcher.match(inbox, batch(2, 2))  # type: ignore[arg-type]
        assert seqs(outbox.sent_values) == [1, 2]  # batch 2 is in the Redis outbox, not on the broker
        assert store.commits == [(1, []), (3, [])] and inbox.committed == []

    asyncio.run(run())
