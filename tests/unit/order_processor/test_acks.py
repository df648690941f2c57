"""The processor's pipelined acks: a batch is committed only once its commands are acknowledged, one batch later,
and a seal waits for every ack in flight. The Outbox is the real one over a producer whose acks the test holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.order_processor.writes import Acks
from shared import kafka
from shared.config import Settings


class HeldProducer:
    """Hands out an unresolved future per send: the test says when the broker acknowledges."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut


class Committed:
    """Records what the inbox was asked to commit, in order."""

    def __init__(self) -> None:
        self.batches: list[kafka.Batch[Any]] = []

    async def commit(self, batch: kafka.Batch[Any]) -> None:
        self.batches.append(batch)


def _outbox(producer: HeldProducer) -> kafka.Outbox:
    return kafka.Outbox(producer, Settings(kafka_segment_s=0))  # type: ignore[arg-type]


async def _one_in_flight() -> tuple[HeldProducer, Committed, kafka.Outbox, Acks]:
    """A batch whose one command is sent and handed to ``Acks``, its ack not yet in."""
    producer, inbox = HeldProducer(), Committed()
    outbox = _outbox(producer)
    acks = Acks(outbox)
    await outbox.send("validated-orders", b"1", key="BTCUSDT")
    await acks.sent(kafka.Batch[Any](), inbox)  # type: ignore[arg-type]
    return producer, inbox, outbox, acks


async def _settled(task: asyncio.Task[None]) -> bool:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return task.done()


async def test_a_batch_is_committed_after_its_acks_while_the_next_is_decided() -> None:
    producer, inbox = HeldProducer(), Committed()
    outbox = _outbox(producer)
    acks = Acks(outbox)
    first, second = kafka.Batch[Any](), kafka.Batch[Any]()

    await outbox.send("validated-orders", b"1", key="BTCUSDT")
    await acks.sent(first, inbox)  # type: ignore[arg-type]
    assert inbox.batches == []  # nothing before it to commit, and its own acks are not in

    await outbox.send("validated-orders", b"2", key="BTCUSDT")
    done = asyncio.create_task(acks.sent(second, inbox))  # type: ignore[arg-type]
    assert not await _settled(done), "the first batch's acks are not in: it must not be committed"
    producer.acks[0].set_result(None)
    await done
    assert inbox.batches == [first]

    settle = asyncio.create_task(acks.settle(inbox))  # type: ignore[arg-type]
    assert not await _settled(settle)
    producer.acks[1].set_result(None)
    await settle
    assert inbox.batches == [first, second]


async def test_a_seal_waits_for_the_acks_in_flight_and_those_not_yet_taken() -> None:
    producer, _, outbox, acks = await _one_in_flight()
    await outbox.send("validated-orders", b"2", key="BTCUSDT")  # sent, not yet handed to acks

    acked = asyncio.create_task(acks.acked())
    assert not await _settled(acked)
    producer.acks[1].set_result(None)
    assert not await _settled(acked), "the batch in flight is not acknowledged yet"
    producer.acks[0].set_result(None)
    await acked


async def test_a_failed_ack_raises_and_commits_nothing() -> None:
    producer, inbox, _, acks = await _one_in_flight()
    producer.acks[0].set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await acks.settle(inbox)  # type: ignore[arg-type]
    assert inbox.batches == []


async def test_a_batch_that_reached_a_segments_seal_is_committed_at_once() -> None:
    """The ring moves to the next segment once the seal's batch is committed: pipelined, the switch (and every
    request waiting in the next segment) would wait for the batch after it."""
    producer, inbox = HeldProducer(), Committed()
    outbox = _outbox(producer)
    acks = Acks(outbox)
    sealed = kafka.Batch[Any](sealed={TopicPartition("order-requests", 0)})
    await outbox.send("validated-orders", b"1", key="BTCUSDT")
    done = asyncio.create_task(acks.sent(sealed, inbox))  # type: ignore[arg-type]
    assert not await _settled(done)
    producer.acks[0].set_result(None)
    await done
    assert inbox.batches == [sealed]
