"""Stop and start again: `spot up` on the same state folder continues where it stopped.

`spot up` runs as a subprocess, as a developer runs `make dev`. Its broker keeps its log in memory, so each
start is a new log. Ctrl-C drains the fleet stage by stage before stopping it, so nothing is left on the old
log, and the next start continues on the new one by itself (a higher epoch). A `kill -9` drains nothing: the
next start continues on a new log too, and what the lost log held is given again from Redis and Postgres (the
orders acknowledged but not decided, the accepted orders the matcher never read, the fills not settled). A
Redis that lost the fleet's state is refused in one line. A closed terminal (SIGHUP) drains as Ctrl-C does.

Either way the new orders rest, match and settle against the old ones; trade ids, depth update ids, open
orders, balances and the user stream continue; the money invariants hold.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from shared.config import Settings
from shared.rediskeys import pending_key
from spot import admin
from spot.children import die_with_parent
from spot.cli import HANGUP_LOG
from tests.client import Client
from tests.e2e.test_spot_up import GONE_WITHIN_S, SERVER_KEYS, UP_OFFSET, Up, alive, descendants
from tests.faults import free_port
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e


async def _depth(client: Client, wanted: object, within: float = 10) -> dict[str, object]:
    """The depth once market-data has applied what ``wanted`` checks (a hop behind the REST answer)."""
    deadline = time.monotonic() + within
    while True:
        depth: dict[str, object] = await client.public("depth", symbol="BTCUSDT")
        if wanted(depth) or time.monotonic() > deadline:  # type: ignore[operator]
            return depth
        await asyncio.sleep(0.05)


def _start(state: Path, kafka_port: int, redis_port: int, *flags: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in (*SERVER_KEYS, "TOPIC_SUFFIX", "PORT")}
    env["LOG_LEVEL"] = "WARNING"
    return subprocess.Popen(
        [sys.executable, "-m", "spot.cli", "up", "--state-dir", str(state), "--kafka-port", str(kafka_port),
         "--redis-port", str(redis_port), "--port-offset", str(UP_OFFSET), "--partitions", "2", *flags],
        env=env,
        cwd=state.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent(),
    )  # fmt: skip


def _spot_up(state: Path, kafka_port: int, redis_port: int, *flags: str) -> Up:
    up = Up(_start(state, kafka_port, redis_port, *flags), state)
    up.read_until("spot exchange is up")
    return up


def _stop(up: Up, sig: int) -> None:
    children = descendants(up.proc.pid)
    up.proc.send_signal(sig)
    up.proc.wait(60)
    deadline = time.monotonic() + GONE_WITHIN_S
    while left := {pid: cmd for pid, cmd in children.items() if alive(pid)}:
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.2)


def _settings(state: Path) -> Settings:
    env = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines())
    return Settings(
        database_url=env["DATABASE_URL"],
        redis_url=env["REDIS_URL"],
        kafka_bootstrap=env["KAFKA_BOOTSTRAP"],
        envelope_key_file=env["ENVELOPE_KEY_FILE"],  # the fleet's: users are created with the key it opens
    )


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_port(), free_port()


async def _first_session(base: str, settings: Settings) -> dict[str, object]:
    seller_u = await admin.create_user(settings, "seller", [("BTC", 10**8)])
    buyer_u = await admin.create_user(settings, "buyer", [("USDT", 100_000 * 10**8)])
    seller, buyer = Client(base, seller_u.api_key, seller_u.secret), Client(base, buyer_u.api_key, buyer_u.secret)
    try:
        ask = await seller.order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5",
                                 price="50000")  # fmt: skip
        bid = await buyer.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1",
                                price="50000")  # fmt: skip
        assert bid["status"] == "FILLED" and bid["fills"][0]["tradeId"] == 1, bid
        depth = await _depth(seller, lambda d: d["asks"] == [["50000.00000000", "0.40000000"]])
        assert depth["asks"] == [["50000.00000000", "0.40000000"]], depth
        return {"seller": (seller_u.api_key, seller_u.secret), "buyer": (buyer_u.api_key, buyer_u.secret),
                "ask": ask["orderId"], "lastUpdateId": depth["lastUpdateId"]}  # fmt: skip
    finally:
        await seller.close()
        await buyer.close()


async def _second_session(base: str, before: dict[str, object], round_: int) -> None:
    seller = Client(base, *before["seller"])  # type: ignore[misc]
    buyer = Client(base, *before["buyer"])  # type: ignore[misc]
    stream = await buyer.user_stream()
    try:
        # the sell resting from before the restart is still on the book, with what is left of it
        status, open_orders = await seller.signed("GET", "openOrders", symbol="BTCUSDT")
        assert status == 200 and [o["orderId"] for o in open_orders] == [before["ask"]], open_orders
        depth = await seller.public("depth", symbol="BTCUSDT")
        assert depth["lastUpdateId"] >= before["lastUpdateId"], (depth, before)
        # a new order after the restart trades against it: the trade ids continue
        bid = await buyer.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1",
                                price="50000")  # fmt: skip
        assert bid["status"] == "FILLED", bid
        assert bid["fills"][0]["tradeId"] == round_ + 1, bid
        await stream.wait_for(
            lambda e: e.get("e") == "executionReport" and e["i"] == bid["orderId"] and e["X"] == "FILLED"
        )
        # a new order rests, and is cancelled: its hold comes back
        rest = await buyer.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1",
                                 price="49000")  # fmt: skip
        await stream.wait_for(
            lambda e: e.get("e") == "executionReport" and e["i"] == rest["orderId"] and e["X"] == "NEW"
        )
        after = await _depth(seller, lambda d: d["bids"] == [["49000.00000000", "0.10000000"]])
        assert after["lastUpdateId"] > depth["lastUpdateId"], "depth update ids continue"
        assert after["bids"] == [["49000.00000000", "0.10000000"]], after
        status, canceled = await buyer.signed("DELETE", "order", symbol="BTCUSDT", orderId=rest["orderId"])
        assert status == 200 and canceled["status"] == "CANCELED", canceled
        status, account = await buyer.signed("GET", "account")
        usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
        assert Decimal(usdt["locked"]) == 0, usdt
        before["lastUpdateId"] = after["lastUpdateId"]
    finally:
        await stream.close()
        await seller.close()
        await buyer.close()


def _log_epoch(lines: list[str]) -> int:
    """The log epoch `spot up` started on ("fleet <id>, log epoch N"). A new log begins past the highest segment
    the last one used (``shared.identity.reseed_positions``), so how far past depends on how many segments
    the session before took: the tests ask only that it goes up."""
    (epoch,) = [int(m[1]) for line in lines if (m := re.search(r"\blog epoch (\d+)", line))]
    return epoch


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
def test_ctrl_c_drains_and_the_next_start_continues_on_a_new_log(
    tmp_path: Path, ports: tuple[int, int], sig: signal.Signals
) -> None:
    state = tmp_path / ".spot"
    base = f"http://127.0.0.1:{8000 + UP_OFFSET}"
    up = _spot_up(state, *ports)
    try:
        before = asyncio.run(_first_session(base, _settings(state)))
        epoch = _log_epoch(up.lines)
        for round_ in (1, 2):  # twice: the second restart continues from the first's state too
            _stop(up, sig)
            assert (state / "drained").exists(), "a drained stop leaves its marker"
            if sig == signal.SIGHUP:  # what it said after its terminal closed is kept
                assert "every topic drained" in (state / HANGUP_LOG).read_text()
            up = _spot_up(state, *ports)
            epoch, earlier = _log_epoch(up.lines), epoch
            assert epoch > earlier, up.lines  # a new log, past every segment the last one used
            assert not (state / "drained").exists(), "the marker is good for one start"
            asyncio.run(_second_session(base, before, round_))
            time.sleep(1)  # settlement catches up with the cancel
            asyncio.run(check_money_at(_settings(state).database_url))
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()


def test_after_kill_9_the_next_start_continues_and_every_acknowledged_order_reaches_the_book(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    """``kill -9`` of ``spot up`` while orders are being placed: its broker, on memory, loses the log with what it
    held. The next start continues on a new log by itself (the log epoch goes up), and every order acknowledged
    before the kill reaches the book: those the processor had not decided are sent again from their pending
    entries (``shared.pending``), those it had by the reconciler. Then a second session trades as usual."""
    state = tmp_path / ".spot"
    base = f"http://127.0.0.1:{8000 + UP_OFFSET}"
    up = _spot_up(state, *ports)
    try:
        before = asyncio.run(_first_session(base, _settings(state)))
        epoch = _log_epoch(up.lines)
        acked = asyncio.run(_orders_then_kill(base, before, up))
        up = _spot_up(state, *ports)
        assert any("did not drain" in line for line in up.lines), up.lines
        assert _log_epoch(up.lines) > epoch, up.lines
        asyncio.run(_acked_orders_rest_then_cancel(base, before, acked))
        asyncio.run(_second_session(base, before, 1))
        time.sleep(1)  # settlement catches up with the cancels
        asyncio.run(check_money_at(_settings(state).database_url))
        with redis.Redis.from_url(_settings(state).redis_url) as cache:  # every order decided: none left pending
            assert cache.hlen(pending_key("BTCUSDT")) == 0
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()


def test_a_start_on_a_redis_that_lost_its_state_refuses_in_one_line(tmp_path: Path, ports: tuple[int, int]) -> None:
    """What the fleet cannot continue from is refused, not papered over: after a ``kill -9``, a Redis that lost
    the fleet's identity (and with it the books and the pending orders) stops ``spot up`` in one line."""
    state = tmp_path / ".spot"
    up = _spot_up(state, *ports)
    try:
        asyncio.run(admin.create_user(_settings(state), "someone", [("USDT", 10**8)]))
        _stop(up, signal.SIGKILL)
        shutil.rmtree(state / "appendonlydir")  # Redis's append-only file: the books, the pending orders, the stamp
        refused = _start(state, *ports)
        out, err = refused.communicate(timeout=180)
        assert refused.returncode == 1, (out, err)
        lines = [line for line in err.splitlines() if line.startswith("spot up:")]
        assert len(lines) == 1 and "redis" in lines[0] and "make clean" in lines[0], err
        assert "Traceback" not in err, err
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()


def test_fresh_starts_from_nothing(tmp_path: Path, ports: tuple[int, int]) -> None:
    state = tmp_path / ".spot"
    base = f"http://127.0.0.1:{8000 + UP_OFFSET}"
    up = _spot_up(state, *ports)
    try:
        user = asyncio.run(admin.create_user(_settings(state), "gone", [("USDT", 10**8)]))
        _stop(up, signal.SIGINT)
        up = _spot_up(state, *ports, "--fresh")
        assert any("starting from nothing" in line for line in up.lines) and any(
            "log epoch 0" in line for line in up.lines
        ), up.lines

        async def account() -> tuple[int, object]:
            client = Client(base, user.api_key, user.secret)
            try:
                return await client.signed("GET", "account")
            finally:
                await client.close()

        status, body = asyncio.run(account())
        assert status == 401 and body["code"] == -2015, (status, body)  # type: ignore[index]
        assert not (state / "drained").exists()
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()


async def _orders_then_kill(base: str, before: dict[str, object], up: Up) -> list[int]:
    """The buyer places resting bids one after another; after the fifth is acknowledged the fleet is killed while
    the rest are still being sent. The ids of the bids acknowledged (ACK: taken by the broker)."""
    buyer = Client(base, *before["buyer"])  # type: ignore[misc]
    acked: list[int] = []
    kill: asyncio.Task[None] | None = None
    try:
        for i in range(200):
            try:
                status, body = await buyer.signed("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                                  timeInForce="GTC", quantity="0.001", price=str(40000 + i),
                                                  newOrderRespType="ACK")  # fmt: skip
            except httpx.HTTPError:
                break  # the gateway is gone
            if status != 200:
                break
            acked.append(body["orderId"])
            if len(acked) == 5:
                kill = asyncio.create_task(asyncio.to_thread(_stop, up, signal.SIGKILL))
            if kill is not None and kill.done():
                break
        assert kill is not None, "the fleet was killed while orders were being placed"
        await kill
        return acked
    finally:
        await buyer.close()


async def _acked_orders_rest_then_cancel(base: str, before: dict[str, object], acked: list[int]) -> None:
    """Every bid acknowledged before the kill reaches the book after the restart (none is dropped), and each
    one still open is cancelled, its hold released."""
    buyer = Client(base, *before["buyer"])  # type: ignore[misc]
    try:
        deadline = time.monotonic() + 30
        while True:
            status, open_orders = await buyer.signed("GET", "openOrders", symbol="BTCUSDT")
            resting = {o["orderId"] for o in open_orders}
            if set(acked) <= resting or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert set(acked) <= resting, f"acknowledged but not on the book: {sorted(set(acked) - resting)}"
        for order_id in sorted(resting):
            status, canceled = await buyer.signed("DELETE", "order", symbol="BTCUSDT", orderId=order_id)
            assert status == 200 and canceled["status"] == "CANCELED", canceled
        deadline = time.monotonic() + 10
        while True:
            status, account = await buyer.signed("GET", "account")
            usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
            if Decimal(usdt["locked"]) == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert Decimal(usdt["locked"]) == 0, usdt
    finally:
        await buyer.close()


def test_a_durable_broker_continues_after_kill_9_without_reseeding(tmp_path: Path, ports: tuple[int, int]) -> None:
    """``spot up --durable-broker``: the broker's log outlives a ``kill -9`` of the whole fleet while orders are
    being placed, so the next start continues on the same log (no refusal, no new epoch) and every order it
    acknowledged reaches the book; then a Ctrl-C, and the same again; then a start on memory, which leaves it."""
    state = tmp_path / ".spot"
    base = f"http://127.0.0.1:{8000 + UP_OFFSET}"
    durable = ("--durable-broker", "--broker-store-port", str(free_port()))
    up = _spot_up(state, *ports, *durable)
    try:
        up.read_until("broker log")
        assert "on disk" in up.lines[-1], up.lines
        before = asyncio.run(_first_session(base, _settings(state)))
        acked = asyncio.run(_orders_then_kill(base, before, up))
        up = _spot_up(state, *ports, *durable)
        assert any("log epoch 0" in line for line in up.lines), up.lines  # the same log, not a new one
        asyncio.run(_acked_orders_rest_then_cancel(base, before, acked))
        asyncio.run(_second_session(base, before, 1))
        time.sleep(1)  # settlement catches up with the cancel
        asyncio.run(check_money_at(_settings(state).database_url))
        _stop(up, signal.SIGINT)
        up = _spot_up(state, *ports, *durable)
        assert any("log epoch 0" in line for line in up.lines), up.lines
        asyncio.run(_second_session(base, before, 2))
        time.sleep(1)
        asyncio.run(check_money_at(_settings(state).database_url))
        assert any(p.is_file() for p in (state / "broker").rglob("*.batch")), "the log is in the state folder"
        # back to the in-memory broker: a drained stop continues on a new log, and the durable one is dropped
        _stop(up, signal.SIGINT)
        up = _spot_up(state, *ports)
        assert any("continuing on a new log" in line for line in up.lines), up.lines
        assert not any("log epoch 0" in line for line in up.lines), up.lines
        assert not (state / "broker").exists(), "a log the fleet can no longer continue on is removed"
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()
