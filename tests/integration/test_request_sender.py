"""The gateway's order requests on the real broker: what one event-loop turn took in goes as one record per
symbol, read back as its requests in arrival order with their own traces and growing source positions; a
later turn is a later record; a failed send fails only its own requests, and each of them."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka.errors import KafkaError

from shared import kafka
from shared.config import Settings
from shared.domain import OrderType, Side, TimeInForce
from shared.messages import NewOrderRequest, OrderRequest, Topic, source_position, unpack_requests
from shared.request_sender import RequestSender

TP = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def request(order_id: int, symbol: str, client_order_id: str = "") -> NewOrderRequest:
    return NewOrderRequest(
        order_id=order_id, user_id=7, symbol=symbol, side=Side.BUY, type=OrderType.LIMIT, tif=TimeInForce.GTC,
        price="50000", quantity="0.001", client_order_id=client_order_id or f"c{order_id}", ts=1,
    )  # fmt: skip


async def _read(settings: Settings, out: kafka.Outbox, n: int) -> list[kafka.Record[OrderRequest]]:
    got: list[kafka.Record[OrderRequest]] = []
    group = f"sender-{secrets.token_hex(3)}"
    stop = asyncio.Event()
    async with kafka.consumer(settings, [Topic.ORDER_REQUESTS], group, kafka.Envelopes(unpack_requests), out) as inbox:
        async with asyncio.timeout(20):
            async for batch in inbox.batches(stop):
                got += batch.records
                if len(got) >= n:
                    return got
    raise AssertionError("unreachable")


async def _flow(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    async with kafka.producer(settings) as out:
        sender = RequestSender(out)
        first_turn = [request(i, "BTCUSDT" if i % 3 else "ETHUSDT") for i in range(1, 10)]
        await asyncio.gather(*(sender.send(r, [("traceparent", TP)] if r.order_id == 5 else None) for r in first_turn))
        await sender.send(request(10, "BTCUSDT"))  # a turn of its own: a record of its own

        too_big = request(11, "ETHUSDT", "x" * (9 << 20))  # over the producer's max request size
        failed = await asyncio.gather(
            sender.send(too_big), sender.send(request(12, "ETHUSDT")), sender.send(request(13, "BTCUSDT")),
            return_exceptions=True,
        )  # fmt: skip
        assert [type(f).__name__ for f in failed[:2]] == [type(failed[0]).__name__] * 2
        assert isinstance(failed[0], KafkaError), failed
        assert failed[2] is None, "another symbol's record of the same turn went"

        got = await _read(settings, out, 11)
    records = {r.offset for r in got}
    assert len(records) == 4, f"one record per symbol per turn: {sorted(records)}"
    btc = [r.value.order_id for r in got if r.value.symbol == "BTCUSDT"]
    eth = [r.value.order_id for r in got if r.value.symbol == "ETHUSDT"]
    assert btc == [1, 2, 4, 5, 7, 8, 10, 13] and eth == [3, 6, 9], (btc, eth)
    positions = [source_position(r.offset, r.index) for r in got]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [r.value.order_id for r in got if dict(r.headers).get("traceparent") == TP] == [5]


def test_one_record_per_symbol_per_turn(servers: dict[str, str]) -> None:
    settings = Settings(kafka_bootstrap=servers["KAFKA_BOOTSTRAP"], topic_suffix=f".snd{secrets.token_hex(3)}")
    asyncio.run(_flow(settings))


@pytest.mark.parametrize("count", [1, 3])
def test_unpack_requests_reads_a_single_request_and_an_envelope(count: int) -> None:
    from shared.messages import encode, envelopes

    reqs = [request(i, "BTCUSDT") for i in range(count)]
    raw = (
        encode(reqs[0]) if count == 1 else envelopes(Topic.ORDER_REQUESTS, "BTCUSDT", [encode(r) for r in reqs], {})[0]
    )
    assert [m for m, _ in unpack_requests(raw)] == reqs
