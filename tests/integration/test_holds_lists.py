"""Order lists in the order processor's Postgres step on a real database: a list's legs are decided as one (all
accepted with their holds, or all refused), an OCO pair holds its larger need once on one leg's row
(``hold_shared``), an OTO's legs each their own, every leg counts towards MAX_NUM_ORDERS, ``order_lists`` gets the
accepted list, and a redelivered list gets its stored decisions."""

from __future__ import annotations

import asyncio

import asyncpg

from services.order_processor.holds import Holds, Located
from shared import errors, postgres
from shared.funds import credit
from shared.messages import AcceptedOrder, NewListRequest, RejectedOrder
from shared.order_request import parse_order_list
from tests.integration.markets_db import markets_db
from tests.invariants import check_money

USDT, BTC = 10**8, 10**8


async def _user(db: asyncpg.Pool, name: str) -> int:
    user_id: int = await db.fetchval("INSERT INTO users (name, created_at) VALUES ($1, 0) RETURNING user_id", name)
    async with db.acquire() as conn:
        await credit(conn, user_id, "USDT", 10_000 * USDT, 0, "test")
        await credit(conn, user_id, "BTC", BTC // 10, 0, "test")
    return user_id


def _oco(user_id: int, list_id: int, side: str, quantity: str, client: str) -> NewListRequest:
    above, below = ("LIMIT_MAKER", "STOP_LOSS_LIMIT") if side == "SELL" else ("STOP_LOSS_LIMIT", "LIMIT_MAKER")
    params = {"symbol": "BTCUSDT", "side": side, "quantity": quantity, "listClientOrderId": client,
              "aboveType": above, "belowType": below, "abovePrice": "55000", "belowPrice": "45000"}  # fmt: skip
    stop = "above" if side == "BUY" else "below"
    params |= {f"{stop}StopPrice": params[f"{stop}Price"], f"{stop}TimeInForce": "GTC"}
    ids = [list_id + 1, list_id + 2]
    return parse_order_list(params, "oco", user_id=user_id, list_id=list_id, order_ids=ids, ts=1, symbols={"BTCUSDT"})


def _legs(position: int, lst: NewListRequest) -> list[Located]:
    return [Located(1, position, leg, lst) for leg in lst.legs]


async def _flow(env: dict[str, str]) -> None:
    async with markets_db(env["DATABASE_URL"]) as db:
        holds = Holds(db, await postgres.load_markets(db), 4)  # at most 4 open orders per user
        alice, bob = await _user(db, "alice"), await _user(db, "bob")
        sell = _oco(alice, 100, "SELL", "0.1", "s1")  # both legs need 0.1 BTC: held once
        buy = _oco(alice, 200, "BUY", "0.1", "b1")  # 5,500 (the stop leg at 55,000) and 4,500 USDT: 5,500 once
        too_much = _oco(bob, 300, "SELL", "0.2", "s2")  # 0.2 BTC of bob's 0.1: refused whole
        over_cap = _oco(alice, 400, "SELL", "0.01", "s3")  # alice's 5th and 6th open orders: refused whole
        batch = [*_legs(1, sell), *_legs(2, buy), *_legs(3, too_much), *_legs(4, over_cap)]
        decisions, _, _ = await holds.take(batch, 2)
        kinds = [(d.order_id, "accepted" if isinstance(d, AcceptedOrder) else d.msg) for d in decisions]
        accepted = "accepted"
        assert kinds == [(101, accepted), (102, accepted), (201, accepted), (202, accepted)] + [
            (i, errors.INSUFFICIENT_BALANCE_MSG) for i in (301, 302)
        ] + [(i, "Filter failure: MAX_NUM_ORDERS") for i in (401, 402)], kinds
        assert all(isinstance(d, RejectedOrder) for d in decisions[4:])
        low, high = decisions[2], decisions[3]  # each leg's budget is its own need: 4,500 and 5,500 USDT
        assert isinstance(low, AcceptedOrder) and isinstance(high, AcceptedOrder)
        assert low.budget * 55 == high.budget * 45
        rows = {
            r["order_id"]: (r["status"], r["hold_left"], r["hold_shared"], r["order_list_id"])
            for r in await db.fetch("SELECT * FROM orders")
        }
        assert rows == {
            101: ("NEW", BTC // 10, True, 100),
            102: ("NEW", 0, True, 100),
            201: ("NEW", 0, True, 200),  # the LIMIT_MAKER below needs 4,500: the stop leg holds the pair's 5,500
            202: ("NEW", 5_500 * USDT, True, 200),
        } | {i: ("REJECTED", 0, False, lid) for lid in (300, 400) for i in (lid + 1, lid + 2)}, rows
        balances = {(r["user_id"], r["asset"]): r["held"] for r in await db.fetch("SELECT * FROM balances")}
        assert balances[(alice, "BTC")] == BTC // 10 and balances[(alice, "USDT")] == 5_500 * USDT
        listed = [tuple(r) for r in await db.fetch("SELECT order_list_id, list_order_status FROM order_lists")]
        assert sorted(listed) == [(100, "EXECUTING"), (200, "EXECUTING")]
        again, _, redelivered = await holds.take(_legs(1, sell), 3)
        assert redelivered == {101, 102} and [(d.order_id, d.budget) for d in again] == [
            (d.order_id, d.budget) for d in decisions[:2]
        ]
        await check_money(db)


def test_a_lists_legs_are_decided_and_held_as_one(fresh_env: dict[str, str]) -> None:
    asyncio.run(_flow(fresh_env))
