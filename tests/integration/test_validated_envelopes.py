"""validated-orders as envelopes, through the real matcher pipeline (broker, Redis book store).

The matcher reads an envelope as its commands in order, each with its own trace; an old single-command
record still reads; a poison record goes to the dead-letter topic. After a crash before the input offsets
were committed, a matcher that reloads the books from Redis gets every envelope again and skips each
command by its own request position, so nothing is matched twice, even in an envelope that mixes
redelivered commands with new ones (a processor re-sending a batch after its own crash).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiokafka import TopicPartition

from services.matcher.bookstore import BookStore
from services.matcher.pipeline import Matcher
from shared import kafka
from shared import redis as sredis
from shared.config import Settings
from shared.domain import OrderType, Side, TimeInForce
from shared.messages import (
    AcceptedOrder,
    MatchedEvent,
    MatcherCommand,
    Topic,
    encode,
    envelopes,
    unpack_commands,
    unpack_matched,
)
from shared.postgres import DEFAULT_MARKETS

MARKET = DEFAULT_MARKETS[0]
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
POISON = b'{"kind":"commands-batch","commands":'


def order(offset: int, side: Side, price: int, lots: int) -> AcceptedOrder:
    return AcceptedOrder(
        src_partition=0,
        src_offset=offset,
        order_id=1000 + offset,
        user_id=1 + offset % 2,
        symbol=MARKET.symbol,
        side=side,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price_ticks=price,
        qty_lots=lots,
        budget=price * lots if side is Side.BUY else lots,
        client_order_id=f"c{offset}",
        ts=1_700_000_000_000,
    )


def envelope(commands: list[MatcherCommand], traces: dict[int, str] | None = None) -> bytes:
    (record,) = envelopes(Topic.VALIDATED_ORDERS, MARKET.symbol, [encode(c) for c in commands], traces or {})
    return record


async def _run_matcher(settings: Settings, group: str, commands: int) -> list[kafka.Record[MatcherCommand]]:
    """A matcher (books loaded from Redis) consuming as ``group`` until it has seen ``commands`` commands."""
    seen: list[kafka.Record[MatcherCommand]] = []
    stop = asyncio.Event()
    async with kafka.producer(settings) as outbox, sredis.client(settings) as cache:
        matcher = Matcher(BookStore(cache), {MARKET.symbol: MARKET}, outbox)

        async def on_assign(tps: set[TopicPartition]) -> None:
            await matcher.assigned(tps, 1)

        async with kafka.consumer(
            settings, [Topic.VALIDATED_ORDERS], group, kafka.Envelopes(unpack_commands), outbox, on_assign=on_assign
        ) as inbox:
            async with asyncio.timeout(30):
                async for batch in inbox.batches(stop):
                    seen += batch.records
                    async with matcher.lock:
                        await matcher.match(inbox, batch)
                    if len(seen) >= commands:
                        break
            async with matcher.lock:
                await matcher.settle()
    return seen


async def _matched(settings: Settings, last_seq: int) -> list[MatchedEvent]:
    """Every matched event published so far (re-publishes included), up to the one with ``last_seq``."""
    got: list[MatchedEvent] = []
    async with kafka.producer(settings) as out:
        group = f"read-{secrets.token_hex(3)}"
        async with kafka.consumer(settings, [Topic.MATCHED_EVENTS], group, kafka.Envelopes(unpack_matched), out) as c:
            async with asyncio.timeout(20):
                async for batch in c.batches(asyncio.Event(), timeout_ms=500, yield_empty=True):
                    got += [r.value for r in batch.records]
                    if not batch.records and any(e.seq == last_seq for e in got):
                        break
    return got


async def _dead(settings: Settings) -> list[Any]:
    async with kafka.producer(settings) as out:
        group = f"dead-{secrets.token_hex(3)}"
        async with kafka.consumer(settings, [Topic.VALIDATED_ORDERS.dlq], group, bytes, out) as dead:
            async with asyncio.timeout(20):
                async for batch in dead.batches(asyncio.Event()):
                    return batch.records
    return []


async def _flow(settings: Settings) -> None:
    await kafka.create_topics(settings, partitions=1)
    price = 5_000_000
    first = [order(0, Side.BUY, price, 2), order(1, Side.BUY, price - 1, 1), order(2, Side.SELL, price - 1, 2)]
    single = order(3, Side.SELL, price - 1, 1)
    async with kafka.producer(settings) as out:
        await out.send_now(Topic.VALIDATED_ORDERS, envelope(first, {2: TP}), key=MARKET.symbol)
        await out.send_now(Topic.VALIDATED_ORDERS, POISON, key=MARKET.symbol)
        await out.send_now(Topic.VALIDATED_ORDERS, encode(single), key=MARKET.symbol)  # as older processors did

    seen = await _run_matcher(settings, f"matcher-{secrets.token_hex(3)}", 4)
    assert [(r.offset, r.value) for r in seen] == [(0, first[0]), (0, first[1]), (0, first[2]), (2, single)]
    assert [dict(r.headers).get("traceparent") for r in seen] == [None, None, TP.encode(), None]
    events = await _matched(settings, 4)
    assert [(e.seq, e.request_id) for e in events] == [(i + 1, c.order_id) for i, c in enumerate([*first, single])]
    assert events[2].trades  # the SELL crossed a BUY

    # a crash before the commit of the input offsets: a new owner (new group: every record again) with the
    # books from Redis, and a processor that re-sent two commands in one envelope with a new one
    new = order(4, Side.BUY, price - 5, 1)
    async with kafka.producer(settings) as out:
        await out.send_now(Topic.VALIDATED_ORDERS, envelope([first[2], single, new]), key=MARKET.symbol)
    again = await _run_matcher(settings, f"matcher-{secrets.token_hex(3)}", 7)
    assert [r.value.src_offset for r in again] == [0, 1, 2, 3, 2, 3, 4]
    events = await _matched(settings, 5)
    by_seq: dict[int, MatchedEvent] = {}
    for e in events:
        assert by_seq.setdefault(e.seq, e) == e  # a re-publish is the same event
    assert sorted(by_seq) == [1, 2, 3, 4, 5]  # only the new command made an event
    assert by_seq[5].request_id == new.order_id

    dead = await _dead(settings)
    assert dead and all(r.value == POISON for r in dead)
    assert dict(dead[0].headers)["source"] == f"{Topic.VALIDATED_ORDERS}/0/1".encode()


def test_matcher_reads_envelopes_and_singles_and_skips_a_redelivered_envelope(fresh_env: dict[str, str]) -> None:
    settings = Settings(
        kafka_bootstrap=fresh_env["KAFKA_BOOTSTRAP"],
        redis_url=fresh_env["REDIS_URL"],
        topic_suffix=fresh_env["TOPIC_SUFFIX"],
        kafka_partitions=1,
    )
    asyncio.run(_flow(settings))
