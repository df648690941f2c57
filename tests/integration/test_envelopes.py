"""An envelope on the real broker: the consumer gets each of its messages, at the envelope's offset, with
its own trace; a single message still reads as before; a poison record goes to the dead-letter topic and
the partition keeps flowing."""

from __future__ import annotations

import asyncio
import secrets

from shared import kafka
from shared.config import Settings
from shared.messages import MatchedEvent, Topic, encode, envelopes, unpack_matched

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER_TP = b"00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"


def event(seq: int) -> MatchedEvent:
    return MatchedEvent(symbol="BTCUSDT", seq=seq, ts=1, request_id=seq)


async def _flow(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    stop = asyncio.Event()
    async with kafka.producer(settings) as out:
        (envelope,) = envelopes(Topic.MATCHED_EVENTS, "BTCUSDT", [encode(event(s)) for s in (1, 2, 3)], {1: TP})
        await out.send_now(Topic.MATCHED_EVENTS, envelope, key="BTCUSDT")
        await out.send_now(Topic.MATCHED_EVENTS, b'{"kind":"matched-batch","events":', key="BTCUSDT")  # poison
        await out.send_now(Topic.MATCHED_EVENTS, encode(event(4)), key="BTCUSDT", headers=[("traceparent", OTHER_TP)])

        group = f"envelopes-{secrets.token_hex(3)}"
        async with kafka.consumer(
            settings, [Topic.MATCHED_EVENTS], group, kafka.Envelopes(unpack_matched), out
        ) as inbox:
            got: list[kafka.Record[MatchedEvent]] = []
            async with asyncio.timeout(20):
                async for batch in inbox.batches(stop):
                    got += batch.records
                    if len(got) >= 4:
                        await inbox.commit(batch)
                        break
        assert [(r.offset, r.value.seq) for r in got] == [(0, 1), (0, 2), (0, 3), (2, 4)]
        assert [dict(r.headers).get("traceparent") for r in got] == [None, TP.encode(), None, OTHER_TP]

        async with kafka.consumer(settings, [Topic.MATCHED_EVENTS.dlq], group, bytes, out) as dead:
            async with asyncio.timeout(20):
                async for batch in dead.batches(stop):
                    (poison,) = batch.records
                    break
        assert poison.value == b'{"kind":"matched-batch","events":'
        assert dict(poison.headers)["source"] == f"{Topic.MATCHED_EVENTS}/0/1".encode()


def test_an_envelope_is_read_as_its_messages_and_poison_is_dead_lettered(servers: dict[str, str]) -> None:
    settings = Settings(kafka_bootstrap=servers["KAFKA_BOOTSTRAP"], topic_suffix=f".env{secrets.token_hex(3)}")
    asyncio.run(_flow(settings))
