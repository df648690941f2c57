"""A redelivered order request gets the decision stored for it, at the source position it was first decided
at: a row written before positions counted the index within a record holds a bare offset, and a position
computed now would pass the matcher's deduplication and place the order a second time."""

from __future__ import annotations

import asyncio

from services.order_processor.holds import Holds, Located
from shared import postgres
from shared.funds import credit
from shared.messages import AcceptedOrder, AcceptedStop, source_position
from shared.order_request import parse_new_order
from tests.integration.markets_db import markets_db
from tests.invariants import check_money


async def _flow(env: dict[str, str]) -> None:
    async with markets_db(env["DATABASE_URL"]) as db:
        holds = Holds(db, await postgres.load_markets(db), 200)
        user_id = await db.fetchval("INSERT INTO users (name, created_at) VALUES ('r', 0) RETURNING user_id")
        async with db.acquire() as conn:
            await credit(conn, user_id, "USDT", 1_000 * 10**8, 0, "test")
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
                  "price": "50000"}  # fmt: skip
        request = parse_new_order(params, user_id=user_id, order_id=77, ts=1, symbols={"BTCUSDT"})

        # as a processor before positions decided it
        (first,), _, fresh = await holds.take([Located(1, 41, request)], 1)
        (again,), _, redelivered = await holds.take([Located(1, source_position(41, 0), request)], 2)
        assert isinstance(first, AcceptedOrder) and isinstance(again, AcceptedOrder)
        assert (again.src_partition, again.src_offset) == (1, 41), again
        assert again == first
        assert fresh == set() and redelivered == {77}  # the processor tells the owner only the first time
        assert await db.fetchval("SELECT n FROM open_order_counts WHERE user_id = $1", user_id) == 1, "counted once"
        await check_money(db)


def test_a_redelivery_is_decided_at_its_first_position(fresh_env: dict[str, str]) -> None:
    asyncio.run(_flow(fresh_env))


async def _stop_flow(env: dict[str, str]) -> None:
    async with markets_db(env["DATABASE_URL"]) as db:
        holds = Holds(db, await postgres.load_markets(db), 200)
        user_id = await db.fetchval("INSERT INTO users (name, created_at) VALUES ('s', 0) RETURNING user_id")
        async with db.acquire() as conn:
            await credit(conn, user_id, "USDT", 1_000 * 10**8, 0, "test")
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": "50000", "stopPrice": "49000.5", "trailingDelta": "150"}  # fmt: skip
        request = parse_new_order(params, user_id=user_id, order_id=78, ts=1, symbols={"BTCUSDT"})
        (first,), _, _ = await holds.take([Located(1, 43, request)], 1)
        (again,), _, redelivered = await holds.take([Located(1, 43, request)], 2)
        assert isinstance(first, AcceptedStop) and again == first and redelivered == {78}
        assert (first.stop_ticks, first.trailing_delta, first.budget) == (4_900_050, 150, 5_000_000 * 1000)
        columns = "stop_ticks, trailing_delta, working_ts, hold_atoms"
        row = await db.fetchrow(f"SELECT {columns} FROM orders WHERE order_id = 78")
        assert tuple(row) == (4_900_050, 150, -1, 500 * 10**8)  # held as the LIMIT it becomes: 0.01 x 50000
        await check_money(db)


def test_a_conditional_order_is_held_as_what_it_becomes_and_redelivered_with_its_stop(
    fresh_env: dict[str, str],
) -> None:
    asyncio.run(_stop_flow(fresh_env))
