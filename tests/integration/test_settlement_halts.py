"""Settlement's Postgres step on a real database: holds follow the open orders' need, redelivery changes
nothing, and an event that cannot be applied stops only its symbol, durably, until an operator resolves it.

* A BUY at 50,000 that takes a sell at 49,000 and rests for the rest holds 50,000 * the rest at once.
* The same events settled again change no balance and write no ledger row.
* A batch with an ETHUSDT event for an order without a row: the BTCUSDT events of the batch settle, the
  ETHUSDT ones wait (the one after it too), the halt is in ``settlement_halts`` with its record and position,
  commits stay at its offset, and ``spot admin`` lists it. ``--retry`` with the data unchanged stops it again;
  ``--skip`` moves past that one record, and the symbol's next event settles.
* An event past its symbol's next one (events lost on the way) stops the symbol as a ``SequenceGap``;
  ``--accept-gap`` (only for a gap) gives the missing events up and settles on from it.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.matcher.book import Book
from services.order_processor.holds import Holds, Located
from services.settlement.accounts import Accounts
from services.settlement.batch import settle
from services.settlement.halts import HALTED, Halts
from shared import postgres
from shared.config import Settings
from shared.domain import ExecType, OrderStatus, OrderType, Side, TimeInForce
from shared.funds import credit
from shared.kafka import Record
from shared.messages import AcceptedOrder, CancelOrder, MatchedEvent, OrderUpdate
from shared.order_request import parse_new_order
from spot import admin
from tests.integration.markets_db import markets_db
from tests.invariants import check_money

TOPIC = "matched-events"


async def _user(db: asyncpg.Pool, name: str, **assets: int) -> int:
    user_id: int = await db.fetchval("INSERT INTO users (name, created_at) VALUES ($1, 0) RETURNING user_id", name)
    async with db.acquire() as conn:
        for asset, units in assets.items():
            await credit(conn, user_id, asset, units * 10**8, 0, "test")
    return user_id


async def _snapshot(db: asyncpg.Pool) -> tuple[dict[tuple[int, str], tuple[int, int]], int]:
    rows = await db.fetch("SELECT user_id, asset, available, held FROM balances")
    balances = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    return balances, await db.fetchval("SELECT count(*) FROM ledger")


def _unknown_order_event(symbol: str, seq: int) -> MatchedEvent:
    """A matched event that decodes but names an order with no row: it cannot be applied."""
    update = OrderUpdate(9_999_999, 2, "ghost", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 100, 1,
                         OrderStatus.CANCELED, ExecType.CANCELED, 0)  # fmt: skip
    return MatchedEvent(symbol, seq, 0, 9_999_999, [update])


async def _flow(env: dict[str, str], settings: Settings) -> None:
    async with markets_db(env["DATABASE_URL"]) as db:
        markets = await postgres.load_markets(db)
        holds = Holds(db, markets, 200)
        seller, buyer = await _user(db, "seller", BTC=1, ETH=10), await _user(db, "buyer", USDT=10_000)
        limit = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC"}
        sell = {**limit, "side": "SELL", "quantity": "0.01", "price": "49000"}
        buy = {**limit, "side": "BUY", "quantity": "0.03", "price": "50000"}
        orders = [
            Located(0, 1, parse_new_order(sell, user_id=seller, order_id=1, ts=1, symbols={"BTCUSDT"})),
            Located(0, 2, parse_new_order(buy, user_id=buyer, order_id=2, ts=1, symbols={"BTCUSDT"})),
        ]
        decisions, _, _ = await holds.take(orders, 1)
        book = Book(markets["BTCUSDT"])
        events = []
        for d in decisions:
            assert isinstance(d, AcceptedOrder)
            event = book.apply(d, 1)
            assert event is not None
            events.append(event)
        accounts = Accounts(db, markets)
        applied, _ = await accounts.apply(events, 2)
        assert [e.seq for e in applied] == [1, 2]
        usdt = await db.fetchrow("SELECT available, held FROM balances WHERE user_id = $1 AND asset = 'USDT'", buyer)
        # 0.01 bought at 49,000; 0.02 left open at 50,000: held is what it still needs, the 10 USDT improvement free
        assert (usdt["available"], usdt["held"]) == ((10_000 - 490 - 1_000) * 10**8, 1_000 * 10**8)
        await check_money(db)

        before = await _snapshot(db)
        assert await accounts.apply(events, 3) == ([], [])  # a redelivery: nothing twice
        assert await _snapshot(db) == before

        # one batch: ETHUSDT's unappliable event, ETHUSDT's next one, and BTCUSDT's cancel of the open BUY
        cancel = book.apply(CancelOrder(src_partition=0, src_offset=3, request_id=50, order_id=2, user_id=buyer,
                                        symbol="BTCUSDT", ts=4), 4)  # fmt: skip
        assert cancel is not None
        bad, next_eth = _unknown_order_event("ETHUSDT", 1), MatchedEvent("ETHUSDT", 2, 0, 77)
        records = [Record(TOPIC, 1, 10, bad), Record(TOPIC, 1, 10, next_eth, index=1), Record(TOPIC, 2, 5, cancel)]
        halts = Halts(db)
        await halts.refresh()
        applied, balances = await settle(accounts, halts, records, 5)
        assert applied == [cancel], "the other symbol settles"
        assert {(r["user_id"], r["asset"]) for r in balances} == {(buyer, "USDT")}
        assert await db.fetchval("SELECT coalesce(max(seq), 0) FROM settlement_cursor WHERE symbol = 'ETHUSDT'") == 0
        assert set(halts.open) == {"ETHUSDT"}
        assert halts.held_offsets() == {(TOPIC, 1): 10}
        assert halts.waits(records[0]) and halts.waits(records[1]) and not halts.waits(records[2])
        assert HALTED.labels("ETHUSDT", "UnknownOrder")._value.get() == 1
        await check_money(db)

        (listed,) = await admin.settlement_halted(settings)
        assert (listed["symbol"], listed["seq"]) == ("ETHUSDT", 1)
        assert listed["reason"] == "UnknownOrder: order 9999999 has no row"
        where: dict = listed["record"]  # type: ignore[assignment]
        assert (where["topic"], where["partition"], where["offset"], where["index"]) == (TOPIC, 1, 10, 0)
        assert '"order_id":9999999' in where["value"]

        # a restart knows the halt
        again = Halts(db)
        await again.refresh()
        assert set(again.open) == {"ETHUSDT"} and again.waits(records[1])

        # retry with the data unchanged: the record fails again and stops the symbol again
        await admin.settlement_resolve(settings, "ethusdt", "retry")
        (resolved,) = await halts.refresh()
        assert resolved.offset == 10 and not halts.open
        assert await settle(accounts, halts, records[:2], 6) == ([], [])
        assert set(halts.open) == {"ETHUSDT"}

        # skip: that one record is passed over, the symbol's next event settles
        await admin.settlement_resolve(settings, "ETHUSDT", "skip")
        await halts.refresh()
        assert not halts.open and halts.waits(records[0]) and not halts.waits(records[1])
        applied, _ = await settle(accounts, halts, [r for r in records[:2] if not halts.waits(r)], 7)
        assert applied == [next_eth]
        assert await admin.settlement_halted(settings) == []
        with pytest.raises(admin.NotHalted):
            await admin.settlement_resolve(settings, "ETHUSDT", "skip")
        decisions = await db.fetch("SELECT resolution FROM settlement_halts ORDER BY halt_id")
        assert [r["resolution"] for r in decisions] == ["retry", "skip"]
        await check_money(db)

        # events 3 and 4 of ETHUSDT lost on the way (a broker that lost its log): 5 is refused, not settled around
        after_gap = Record(TOPIC, 1, 11, MatchedEvent("ETHUSDT", 5, 0, 78))
        assert await settle(accounts, halts, [after_gap, records[2]], 8) == ([], [])
        assert set(halts.open) == {"ETHUSDT"} and halts.open["ETHUSDT"].kind == "SequenceGap"
        assert "events 3..4 of ETHUSDT never reached settlement" in halts.open["ETHUSDT"].reason
        with pytest.raises(admin.NotAGap):  # a gap is given up only where there is one
            await _halt_cursor_bad_order(db, accounts, halts, settings)
        await admin.settlement_resolve(settings, "ETHUSDT", "retry")  # nothing was published again: halts again
        await halts.refresh()
        assert await settle(accounts, halts, [after_gap], 9) == ([], [])
        assert halts.open["ETHUSDT"].kind == "SequenceGap"
        resolved = await admin.settlement_resolve(settings, "ETHUSDT", admin.ACCEPT_GAP)
        assert resolved["resolution"] == admin.ACCEPT_GAP
        assert await db.fetchval("SELECT seq FROM settlement_cursor WHERE symbol = 'ETHUSDT'") == 4
        await halts.refresh()
        applied, _ = await settle(accounts, halts, [after_gap], 10)
        assert applied == [after_gap.value] and not halts.open
        assert await db.fetchval("SELECT seq FROM settlement_cursor WHERE symbol = 'ETHUSDT'") == 5
        await check_money(db)


async def _halt_cursor_bad_order(db: asyncpg.Pool, accounts: Accounts, halts: Halts, settings: Settings) -> None:
    """``accept-gap`` on a halt that is not a gap (an unknown order on XRPUSDT... here BTCUSDT's next seq)."""
    seq = await db.fetchval("SELECT seq FROM settlement_cursor WHERE symbol = 'BTCUSDT'")
    bad = Record(TOPIC, 2, 6, _unknown_order_event("BTCUSDT", seq + 1))
    await settle(accounts, halts, [bad], 8)
    assert halts.open["BTCUSDT"].kind == "UnknownOrder"
    try:
        await admin.settlement_resolve(settings, "BTCUSDT", admin.ACCEPT_GAP)
    finally:  # the refused decision changed nothing: the halt stays open until skipped
        (still,) = [h for h in await admin.settlement_halted(settings) if h["symbol"] == "BTCUSDT"]
        assert still["resolution"] is None
        await admin.settlement_resolve(settings, "BTCUSDT", "skip")
        await halts.refresh()


def test_settlement_holds_the_need_and_halts_only_the_symbol_it_cannot_apply(
    fresh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in fresh_env.items():
        monkeypatch.setenv(key, value)
    asyncio.run(_flow(fresh_env, Settings()))
