"""The operator's console on the fleet as ``spot up`` starts it (issue 25), driven through ``spot admin`` itself (a
process of its own, as an operator runs it) and the REST and WebSocket API.

- A deposit repeated with the same reference is credited once, and its owner's stream hears ``balanceUpdate``.
- A withdrawal holds its amount (over ``POST /sapi/v1/capital/withdraw/apply``), then completes (the funds leave)
  or fails (they come back), each shown in the history and on the stream; it cannot spend what orders hold.
- A disabled user's keys are refused within a second, and accepted again within a second of enabling.
- ``spot admin audit`` passes on a fleet that traded, and fails naming a balance, then a book entry, changed behind
  its back; settlement's ``spot_audit_ok`` follows.

The money invariants are checked after each scenario.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import redis

from shared.booksnapshot import decode_order
from shared.rediskeys import orders_key
from spot import admin, keys
from tests.client import Client, Stream
from tests.e2e.conftest import RunningFleet
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

USDT = 10**8  # atoms


def _spot(*args: str) -> tuple[int, str, str]:
    """``spot <args>`` as an operator runs it, against the fleet's servers (the environment names them)."""
    done = subprocess.run([sys.executable, "-m", "spot.cli", *args], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


async def spot(*args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_spot, *args)


def _balance(account: dict[str, Any], asset: str) -> tuple[Decimal, Decimal]:
    for b in account["balances"]:
        if b["asset"] == asset:
            return Decimal(b["free"]), Decimal(b["locked"])
    return Decimal(0), Decimal(0)


async def _account(c: Client) -> dict[str, Any]:
    status, body = await c.signed("GET", "account")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def _count(stream: Stream, event: str) -> int:
    return sum(1 for e in stream.events if e.get("e") == event)


# --- deposits ------------------------------------------------------------------------------------------------
async def _deposits(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "depositor", [])
    c = Client(f.base, u.api_key, u.secret)
    stream = await c.user_stream()
    try:
        credited = []
        for _ in range(2):  # the operator's retry after a timeout, say
            code, out, err = await spot("admin", "deposit", "--user", str(u.user_id), "--deposit", "USDT=250.5",
                                        "--ref", "chain-tx-0001")  # fmt: skip
            assert code == 0, err
            credited += [d["credited"] for d in json.loads(out)["deposits"]]
        assert credited == [True, False]
        assert _balance(await _account(c), "USDT") == (Decimal("250.5"), 0)
        update = await stream.wait_for(lambda e: e.get("e") == "balanceUpdate")
        assert (update["a"], update["d"]) == ("USDT", "250.50000000")
        assert update["T"] <= update["E"]
        await stream.wait_for(
            lambda e: e.get("e") == "outboundAccountPosition" and {"a": "USDT", "f": "250.50000000", "l": "0.00000000"}
            in e["B"]
        )
        await asyncio.sleep(0.5)
        assert _count(stream, "balanceUpdate") == 1, "the repeat told nothing: nothing changed"

        code, _, err = await spot("admin", "deposit", "--user", str(u.user_id), "--deposit", "USDT=1",
                                  "--ref", "chain-tx-0001")  # fmt: skip
        assert code == 2 and "already credited 250.50000000 USDT" in err, err
        code, _, err = await spot("admin", "deposit", "--user", "999999", "--deposit", "USDT=1", "--ref", "x-2")
        assert code == 2 and "no user 999999" in err, err
        code, _, err = await spot("admin", "deposit", "--user", str(u.user_id), "--deposit", "USDT=1e30")
        assert code == 2 and "past the largest amount" in err, err
        assert _balance(await _account(c), "USDT") == (Decimal("250.5"), 0)
        await check_money_at(f.settings.database_url)
    finally:
        await stream.close()
        await c.close()


def test_a_deposit_repeated_with_its_reference_is_credited_once_and_told(shared_fleet: RunningFleet) -> None:
    asyncio.run(_deposits(shared_fleet))


# --- withdrawals ---------------------------------------------------------------------------------------------
async def _withdrawals(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "withdrawer", [("USDT", 1_000 * USDT)])
    may = await keys.create(f.settings, u.user_id, ["USER_DATA", "WITHDRAW"])  # an operator enabled withdrawals
    assert may.secret is not None
    c, trader = Client(f.base, may.api_key, may.secret), Client(f.base, u.api_key, u.secret)
    other_u = await admin.create_user(f.settings, "bystander", [])
    other = Client(f.base, other_u.api_key, other_u.secret)
    stream = await c.user_stream()
    apply = "capital/withdraw/apply"
    try:
        status, body = await trader.sapi("POST", apply, coin="USDT", amount="10", address="addr1")
        assert (status, body["code"]) == (401, -2015), "a key without WITHDRAW may not withdraw"
        for params, code in (
            ({"coin": "USDT", "amount": "1000.00000001", "address": "addr1"}, -4026),
            ({"coin": "DOGE", "amount": "1", "address": "addr1"}, -4018),
            ({"coin": "USDT", "amount": "0", "address": "addr1"}, -4022),
            ({"coin": "USDT", "amount": "1", "address": "bad address!"}, -4007),
            ({"coin": "USDT", "amount": "1e3", "address": "addr1"}, -1100),
            ({"coin": "USDT", "amount": "1"}, -1102),
        ):
            status, body = await c.sapi("POST", apply, **params)
            assert (status, body["code"]) == (400, code), (params, body)

        status, body = await c.sapi("POST", apply, coin="USDT", amount="300", address="0xabc", withdrawOrderId="w-1")
        assert status == 200, body
        first = body["id"]
        status, again = await c.sapi("POST", apply, coin="USDT", amount="300", address="0xabc", withdrawOrderId="w-1")
        assert (status, again) == (200, {"id": first}), "the same withdrawOrderId is the same withdrawal"
        assert _balance(await _account(trader), "USDT") == (700, 300)
        held = await stream.wait_for(lambda e: e.get("e") == "balanceUpdate")
        assert (held["a"], held["d"]) == ("USDT", "-300.00000000")
        status, history = await c.sapi("GET", "capital/withdraw/history")
        assert status == 200 and [(w["id"], w["status"], w["amount"], w["withdrawOrderId"]) for w in history] == [
            (first, 4, "300.00000000", "w-1")
        ]
        await check_money_at(f.settings.database_url)

        code, out, err = await spot("admin", "withdraw", "complete", first, "--tx-id", "0xfeed")
        assert code == 0 and json.loads(out)["status"] == 6, err
        assert _balance(await _account(trader), "USDT") == (700, 0)
        await stream.wait_for(
            lambda e: e.get("e") == "outboundAccountPosition" and {"a": "USDT", "f": "700.00000000", "l": "0.00000000"}
            in e["B"]
        )
        assert _count(stream, "balanceUpdate") == 1, "completing moves no free funds"
        assert (await spot("admin", "withdraw", "complete", first))[0] == 0, "the same decision again: nothing"
        code, _, err = await spot("admin", "withdraw", "fail", first)
        assert code == 2 and "COMPLETED already" in err, err
        status, history = await c.sapi("GET", "capital/withdraw/history", coin="USDT", status=6)
        assert [(w["id"], w["txId"]) for w in history] == [(first, "0xfeed")] and history[0]["completeTime"]
        await check_money_at(f.settings.database_url)  # 300 USDT left the exchange: conservation still holds

        status, body = await c.sapi("POST", apply, coin="USDT", amount="200", address="0xabc")
        assert status == 200, body
        second = body["id"]
        code, out, err = await spot("admin", "withdraw", "fail", second, "--info", "address unreachable")
        assert code == 0, err
        assert _balance(await _account(trader), "USDT") == (700, 0)
        back = await stream.wait_for(lambda e: e.get("e") == "balanceUpdate" and e["d"] == "200.00000000")
        assert back["a"] == "USDT"
        status, history = await c.sapi("GET", "capital/withdraw/history")
        assert [(w["id"], w["status"]) for w in history] == [(second, 5), (first, 6)]
        assert history[0]["info"] == "address unreachable"
        status, window = await c.sapi("GET", "capital/withdraw/history", startTime=0, endTime=10**13)
        assert (status, window["code"]) == (400, -1127)
        status, none = await other.sapi("GET", "capital/withdraw/history")
        assert (status, none) == (200, []), "a user sees only their own withdrawals"

        # what an order holds cannot be withdrawn: 500 of the 700 held by a resting buy
        order = await trader.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01",
                                   price="50000", newOrderRespType="ACK")  # fmt: skip
        held_by_order = {"a": "USDT", "f": "200.00000000", "l": "500.00000000"}
        await stream.wait_for(lambda e: e.get("e") == "outboundAccountPosition" and held_by_order in e["B"])
        status, body = await c.sapi("POST", apply, coin="USDT", amount="200.00000001", address="0xabc")
        assert (status, body["code"]) == (400, -4026)
        status, _ = await trader.signed("DELETE", "order", symbol="BTCUSDT", orderId=order["orderId"])
        assert status == 200
        await check_money_at(f.settings.database_url)
    finally:
        await stream.close()
        for client in (c, trader, other):
            await client.close()


def test_a_withdrawal_holds_then_completes_or_returns(shared_fleet: RunningFleet) -> None:
    asyncio.run(_withdrawals(shared_fleet))


async def _concurrent_withdrawals(f: RunningFleet) -> None:
    """Twenty requests of 100 against 1,000 free while orders take holds on the same balance: the row lock
    serializes them, so exactly what the balance covers is held, and nothing goes negative."""
    u = await admin.create_user(f.settings, "racer", [("USDT", 1_000 * USDT)])
    may = await keys.create(f.settings, u.user_id, ["WITHDRAW", "TRADE"])
    assert may.secret is not None
    c = Client(f.base, may.api_key, may.secret)
    try:
        withdrawals = [
            c.sapi("POST", "capital/withdraw/apply", coin="USDT", amount="100", address="0xabc") for _ in range(20)
        ]
        orders = [  # each holds 100 USDT
            c.signed("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                     quantity="0.002", price="50000", newOrderRespType="ACK")
            for _ in range(5)
        ]  # fmt: skip
        answers = await asyncio.gather(*withdrawals, *orders)
        held = sum(1 for status, _ in answers[:20] if status == 200)
        assert all(body.get("code") == -4026 for status, body in answers[:20] if status != 200), answers
        deadline = time.monotonic() + 10
        while True:  # the orders' decisions (accepted or refused for the balance) are settled by then
            conn = await asyncpg.connect(f.settings.database_url)
            try:
                decided = await conn.fetch("SELECT status, hold_atoms FROM orders WHERE user_id = $1", u.user_id)
                row = await conn.fetchrow("SELECT available, held FROM balances WHERE user_id = $1 AND asset = 'USDT'",
                                          u.user_id)  # fmt: skip
            finally:
                await conn.close()
            if len(decided) == 5 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert len(decided) == 5
        by_orders = sum(r["hold_atoms"] for r in decided if r["status"] == "NEW")
        assert row is not None and row["held"] == held * 100 * USDT + by_orders
        assert row["available"] == 1_000 * USDT - row["held"] >= 0
        assert held + by_orders // (100 * USDT) <= 10
        await check_money_at(f.settings.database_url)
    finally:
        await c.close()


def test_withdrawals_and_order_holds_on_one_balance_never_overspend_it(shared_fleet: RunningFleet) -> None:
    asyncio.run(_concurrent_withdrawals(shared_fleet))


# --- the kill switch: a user disabled ------------------------------------------------------------------------
async def _refused_within(c: Client, refused: bool) -> float:
    """Seconds until the key is refused (or accepted again)."""
    started = time.monotonic()
    while time.monotonic() - started < 5:
        status, body = await c.signed("GET", "account")
        if (status == 401 and body["code"] == -2015) == refused:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {'accepted' if refused else 'refused'} after 5 s")


async def _disable(f: RunningFleet) -> None:
    u = await admin.create_user(f.settings, "disabled", [("USDT", 1_000 * USDT)])
    c = Client(f.base, u.api_key, u.secret)
    try:
        await _account(c)  # the key is in every replica's cache now
        code, _, err = await spot("admin", "user", "disable", str(u.user_id))
        assert code == 0, err
        assert await _refused_within(c, True) < 1.0
        status, body = await c.signed("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                      quantity="0.001", price="50000")  # fmt: skip
        assert (status, body["code"]) == (401, -2015)
        code, _, err = await spot("admin", "user", "enable", str(u.user_id))
        assert code == 0, err
        assert await _refused_within(c, False) < 1.0
    finally:
        await c.close()


def test_a_disabled_users_keys_are_refused_within_a_second(shared_fleet: RunningFleet) -> None:
    asyncio.run(_disable(shared_fleet))


# --- the audit -----------------------------------------------------------------------------------------------
def _audit() -> tuple[int, dict[str, Any], str]:
    code, out, err = _spot("admin", "audit", "--wait", "10")
    assert code in (0, 1) and out, err  # 0 agrees, 1 names a difference; anything else is a fault
    return code, json.loads(out), err


def _audit_ok_metric(f: RunningFleet) -> float:
    text = httpx.get(f"http://127.0.0.1:{f.fleet.port('settlement')}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith("spot_audit_ok "))
    return float(line.split()[1])


def _metric_becomes(f: RunningFleet, value: float) -> None:
    deadline = time.monotonic() + 10  # settlement reads the newest run every 5 s
    while _audit_ok_metric(f) != value:
        assert time.monotonic() < deadline, f"spot_audit_ok is not {value}"
        time.sleep(0.2)


async def _trade(f: RunningFleet) -> tuple[int, int]:
    """A resting sell, partly filled: the book has an order with executed and remaining lots. Returns the
    sell's order id and the buyer's user id."""
    seller_u = await admin.create_user(f.settings, "seller", [("BTC", 10**8)])
    buyer_u = await admin.create_user(f.settings, "buyer", [("USDT", 100_000 * USDT)])
    seller, buyer = Client(f.base, seller_u.api_key, seller_u.secret), Client(f.base, buyer_u.api_key, buyer_u.secret)
    try:
        ask = await seller.order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5",
                                 price="60000")  # fmt: skip
        bid = await buyer.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2",
                                price="60000")  # fmt: skip
        assert bid["status"] == "FILLED", bid
        await buyer.order(symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="2000")
        return int(ask["orderId"]), buyer_u.user_id
    finally:
        await seller.close()
        await buyer.close()


async def _change_balance(f: RunningFleet, user_id: int, atoms: int) -> None:
    conn = await asyncpg.connect(f.settings.database_url)
    try:
        await conn.execute(
            "UPDATE balances SET available = available + $2 WHERE user_id = $1 AND asset = 'USDT'", user_id, atoms
        )
    finally:
        await conn.close()


def test_the_audit_passes_on_a_fleet_that_traded_and_names_what_was_changed_behind_its_back(
    shared_fleet: RunningFleet,
) -> None:
    f = shared_fleet
    order_id, buyer = asyncio.run(_trade(f))
    code, report, err = _audit()
    assert code == 0, err
    assert report["ok"] and {b["symbol"]: b["status"] for b in report["books"]} == {"BTCUSDT": "ok", "ETHUSDT": "ok"}
    print(f"\naudit of a quiet fleet: {report['finishedAt'] - report['startedAt']} ms")
    _metric_becomes(f, 1)

    asyncio.run(_change_balance(f, buyer, 1))  # one atom out of nowhere
    code, report, err = _audit()
    assert code == 1 and not report["ok"]
    assert err.startswith("spot admin audit: conservation: sum of balances of USDT"), err
    assert any(f"balance (table against ledger) of user {buyer} in USDT" in d for d in report["money"]["differences"])
    _metric_becomes(f, 0)
    asyncio.run(_change_balance(f, buyer, -1))
    assert _audit()[0] == 0

    cache = redis.Redis.from_url(f.settings.redis_url)
    try:
        key = orders_key("BTCUSDT")
        raw = cache.hget(key, str(order_id))
        assert raw is not None
        resting = decode_order(raw)
        cache.hset(key, str(order_id), msgspec.msgpack.encode(msgspec.structs.replace(resting, remaining=10**7)))
        try:
            code, report, err = _audit()
        finally:
            cache.hset(key, str(order_id), raw)
        assert code == 1, report
        assert err.startswith(f"spot admin audit: BTCUSDT: order {order_id}: book has 10000000 lots left"), err
        (btc,) = [b for b in report["books"] if b["symbol"] == "BTCUSDT"]
        assert btc["status"] == "differs"
        assert any(d.startswith("depth SELL 60000.00000000: market data shows 0.30000000") for d in btc["differences"])
    finally:
        cache.close()
    assert _audit()[0] == 0
    _metric_becomes(f, 1)
    asyncio.run(check_money_at(f.settings.database_url))
