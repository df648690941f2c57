"""The order processor reads a batch's balances without a lock and writes its holds in one statement
(``services/order_processor/holds.py``). A withdrawal that lowers a balance between that read and that write must
not let a hold through that the balance no longer covers: the write is refused whole, and the batch is decided
again under lock, against the balance as it is. A withdrawal that leaves enough changes nothing but what is left.
Both on a real database, with the money invariants checked after."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from services.order_processor import holds as holds_module
from services.order_processor.holds import Decided, Holds, Located
from shared import errors, postgres
from shared.domain import Market
from shared.funds import request_withdrawal
from shared.messages import AcceptedOrder, RejectedOrder
from tests.integration.markets_db import markets_db
from tests.integration.test_holds_batch import USDT, _buy, _user
from tests.invariants import check_money


class WithdrawnMeanwhile(Holds):
    """Holds whose first write waits for a withdrawal of the owner's USDT on another connection (what an operator's
    console may do at any moment): it commits between the batch's unlocked read and its write."""

    def __init__(self, db: asyncpg.Pool, markets: dict[str, Market], user_id: int, atoms: int) -> None:
        super().__init__(db, markets, 10)
        self.user_id, self.atoms, self.reads, self.writes = user_id, atoms, 0, 0

    def _decide(self, batch: Sequence[Located], rows: list[asyncpg.Record]) -> Decided:
        self.reads += 1
        return super()._decide(batch, rows)

    async def _write(self, conn: asyncpg.Connection, decided: Decided, now: int) -> list[asyncpg.Record]:  # type: ignore[override]
        self.writes += 1
        if self.writes == 1:
            await request_withdrawal(self.db, self.user_id, "USDT", self.atoms, "addr", "ETH", None, 3)
        return await super()._write(conn, decided, now)


async def _take_with_withdrawal(db: asyncpg.Pool, owner: int, withdrawn: int) -> tuple[object, WithdrawnMeanwhile]:
    holds = WithdrawnMeanwhile(db, await postgres.load_markets(db), owner, withdrawn * USDT)
    (decision,), _, _ = await holds.take([Located(0, 1, _buy(owner, 300 + withdrawn, "0.01", "o1"))], 2)
    return decision, holds


async def _flow(env: dict[str, str]) -> None:
    async with markets_db(env["DATABASE_URL"]) as db:
        relocked = holds_module.RELOCKED_TOTAL._value.get()

        # 1,000 USDT; the order needs 500; 700 are withdrawn after the read: refused, nothing held
        alice = await _user(db, "alice", 1_000)
        decision, holds = await _take_with_withdrawal(db, alice, 700)
        assert isinstance(decision, RejectedOrder), decision
        assert decision.msg == errors.INSUFFICIENT_BALANCE_MSG
        assert holds.reads == 2, "read again, under lock"
        assert holds_module.RELOCKED_TOTAL._value.get() == relocked + 1
        row = await db.fetchrow("SELECT available, held FROM balances WHERE user_id = $1 AND asset = 'USDT'", alice)
        assert (row["available"], row["held"]) == (300 * USDT, 700 * USDT), dict(row)  # the withdrawal's hold

        # 1,000 USDT; 400 withdrawn after the read: 600 still cover the 500, taken on the first write
        bob = await _user(db, "bob", 1_000)
        decision, holds = await _take_with_withdrawal(db, bob, 400)
        assert isinstance(decision, AcceptedOrder), decision
        assert holds.reads == 1
        assert holds_module.RELOCKED_TOTAL._value.get() == relocked + 1
        row = await db.fetchrow("SELECT available, held FROM balances WHERE user_id = $1 AND asset = 'USDT'", bob)
        assert (row["available"], row["held"]) == (100 * USDT, 900 * USDT), dict(row)

        await check_money(db)


def test_a_balance_lowered_after_the_read_is_decided_again_under_lock(fresh_env: dict[str, str]) -> None:
    asyncio.run(_flow(fresh_env))
