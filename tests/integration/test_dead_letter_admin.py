"""``spot admin dlq`` on the real broker: a dead letter is listed, shown with its reason and source, and
replayed to its source topic with the record's own headers (not the dead-lettering's)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest

from shared import deadletter, kafka, segment_store, segments
from shared import redis as sredis
from shared.config import Settings
from shared.messages import Topic
from shared.segments import Schedule
from spot import admin, cli

TP = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


async def _source_records(settings: Settings, topic: str, at_least: int) -> list[kafka.Record[bytes]]:
    found: list[kafka.Record[bytes]] = []
    async with kafka.producer(settings) as out:
        async with kafka.consumer(settings, [topic], f"read-{secrets.token_hex(3)}", bytes, out) as inbox:
            async with asyncio.timeout(20):
                async for batch in inbox.batches(asyncio.Event()):
                    found += batch.records
                    if len(found) >= at_least:
                        break
    return found


async def _dead_letter_two(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    async with kafka.producer(settings) as out:
        dead = deadletter.DeadLetters(out, "test")
        headers = ((TP[0].decode(), TP[1]),)
        first = kafka.Record(Topic.ORDER_REQUESTS.value, 0, 41, b"", headers, 0)
        second = kafka.Record(Topic.ORDER_REQUESTS.value, 0, 42, b"", (), 3)
        await dead.send(first, b'{"kind":"new","first":1}', "BTCUSDT", ValueError("price past 64 bits"))
        await dead.send(second, b'{"kind":"new","second":2}', "ETHUSDT", "AssertionError: tif")


def test_dead_letters_are_listed_shown_and_replayed_to_their_source(
    fresh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in fresh_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KAFKA_PARTITIONS", "1")
    settings = Settings()
    asyncio.run(_dead_letter_two(settings))

    listed = {row["topic"]: row for row in asyncio.run(admin.dlq_list(settings))}
    assert listed[Topic.ORDER_REQUESTS.dlq] == {
        "topic": Topic.ORDER_REQUESTS.dlq,
        "count": 2,
        "firstOffset": 0,
        "lastOffset": 1,
    }
    assert listed[Topic.MATCHED_EVENTS.dlq]["count"] == 0 and listed[Topic.MATCHED_EVENTS.dlq]["firstOffset"] is None

    assert cli.main(["admin", "dlq", "show", Topic.ORDER_REQUESTS.dlq, "--offset", "1"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["reason"] == "AssertionError: tif" and shown["key"] == "ETHUSDT"
    assert shown["source"] == {"topic": "order-requests", "partition": 0, "offset": 42} and shown["sourceIndex"] == 3
    assert shown["value"] == '{"kind":"new","second":2}'

    assert cli.main(["admin", "dlq", "replay", Topic.ORDER_REQUESTS.dlq, "--offset", "0"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["replayed"]["reason"] == "ValueError: price past 64 bits"
    assert replayed["to"]["topic"] == "order-requests"
    (back,) = asyncio.run(_source_records(settings, Topic.ORDER_REQUESTS, 1))
    assert back.value == b'{"kind":"new","first":1}' and back.offset == replayed["to"]["offset"]
    assert list(back.headers) == [(TP[0].decode(), TP[1])]  # its own headers only

    assert cli.main(["admin", "dlq", "show", "order-requests"]) == 2  # not a dead-letter topic
    assert "not a dead-letter topic" in capsys.readouterr().err
    assert cli.main(["admin", "dlq", "replay", Topic.ORDER_REQUESTS.dlq, "--offset", "7"]) == 2


def test_replay_goes_to_the_segment_producers_write_now(
    fresh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the segment ring on, a dead letter goes back to the segment whose start has passed (slot 1 for
    segment 4), not to the plain topic, which holds another segment."""
    for key, value in fresh_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KAFKA_PARTITIONS", "1")
    monkeypatch.setenv("KAFKA_SEGMENT_S", "3")
    settings = Settings()
    asyncio.run(_dead_letter_two(settings))
    now = int(time.time() * 1000)
    schedule = Schedule().with_start(3, now - 20_000).with_start(4, now - 1_000).with_start(5, now + 600_000)

    async def publish() -> None:
        async with sredis.client(settings) as cache:
            await segment_store.write_schedule(cache, settings, schedule)

    asyncio.run(publish())
    assert cli.main(["admin", "dlq", "replay", Topic.ORDER_REQUESTS.dlq, "--offset", "1"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["to"]["topic"] == segments.slot_name(Topic.ORDER_REQUESTS.value, 1)
    plain = settings.model_copy(update={"kafka_segment_s": 0})  # one reader of that slot topic alone
    (back,) = asyncio.run(_source_records(plain, replayed["to"]["topic"], 1))
    assert back.value == b'{"kind":"new","second":2}' and back.offset == replayed["to"]["offset"]
