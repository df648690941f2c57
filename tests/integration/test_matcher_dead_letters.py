"""A command that decodes but cannot be applied never stops the matcher's partition.

One envelope carries a resting SELL, a second SELL under the same order id (the book then holds two
entries for one id), a BUY that crosses both (the book raises half-way through it: ``KeyError``), a SELL
priced past 64 bits (it applies, but the book store cannot pack it: ``OverflowError``), and a good BUY. The
two bad commands are dead-lettered with their reason and source, the others are applied with gap-free
seqs, and the book in Redis holds no trace of either. A replay from the first offset (a new owner after a
crash) decides the same: nothing is applied or dead-lettered twice.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from services.matcher.bookstore import BookStore
from shared import kafka
from shared import redis as sredis
from shared.config import Settings
from shared.deadletter import INDEX, REASON, SOURCE
from shared.messages import Topic, decode_command
from tests.integration.test_validated_envelopes import MARKET, Side, _matched, _run_matcher, envelope, order

PRICE = 5_000_000


async def _dead_letters(settings: Settings, at_least: int) -> list[kafka.Record[bytes]]:
    found: list[kafka.Record[bytes]] = []
    async with kafka.producer(settings) as out:
        group = f"dead-{secrets.token_hex(3)}"
        async with kafka.consumer(settings, [Topic.VALIDATED_ORDERS.dlq], group, bytes, out) as dead:
            async with asyncio.timeout(20):
                async for batch in dead.batches(asyncio.Event(), timeout_ms=300, yield_empty=True):
                    found += batch.records
                    if not batch.records and len(found) >= at_least:
                        break
    return found


async def _flow(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    twin = order(1, Side.SELL, PRICE, 1)
    commands = [
        order(0, Side.SELL, PRICE, 1),
        type(twin)(**{**{f: getattr(twin, f) for f in twin.__struct_fields__}, "order_id": 1000}),  # same id as 0
        order(2, Side.BUY, PRICE, 2),  # takes both: the second removal of id 1000 raises half-way
        order(3, Side.SELL, 10**20, 1),  # rests, but cannot be stored
        order(4, Side.BUY, PRICE - 1, 1),
    ]
    async with kafka.producer(settings) as out:
        await out.send_now(Topic.VALIDATED_ORDERS, envelope(commands), key=MARKET.symbol)

    await _run_matcher(settings, f"matcher-{secrets.token_hex(3)}", len(commands))
    events = await _matched(settings, 3)
    assert [(e.seq, e.request_id) for e in events] == [(1, 1000), (2, 1000), (3, 1004)]

    dead = await _dead_letters(settings, 2)
    assert [decode_command(r.value) for r in dead] == [commands[2], commands[3]]
    headers: list[dict[str, Any]] = [dict(r.headers) for r in dead]
    assert [h[INDEX] for h in headers] == [b"2", b"3"]
    assert all(h[SOURCE] == f"{Topic.VALIDATED_ORDERS}/0/0".encode() for h in headers)
    assert headers[0][REASON].startswith(b"KeyError") and headers[1][REASON].startswith(b"OverflowError")

    async with sredis.client(settings) as cache:
        book, _ = await BookStore(cache).load(MARKET)
    state = book.state
    assert (state.seq, state.src_partition, state.src_offset) == (3, 0, 4)
    assert sorted(o.order_id for o in book.orders()) == [1000, 1004]  # neither bad command left a trace

    # a new owner after a crash: every command again, the same decisions, nothing twice
    await _run_matcher(settings, f"matcher-{secrets.token_hex(3)}", len(commands))
    assert {e.seq for e in await _matched(settings, 3)} == {1, 2, 3}
    assert len(await _dead_letters(settings, 2)) == 2


def test_unappliable_commands_are_dead_lettered_and_the_book_goes_on(fresh_env: dict[str, str]) -> None:
    settings = Settings(
        kafka_bootstrap=fresh_env["KAFKA_BOOTSTRAP"],
        redis_url=fresh_env["REDIS_URL"],
        topic_suffix=fresh_env["TOPIC_SUFFIX"],
        kafka_partitions=1,
    )
    asyncio.run(_flow(settings))
