"""One identity per fleet: a broker that lost its log, or a Redis of another fleet, is refused in one line;
after the reseed, what the lost log carried and settlement had not applied is given again.

The broker here is a Tansu of the test's own, restarted on memory storage: a real reset, its topics and
offsets gone, as after a `make dev` restart on the old broker or a new MSK cluster under old state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis
import redis.asyncio as aioredis

from shared import identity
from shared.booksnapshot import decode_state
from shared.config import Settings
from shared.rediskeys import settled_key, state_key
from spot import admin, infra
from spot.fleet import Fleet
from tests.client import Client
from tests.e2e.conftest import PORT_OFFSET
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

REFUSAL_WAIT_S = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A Tansu on memory storage that the test can reset (stop and start again: everything is gone)."""

    def __init__(self, state: Path) -> None:
        self.port = _free_port()
        self.state = state
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://{self.bootstrap}"
        log = open(self.state / "tansu.log", "ab")  # the broker keeps it for its lifetime
        self.proc = subprocess.Popen(
            [
                infra.tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not infra.port_open(self.port):
            assert time.monotonic() < deadline, "tansu did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def reset(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@contextlib.contextmanager
def _fleet_on(fresh_env: dict[str, str], broker: Broker) -> Iterator[tuple[Fleet, dict[str, str]]]:
    """A fleet (not started) on this test's broker, with its environment in place until the test ends."""
    env = {**fresh_env, "KAFKA_BOOTSTRAP": broker.bootstrap}
    old = dict(os.environ)
    os.environ.update(env)
    fleet = Fleet(env, port_offset=PORT_OFFSET, log=sys.stderr if os.environ.get("SPOT_TEST_LOGS") else None)
    try:
        yield fleet, env
    finally:
        fleet.stop()
        os.environ.clear()
        os.environ.update(old)


def _readyz(fleet: Fleet, name: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{fleet.port(name)}/readyz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait_refusing(fleet: Fleet, name: str) -> str:
    deadline = time.monotonic() + REFUSAL_WAIT_S
    while time.monotonic() < deadline:
        try:
            status, body = _readyz(fleet, name)
        except OSError:
            status, body = 0, {}
        if status == 503 and str(body.get("detail", "")).startswith("refusing to serve"):
            return str(body["detail"])
        time.sleep(0.2)
    raise AssertionError(f"{name} did not refuse within {REFUSAL_WAIT_S}s")


async def _trade(base: str, settings: Settings, seller_key: tuple[str, str], buyer_key: tuple[str, str]) -> int:
    """The buyer takes 0.1 BTC from whatever rests at 50000: returns the trade id."""
    buyer = Client(base, *buyer_key)
    try:
        bid = await buyer.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.1", price="50000"
        )
        assert bid["status"] == "FILLED", bid
        return int(bid["fills"][0]["tradeId"])
    finally:
        await buyer.close()


def _trade_ids(database_url: str) -> list[int]:
    async def read() -> list[int]:
        conn = await asyncpg.connect(database_url)
        try:
            return [r["trade_id"] for r in await conn.fetch("SELECT trade_id FROM trades ORDER BY trade_id")]
        finally:
            await conn.close()

    return asyncio.run(read())


def _started_with_two_users(fleet: Fleet, settings: Settings) -> tuple[tuple[str, str], tuple[str, str]]:
    """A new fleet started: a seller with 1 BTC and a buyer with 100,000 USDT, their (key, secret)."""
    asyncio.run(admin.init(settings))
    fleet.start_all()
    fleet.wait_ready(timeout=90)
    seller = asyncio.run(admin.create_user(settings, "seller", [("BTC", 10**8)]))
    buyer = asyncio.run(admin.create_user(settings, "buyer", [("USDT", 100_000 * 10**8)]))
    return (seller.api_key, seller.secret), (buyer.api_key, buyer.secret)


def test_a_reset_broker_is_refused_until_reseeded_then_trading_continues(
    fresh_env: dict[str, str], broker: Broker
) -> None:
    with _fleet_on(fresh_env, broker) as (fleet, env):
        base = f"http://127.0.0.1:{fleet.port('gateway')}"
        settings = Settings()
        seller, buyer = _started_with_two_users(fleet, settings)

        async def rest_sell() -> None:
            c = Client(base, *seller)
            try:
                ask = await c.order(
                    symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5", price="50000"
                )
                assert ask["status"] == "NEW", ask
            finally:
                await c.close()

        asyncio.run(rest_sell())
        assert asyncio.run(_trade(base, settings, seller, buyer)) == 1

        # the broker loses its log under the running fleet's state
        fleet.stop()
        broker.reset()
        asyncio.run(admin.init(Settings()))  # what `spot up` runs first: topics again, the identity is not re-stamped
        with pytest.raises(identity.ForeignState, match="reseed-positions"):
            asyncio.run(identity.verify(Settings()))
        fleet.start_all()
        detail = _wait_refusing(fleet, "order-processor")
        assert "has no fleet identity" in detail and "spot admin reseed-positions" in detail and "make clean" in detail
        for name in ("matcher", "settlement", "market-data", "trade-archiver"):
            assert "reseed-positions" in _wait_refusing(fleet, name)
        assert all(p.poll() is None for p in fleet.procs.values()), "a refusing service must not exit"

        result = asyncio.run(admin.reseed_positions(Settings()))
        assert (result["epochBefore"], result["epoch"]) == (0, 1)
        fleet.wait_ready(timeout=60)

        # the new log's first positions are not taken for redeliveries: the resting sell (from the old log) is
        # still on the book and trades, and a new pair rests and matches
        assert asyncio.run(_trade(base, settings, seller, buyer)) == 2
        asyncio.run(rest_sell())
        assert asyncio.run(_trade(base, settings, seller, buyer)) == 3
        deadline = time.monotonic() + 10
        while _trade_ids(env["DATABASE_URL"]) != [1, 2, 3] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _trade_ids(env["DATABASE_URL"]) == [1, 2, 3], "every trade settled once, none replayed"
        time.sleep(0.5)
        asyncio.run(check_money_at(env["DATABASE_URL"]))


def test_a_redis_of_another_fleet_is_refused(fresh_env: dict[str, str], broker: Broker) -> None:
    with _fleet_on(fresh_env, broker) as (fleet, env):
        settings = Settings()
        asyncio.run(admin.init(settings))
        redis.Redis.from_url(env["REDIS_URL"]).set(identity.REDIS_KEY, "0123456789abcdef")
        fleet.start("matcher")
        detail = _wait_refusing(fleet, "matcher")
        assert "redis holds fleet 0123456789abcdef" in detail, detail
        assert fleet.procs["matcher"].poll() is None
        # one line in the log, not one per retry and no traceback
        time.sleep(identity.REFUSED_RETRY_S * 2)
        fleet.stop()
        lines = [line for line in fleet.tails["matcher"] if "refusing to serve" in line]
        assert len(lines) == 1, lines
        assert not any("Traceback" in line for line in fleet.tails["matcher"])


def test_a_redis_book_behind_what_settlement_committed_is_refused(fresh_env: dict[str, str], broker: Broker) -> None:
    """As after a failover that lost writes: the book's seq is below the events settlement already applied."""
    with _fleet_on(fresh_env, broker) as (fleet, env):
        asyncio.run(admin.init(Settings()))

        async def settled_ahead() -> None:
            conn = await asyncpg.connect(env["DATABASE_URL"])
            try:
                await conn.execute("INSERT INTO settlement_cursor (symbol, seq) VALUES ('BTCUSDT', 7)")
            finally:
                await conn.close()

        asyncio.run(settled_ahead())
        fleet.start("matcher")
        detail = _wait_refusing(fleet, "matcher")
        assert "BTCUSDT at seq 0 (settled 7)" in detail and "redis lost writes" in detail, detail
        assert fleet.procs["matcher"].poll() is None


def _book_seq(cache: redis.Redis) -> int:
    raw = cache.get(state_key("BTCUSDT"))
    return decode_state(raw).seq if isinstance(raw, bytes) else 0


def test_fills_a_lost_log_carried_to_settlement_are_settled_from_the_matchers_outbox(
    fresh_env: dict[str, str], broker: Broker
) -> None:
    """The broker loses its log while matched events on it wait for settlement (stopped here, as a slow one
    would be): after the reseed, the matcher's outbox, kept until settlement applied it, gives them again,
    so every fill reaches the balances, once, and no symbol stops at a gap."""
    with _fleet_on(fresh_env, broker) as (fleet, env):
        base = f"http://127.0.0.1:{fleet.port('gateway')}"
        settings = Settings()
        seller, buyer = _started_with_two_users(fleet, settings)

        async def orders() -> None:
            s, b = Client(base, *seller), Client(base, *buyer)
            try:
                ask = await s.order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5",
                                    price="50000")  # fmt: skip
                assert ask["status"] == "NEW", ask
                assert await _trade(base, settings, seller, buyer) == 1
                fleet.procs["settlement"].send_signal(signal.SIGSTOP)  # settlement falls behind from here
                for _ in range(3):  # matched at once, settled only after the reset
                    taken = await b.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC",
                                          quantity="0.1", price="50000", newOrderRespType="ACK")  # fmt: skip
                    assert "orderId" in taken, taken
            finally:
                await s.close()
                await b.close()

        asyncio.run(orders())
        state = redis.Redis.from_url(env["REDIS_URL"])
        deadline = time.monotonic() + 20
        while _book_seq(state) < 5:  # the ask, then 4 fills
            assert time.monotonic() < deadline, "the matcher did not match the three buys"
            time.sleep(0.1)
        assert _trade_ids(env["DATABASE_URL"]) == [1], "settlement is stopped"

        # the broker loses its log, with the three fills on it that settlement never read
        fleet.procs["settlement"].send_signal(signal.SIGKILL)
        fleet.stop()
        broker.reset()
        asyncio.run(admin.init(Settings()))
        asyncio.run(admin.reseed_positions(Settings()))
        fleet.start_all()
        fleet.wait_ready(timeout=90)
        deadline = time.monotonic() + 30
        while _trade_ids(env["DATABASE_URL"]) != [1, 2, 3, 4] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _trade_ids(env["DATABASE_URL"]) == [1, 2, 3, 4], "every fill settled once"
        assert asyncio.run(admin.settlement_halted(Settings())) == [], "no symbol stopped at a gap"
        assert asyncio.run(_trade(base, settings, seller, buyer)) == 5  # and trading goes on
        time.sleep(0.5)
        asyncio.run(check_money_at(env["DATABASE_URL"]))


async def _settled(env: dict[str, str], seq: int, within: float = 20) -> None:
    """Wait until settlement has applied BTCUSDT's events up to ``seq`` (its mark for the matcher)."""
    cache = aioredis.Redis.from_url(env["REDIS_URL"])
    try:
        deadline = time.monotonic() + within
        while int(await cache.get(settled_key("BTCUSDT")) or 0) < seq:
            assert time.monotonic() < deadline, f"settlement did not reach seq {seq}"
            await asyncio.sleep(0.1)
    finally:
        await cache.aclose()


def test_depth_a_lost_log_carried_to_market_data_is_caught_up_from_the_book(
    fresh_env: dict[str, str], broker: Broker
) -> None:
    """The broker loses its log while events on it wait for market-data (stopped here, as a slow one would be)
    and settlement has applied them, so the matcher's outbox has let them go: on the new log market-data brings
    its depth to the matcher's committed book, at the book's update id, instead of keeping the old levels."""
    with _fleet_on(fresh_env, broker) as (fleet, env):
        base = f"http://127.0.0.1:{fleet.port('gateway')}"
        settings = Settings()
        seller, buyer = _started_with_two_users(fleet, settings)

        async def orders() -> None:
            s, b = Client(base, *seller), Client(base, *buyer)
            try:
                await s.order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5",
                              price="50000")  # fmt: skip
                deadline = time.monotonic() + 10
                while (await s.public("depth", symbol="BTCUSDT"))["asks"] != [["50000.00000000", "0.50000000"]]:
                    assert time.monotonic() < deadline, "market-data did not show the ask"
                    await asyncio.sleep(0.1)
                fleet.procs["market-data"].send_signal(signal.SIGSTOP)  # market-data falls behind from here
                assert await _trade(base, settings, seller, buyer) == 1
                await b.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2",
                              price="49000")  # fmt: skip
                await _settled(env, 3)  # then one more step: its commit lets the settled batches go
                await b.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1",
                              price="48000")  # fmt: skip
            finally:
                await s.close()
                await b.close()

        asyncio.run(orders())
        state = redis.Redis.from_url(env["REDIS_URL"])
        assert _book_seq(state) == 4 and _trade_ids(env["DATABASE_URL"]) == [1]

        fleet.procs["market-data"].send_signal(signal.SIGKILL)
        fleet.stop()
        broker.reset()
        asyncio.run(admin.init(Settings()))
        asyncio.run(admin.reseed_positions(Settings()))
        fleet.start_all()
        fleet.wait_ready(timeout=90)

        async def depth() -> dict[str, object]:
            c = Client(base, *buyer)
            try:
                return await c.public("depth", symbol="BTCUSDT")
            finally:
                await c.close()

        shown = asyncio.run(depth())
        assert shown["asks"] == [["50000.00000000", "0.40000000"]], shown
        assert shown["bids"] == [["49000.00000000", "0.20000000"], ["48000.00000000", "0.10000000"]], shown
        assert shown["lastUpdateId"] == _book_seq(state), (shown, _book_seq(state))
