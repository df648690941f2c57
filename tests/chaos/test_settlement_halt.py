"""A record settlement cannot apply stops its symbol only, on a running fleet, until an operator resolves it.

A matched event that decodes but names an order without a row is written to ``matched-events`` for
ETHUSDT. Then:

* settlement reports ``spot_settlement_halted{symbol="ETHUSDT", reason="UnknownOrder"} 1`` and
  ``spot admin settlement halted`` shows the record and the reason;
* BTCUSDT keeps trading and settling; ETHUSDT keeps trading, but its trades wait behind the halted record
  (no ETHUSDT trade is settled, no balance moves for it);
* ``resolve ETHUSDT --retry`` with the data unchanged stops it again at the same record; ``--skip`` moves
  past it: the waiting ETHUSDT events settle, in order, and the metric is gone;
* the money invariants hold (every order ended: nothing is held).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared import kafka, segment_fence
from shared import redis as sredis
from shared.domain import ExecType, OrderStatus, OrderType, Side, TimeInForce
from shared.lifecycle import now_ms
from shared.messages import MatchedEvent, OrderUpdate, Topic, encode
from spot import admin
from tests.client import Client
from tests.e2e.test_order_flow import metric
from tests.invariants import check_money

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
GHOST = 9_000_000_000_001  # an order id ingestion never hands out: no row has it
LIMIT = {"type": "LIMIT", "timeInForce": "GTC"}


def spot_admin(*args: str) -> tuple[int, str]:
    """``spot admin settlement ...`` as an operator runs it (a process of its own, settings from the env)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "spot.cli", "admin", "settlement", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


async def until(what: str, check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.2)


async def _flow(base: str, settings: Any, settlement_port: int) -> None:
    maker = await admin.create_user(settings, "halt-maker", [("BTC", 10**8), ("ETH", 10 * 10**8)])
    taker = await admin.create_user(settings, "halt-taker", [("USDT", 100_000 * 10**8)])
    m, t = Client(base, maker.api_key, maker.secret), Client(base, taker.api_key, taker.secret)
    db = await asyncpg.connect(settings.database_url)

    async def trades(symbol: str) -> int:
        return int(await db.fetchval("SELECT count(*) FROM trades WHERE symbol = $1", symbol))

    async def halted() -> float:
        return await asyncio.to_thread(
            metric, settlement_port, "spot_settlement_halted", symbol="ETHUSDT", reason="UnknownOrder"
        )

    try:
        await m.order(symbol="ETHUSDT", side="SELL", quantity="0.1", price="3000", **LIMIT)
        first = await t.order(symbol="ETHUSDT", side="BUY", quantity="0.1", price="3000", **LIMIT)
        assert first["status"] == "FILLED", first  # settled: REST waits for the settled outcome
        cursor = await db.fetchval("SELECT seq FROM settlement_cursor WHERE symbol = 'ETHUSDT'")

        ghost = OrderUpdate(GHOST, taker.user_id, "ghost", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 300_000, 1_000,
                            OrderStatus.CANCELED, ExecType.CANCELED, now_ms())  # fmt: skip
        bad = MatchedEvent("ETHUSDT", cursor + 1, now_ms(), GHOST, [ghost])
        async with kafka.producer(settings) as outbox, sredis.client(settings) as cache:  # where settlement reads
            topic = Topic.MATCHED_EVENTS.value
            await segment_fence.send_into_ring(settings, outbox, cache, topic, encode(bad), "ETHUSDT")

        async def is_halted() -> bool:
            return await halted() == 1

        await until("the halt shows in the metric", is_halted)
        code, out = await asyncio.to_thread(spot_admin, "halted", "--json")
        assert code == 0, out
        (shown,) = json.loads(out)
        assert (shown["symbol"], shown["seq"]) == ("ETHUSDT", cursor + 1), shown
        assert shown["reason"] == f"UnknownOrder: order {GHOST} has no row", shown
        assert json.loads(shown["record"]["value"]) == json.loads(encode(bad)), shown
        assert shown["record"]["topic"] == Topic.MATCHED_EVENTS

        # ETHUSDT trades in the matcher, but settles nothing while halted (ACK: no wait for the settled outcome)
        ack = {"symbol": "ETHUSDT", "quantity": "0.2", "price": "3000", "newOrderRespType": "ACK", **LIMIT}
        sell = await m.order(side="SELL", **ack)
        buy = await t.order(side="BUY", **ack)
        # BTCUSDT trades and settles as usual
        await m.order(symbol="BTCUSDT", side="SELL", quantity="0.01", price="50000", **LIMIT)
        btc = await t.order(symbol="BTCUSDT", side="BUY", quantity="0.01", price="50000", **LIMIT)
        assert btc["status"] == "FILLED", btc
        assert await trades("BTCUSDT") == 1
        await asyncio.sleep(1.5)  # time enough for the ETHUSDT trade to settle, were it not halted
        assert await trades("ETHUSDT") == 1, "an ETHUSDT event settled past the halted record"
        statuses = await db.fetch("SELECT status FROM orders WHERE order_id = ANY($1::bigint[])",
                                  [sell["orderId"], buy["orderId"]])  # fmt: skip
        assert {r["status"] for r in statuses} == {"NEW"}, statuses

        # retry with the data unchanged: the same record stops it again
        code, out = await asyncio.to_thread(spot_admin, "resolve", "ETHUSDT", "--retry")
        assert code == 0 and json.loads(out)["resolution"] == "retry", out

        async def halted_again() -> bool:
            again = await db.fetchval("SELECT count(*) FROM settlement_halts WHERE symbol = 'ETHUSDT'")
            return int(again) == 2 and await is_halted()

        await until("the retried record stops ETHUSDT again", halted_again)
        assert await trades("ETHUSDT") == 1

        # skip: past that one record, the waiting ETHUSDT events settle in order
        code, out = await asyncio.to_thread(spot_admin, "resolve", "ETHUSDT", "--skip")
        assert code == 0 and json.loads(out)["resolution"] == "skip", out

        async def settled() -> bool:
            return await trades("ETHUSDT") == 2 and await halted() == 0

        await until("ETHUSDT settles again", settled)
        code, out = await asyncio.to_thread(spot_admin, "halted", "--json")
        assert (code, json.loads(out)) == (0, []), out
        code, out = await asyncio.to_thread(spot_admin, "resolve", "ETHUSDT", "--skip")
        assert code == 1 and "not halted" in out, out
        ended = await db.fetch("SELECT status FROM orders WHERE user_id = ANY($1::bigint[])",
                               [maker.user_id, taker.user_id])  # fmt: skip
        assert {r["status"] for r in ended} == {"FILLED"}, ended
        totals = await check_money(db)
        assert totals["ETH"] == 10 * 10**8 and totals["BTC"] == 10**8
    finally:
        await db.close()
        await m.close()
        await t.close()


@pytest.mark.timeout(300)
def test_an_unappliable_record_halts_only_its_symbol_until_resolved(fleet: Any) -> None:
    asyncio.run(_flow(fleet.base, fleet.settings, fleet.fleet.port("settlement")))
