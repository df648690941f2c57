"""One batch of the order processor's Postgres step on a real database: the requests of a batch are decided
in order against what the earlier ones took, and the rows it writes (orders, hold ledger entries, balances,
open-order counts) agree with the decisions. The step is one read and one write statement per batch, so
the ledger entries and the balance changes come from the same order rows; this checks they do."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from services.order_processor.holds import Holds, Located
from shared import errors, postgres
from shared.funds import credit
from shared.messages import AcceptedOrder, NewOrderRequest, RejectedOrder
from shared.order_request import parse_new_order
from tests.integration.markets_db import markets_db
from tests.invariants import check_money

USDT = 10**8  # atoms per USDT
BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "50000"}


async def _user(db: asyncpg.Pool, name: str, usdt: int) -> int:
    user_id: int = await db.fetchval("INSERT INTO users (name, created_at) VALUES ($1, 0) RETURNING user_id", name)
    if usdt:
        async with db.acquire() as conn:
            await credit(conn, user_id, "USDT", usdt * USDT, 0, "test")
    return user_id


def _buy(user_id: int, order_id: int, quantity: str, client_order_id: str, symbol: str = "BTCUSDT") -> NewOrderRequest:
    params = {**BUY, "quantity": quantity, "newClientOrderId": client_order_id}
    request = parse_new_order(params, user_id=user_id, order_id=order_id, ts=1, symbols={"BTCUSDT"})
    return msgspec.structs.replace(request, symbol=symbol)  # a symbol ingestion would refuse


async def _flow(env: dict[str, str]) -> None:
    async with markets_db(env["DATABASE_URL"]) as db:
        holds = Holds(db, await postgres.load_markets(db), 3)  # at most 3 open orders per user
        alice, bob, carol = await _user(db, "alice", 1_200), await _user(db, "bob", 10_000), await _user(db, "c", 0)

        (earlier,), _, _ = await holds.take([Located(0, 1, _buy(bob, 100, "0.01", "bob-earlier"))], 1)
        assert isinstance(earlier, AcceptedOrder)

        batch = [
            _buy(alice, 201, "0.01", "a1"),  # holds 500 of alice's 1,200
            _buy(alice, 201, "0.01", "a1"),  # a second copy of it (a producer's retry): decided once
            _buy(alice, 202, "0.01", "a2"),  # 500 more: 200 left
            _buy(alice, 203, "0.01", "a3"),  # 500 more than she has left: refused, nothing held
            _buy(alice, 204, "0.004", "a1"),  # a client order id this batch already took
            _buy(bob, 205, "0.01", "bob-earlier"),  # one an earlier batch took
            _buy(bob, 206, "0.01", "b2"),  # bob's second open order
            _buy(bob, 207, "0.01", "b3"),  # his third: the cap
            _buy(bob, 208, "0.01", "b4"),  # over the cap
            _buy(carol, 209, "0.01", "c1"),  # no balance row at all
            _buy(bob, 210, "0.01", "b5", symbol="NOPEUSDT"),  # no such market
            _buy(bob, 100, "0.01", "bob-earlier"),  # a redelivery of the earlier batch's order
            _buy(alice, 211, "0.004", "a5"),  # 200 held: exactly what alice has left
        ]
        decisions, balances, redelivered = await holds.take([Located(1, i, r) for i, r in enumerate(batch)], 2)

        outcome = {d.order_id: (type(d).__name__, getattr(d, "msg", "")) for d in decisions}
        accepted, rejected = AcceptedOrder.__name__, RejectedOrder.__name__
        assert [d.order_id for d in decisions] == [r.order_id for r in batch], "decisions in request order"
        assert outcome == {
            201: (accepted, ""),
            202: (accepted, ""),
            203: (rejected, errors.INSUFFICIENT_BALANCE_MSG),
            204: (rejected, errors.DUPLICATE_ORDER_MSG),
            205: (rejected, errors.DUPLICATE_ORDER_MSG),
            206: (accepted, ""),
            207: (accepted, ""),
            208: (rejected, "Filter failure: MAX_NUM_ORDERS"),
            209: (rejected, errors.INSUFFICIENT_BALANCE_MSG),
            210: (rejected, "Invalid symbol."),
            100: (accepted, ""),
            211: (accepted, ""),
        }, outcome
        assert decisions[1] is decisions[0], "a copy gets the first's decision, at the first's position"
        assert decisions[11] == earlier, "a redelivery gets its stored decision"
        assert redelivered == {100}

        # the balances the new holds changed, as committed
        assert {(r["user_id"], r["asset"]): (r["available"], r["held"]) for r in balances} == {
            (alice, "USDT"): (0, 1_200 * USDT),
            (bob, "USDT"): (8_500 * USDT, 1_500 * USDT),
        }
        held = sorted(
            (r["ref"], r["amount"]) for r in await db.fetch("SELECT ref, amount FROM ledger WHERE kind = 'hold'")
        )
        assert held == sorted(
            [(f"order:{i}", 500 * USDT) for i in (100, 201, 202, 206, 207)] + [("order:211", 200 * USDT)]
        )
        rows = {r["order_id"]: (r["status"], r["hold_left"]) for r in await db.fetch("SELECT * FROM orders")}
        # 204 and 205 reuse a taken client order id: refused without a row, as the id is unique per user (the
        # whole batch used to fail on that index, and its partition with it)
        assert rows == {i: ("NEW", 500 * USDT) for i in (100, 201, 202, 206, 207)} | {211: ("NEW", 200 * USDT)} | {
            i: ("REJECTED", 0) for i in (203, 208, 209, 210)
        }, rows
        counts = dict(await db.fetch("SELECT user_id, n FROM open_order_counts"))
        assert counts == {alice: 3, bob: 3}, counts
        await check_money(db)


def test_a_batch_is_decided_in_order_and_written_as_decided(fresh_env: dict[str, str]) -> None:
    asyncio.run(_flow(fresh_env))
