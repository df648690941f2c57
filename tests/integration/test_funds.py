"""Deposits and withdrawals on a real Postgres (``shared/funds.py``; migration 0011's ``withdrawal_hold``).

A reference credits once, even when deposits with it race; a withdrawal holds its amount, then is debited or
released exactly once; withdrawals racing the order processor's holds on one balance never overspend it; the
gateway's role may take a withdrawal hold and change nothing else of the money. The money invariants hold after
every step, and name a withdrawal whose release was lost.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.order_processor.holds import Holds, Located
from shared import funds, postgres
from shared.config import Settings, database_role
from shared.funds import WithdrawalStatus
from shared.invariants import money_report
from shared.order_request import parse_new_order
from tests.integration.markets_db import markets_db
from tests.invariants import check_money

USDT = 10**8


async def _user(db: asyncpg.Pool, usdt: int = 0) -> int:
    user_id: int = await db.fetchval("INSERT INTO users (name, created_at) VALUES ('funds', 0) RETURNING user_id")
    if usdt:
        async with db.acquire() as conn:
            await funds.credit(conn, user_id, "USDT", usdt * USDT, 0, f"seed:{user_id}")
    return user_id


async def _balance(db: asyncpg.Pool, user_id: int) -> tuple[int, int]:
    row = await db.fetchrow("SELECT available, held FROM balances WHERE user_id = $1 AND asset = 'USDT'", user_id)
    return (row["available"], row["held"]) if row else (0, 0)


def test_a_reference_credits_once_even_when_deposits_with_it_race(fresh_env: dict[str, str]) -> None:
    url = fresh_env["DATABASE_URL"]

    async def flow() -> None:
        async with markets_db(url) as db:
            user = await _user(db)
            conns = [await asyncpg.connect(url) for _ in range(6)]
            try:
                results = await asyncio.gather(
                    *(funds.deposit(c, user, "USDT", 5 * USDT, "chain:0xabc", 1) for c in conns)
                )
            finally:
                for c in conns:
                    await c.close()
            credited = [r for r in results if r is not None]
            assert len(credited) == 1 and credited[0].free_delta == 5 * USDT
            assert credited[0].balance["available"] == 5 * USDT
            assert await _balance(db, user) == (5 * USDT, 0)
            async with db.acquire() as conn:
                for who, asset, amount in ((user, "USDT", 6 * USDT), (user, "BTC", 5 * USDT)):
                    with pytest.raises(funds.RefReused, match=r"already credited 5\.00000000 USDT to user"):
                        await funds.deposit(conn, who, asset, amount, "chain:0xabc", 2)
                assert await funds.deposit(conn, user, "USDT", 5 * USDT, "chain:0xabd", 3) is not None
            assert await _balance(db, user) == (10 * USDT, 0)
            assert await check_money(db) == {"USDT": 10 * USDT}

    asyncio.run(flow())


def test_a_withdrawal_holds_then_is_debited_or_released_exactly_once(fresh_env: dict[str, str]) -> None:
    async def flow() -> None:
        async with markets_db(fresh_env["DATABASE_URL"]) as db:
            user = await _user(db, 1_000)
            w, change = await funds.request_withdrawal(db, user, "USDT", 300 * USDT, "0xabc", "ETH", "w-1", 10)
            assert w.status is WithdrawalStatus.PENDING and change is not None and change.free_delta == -300 * USDT
            assert dict(change.balance) == {"user_id": user, "asset": "USDT", "available": 700 * USDT,
                                            "held": 300 * USDT}  # fmt: skip
            again, repeated = await funds.request_withdrawal(db, user, "USDT", 300 * USDT, "0xabc", "ETH", "w-1", 11)
            assert (again.withdraw_id, repeated) == (w.withdraw_id, None), "a client id names one withdrawal"
            with pytest.raises(funds.InsufficientBalance, match=r"free balance is 700\.00000000"):
                await funds.request_withdrawal(db, user, "USDT", 700 * USDT + 1, "0xabc", "ETH", None, 12)
            assert await _balance(db, user) == (700 * USDT, 300 * USDT)
            await check_money(db)

            async with db.acquire() as conn:
                done, change = await funds.end_withdrawal(conn, w.withdraw_id, WithdrawalStatus.COMPLETED, 20, "0xtx")
                assert done.status is WithdrawalStatus.COMPLETED and done.tx_id == "0xtx" and done.completed_at == 20
                assert change is not None and change.free_delta == 0
                assert (await funds.end_withdrawal(conn, w.withdraw_id, WithdrawalStatus.COMPLETED, 21))[1] is None
                with pytest.raises(funds.WithdrawalEnded):
                    await funds.end_withdrawal(conn, w.withdraw_id, WithdrawalStatus.FAILED, 22)
                with pytest.raises(funds.NoSuchWithdrawal):
                    await funds.end_withdrawal(conn, "nope", WithdrawalStatus.FAILED, 22)
            assert await _balance(db, user) == (700 * USDT, 0)
            assert await check_money(db) == {"USDT": 700 * USDT}, "300 left the exchange"

            second, _ = await funds.request_withdrawal(db, user, "USDT", 200 * USDT, "0xabc", "ETH", None, 30)
            async with db.acquire() as conn:
                failed, change = await funds.end_withdrawal(conn, second.withdraw_id, WithdrawalStatus.FAILED, 31,
                                                            info="address unreachable")  # fmt: skip
            assert failed.as_binance()["status"] == 5 and failed.info == "address unreachable"
            assert change is not None and change.free_delta == 200 * USDT
            assert [e.decode() for e in funds.user_events(change, 31)] == [
                '{"e":"balanceUpdate","E":31,"a":"USDT","d":"200.00000000","T":31}',
                '{"e":"outboundAccountPosition","E":31,"u":31,"B":[{"a":"USDT","f":"700.00000000","l":"0.00000000"}]}',
            ]
            assert await _balance(db, user) == (700 * USDT, 0)
            assert await check_money(db) == {"USDT": 700 * USDT}
            query = funds.HistoryQuery(0, 100)
            assert [(h.withdraw_id, h.status) for h in await funds.history(db, user, query)] == [
                (second.withdraw_id, WithdrawalStatus.FAILED),
                (w.withdraw_id, WithdrawalStatus.COMPLETED),
            ]
            assert await funds.history(db, user + 1, query) == [], "a user sees only their own"

            await db.execute("DELETE FROM ledger WHERE kind = 'withdraw_release'")  # a release lost behind its back
            report = await money_report(db)
            lost = (f"withdrawal {second.withdraw_id} is FAILED but its ledger entries are (holds, debits, releases, "
                    "all) (1, 0, 0, 1), expected (1, 0, 1, 2)")  # fmt: skip
            assert lost in report.differences
            ours = f"balance (table against ledger) of user {user} in USDT"
            assert any(d.startswith(ours) for d in report.differences)

    asyncio.run(flow())


def test_withdrawals_racing_order_holds_on_one_balance_never_overspend_it(fresh_env: dict[str, str]) -> None:
    """The processor's batch locks the balance rows FOR UPDATE, as ``withdrawal_hold`` does: whichever comes
    second sees what the first took, so 1,000 USDT is held once at most, by orders and withdrawals together."""
    url = fresh_env["DATABASE_URL"]

    async def flow() -> None:
        async with markets_db(url) as db:
            user = await _user(db, 1_000)
            holds = Holds(db, await postgres.load_markets(db), 100)
            buy = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "50000",
                   "quantity": "0.002"}  # fmt: skip  (100 USDT each)
            batches = [
                [Located(0, 10 * b + i, parse_new_order({**buy, "newClientOrderId": f"o{b}-{i}"}, user_id=user,
                                                        order_id=100 * b + i + 1, ts=1, symbols={"BTCUSDT"}))
                 for i in range(2)]
                for b in range(4)
            ]  # fmt: skip
            conns = [await asyncpg.connect(url) for _ in range(8)]
            try:
                results = await asyncio.gather(
                    *(holds.take(batch, 1) for batch in batches),
                    *(funds.request_withdrawal(c, user, "USDT", 100 * USDT, "0xabc", "ETH", None, 2) for c in conns),
                    return_exceptions=True,
                )
            finally:
                for c in conns:
                    await c.close()
            orders_held = await db.fetchval(
                "SELECT coalesce(sum(hold_atoms), 0) FROM orders WHERE user_id = $1 AND status = 'NEW'", user
            )
            withdrawn = [r for r in results[4:] if not isinstance(r, BaseException)]
            refused = [r for r in results[4:] if isinstance(r, BaseException)]
            assert all(isinstance(r, funds.InsufficientBalance) for r in refused), refused
            available, held = await _balance(db, user)
            assert held == orders_held + len(withdrawn) * 100 * USDT <= 1_000 * USDT
            assert available == 1_000 * USDT - held >= 0
            assert orders_held + len(withdrawn) * 100 * USDT == 1_000 * USDT, "16 requests of 100 for 1,000 free"
            await check_money(db)

    asyncio.run(flow())


def test_the_gateway_role_takes_a_withdrawal_hold_and_changes_nothing_else(fresh_env: dict[str, str]) -> None:
    url = fresh_env["DATABASE_URL"]

    async def flow() -> None:
        async with markets_db(url) as db:
            user = await _user(db, 100)
        settings = Settings(database_url=url, database_role=database_role("gateway"))
        async with postgres.pool(settings, max_size=1) as gateway:
            w, change = await funds.request_withdrawal(gateway, user, "USDT", 40 * USDT, "0xabc", "ETH", "g-1", 5)
            assert change is not None and change.balance["held"] == 40 * USDT
            assert [h.withdraw_id for h in await funds.history(gateway, user, funds.HistoryQuery(0, 10))] == [
                w.withdraw_id
            ]
            for sql in (
                "UPDATE withdrawals SET status = 'FAILED'",
                "UPDATE balances SET held = 0",
                "INSERT INTO deposits (ref, user_id, asset, amount, created_at) VALUES ('x', 1, 'USDT', 1, 0)",
                "SELECT count(*) FROM audit_runs",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await gateway.execute(sql)
        async with markets_db(url) as db:
            await check_money(db)

    asyncio.run(flow())
