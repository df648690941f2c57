"""Postgres, Redis and the broker each stop answering without closing anything (a black hole), then come back.

The harder sibling of ``test_outages``: no connection is reset, so nothing tells a client the server is gone
but its own timeouts. Each dependency sits behind a proxy that silences every open connection for good and
accepts new ones into silence; the services that hold it must report not-ready within 10 s, the API must
keep answering in Binance's words, and once the proxy forwards again (the silenced connections stay dead)
every service must serve again in the same process: orders trade, the money invariants hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from spot import admin
from tests.chaos.test_crash_replay import _quiesce
from tests.chaos.test_outages import HOLDERS, SERVING_WITHIN_S, _broker_behind, _trade, _trade_eventually, _wait
from tests.client import Client
from tests.conftest import make_env
from tests.e2e.conftest import RunningFleet, _run
from tests.faults import CuttableProxy, free_port, proxy_to, through
from tests.invariants import check_money

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

NOT_READY_WITHIN_S, READY_WITHIN_S = 10.0, 90.0


# Ready means the dependency answers again; a call that was stuck on a silenced connection when it came back
# ends within its timeout (POSTGRES_TIMEOUT_MS 10 s, KAFKA_REQUEST_TIMEOUT_MS 15 s), and only then does the
# service take the outage path and serve on new connections: an order may wait that long to be decided.
@contextlib.contextmanager
def _fleet_behind(dependency: str, servers: dict[str, str]) -> Iterator[tuple[RunningFleet, CuttableProxy]]:
    """A fleet whose ``dependency`` is reached only through a proxy."""
    env = make_env(servers)
    env["ORDER_RESULT_TIMEOUT_MS"] = "3000"
    with contextlib.ExitStack() as stack:
        if dependency == "kafka":
            proxy_port = free_port()
            broker = stack.enter_context(_broker_behind(proxy_port))
            proxy = CuttableProxy(int(broker.rsplit(":", 1)[1]), port=proxy_port).start()
            env["KAFKA_BOOTSTRAP"] = f"127.0.0.1:{proxy_port}"
        else:
            key = {"postgres": "DATABASE_URL", "redis": "REDIS_URL"}[dependency]
            proxy = proxy_to(env[key])
            env[key] = through(env[key], proxy)
        stack.callback(proxy.stop)
        fleet = stack.enter_context(contextlib.contextmanager(_run)(env))
        yield fleet, proxy


async def _scenario(fleet: RunningFleet, proxy: CuttableProxy, dependency: str) -> None:
    settings = fleet.settings
    deposits = [("BTC", 10**8), ("USDT", 100_000 * 10**8)]
    seller_user = await admin.create_user(settings, f"hole-seller-{dependency}", deposits)
    buyer_user = await admin.create_user(settings, f"hole-buyer-{dependency}", deposits)
    seller = Client(fleet.base, seller_user.api_key, seller_user.secret)
    buyer = Client(fleet.base, buyer_user.api_key, buyer_user.secret)
    seller.http.timeout = buyer.http.timeout = 40  # a call during the silence waits out the services' timeouts
    try:
        await _trade(seller, buyer, "50000")
        proxy.blackhole()
        silenced = time.monotonic()
        await _wait(fleet, False, HOLDERS[dependency], NOT_READY_WITHIN_S, f"{dependency} silent")
        print(f"{dependency} silent: not ready after {time.monotonic() - silenced:.1f}s", flush=True)
        status, body = await seller.signed(
            "POST", "order", symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
            quantity="0.01", price="60000",
        )  # fmt: skip
        assert status != 500 and set(body) >= ({"orderId"} if status == 200 else {"code", "msg"}), body
        proxy.forward()
        forwarded = time.monotonic()
        await _wait(fleet, True, tuple(fleet.fleet.procs), READY_WITHIN_S, f"{dependency} back")
        print(f"{dependency} back: ready after {time.monotonic() - forwarded:.1f}s", flush=True)
        await _trade_eventually(seller, buyer, "50001", SERVING_WITHIN_S)
        print(f"{dependency} back: traded after {time.monotonic() - forwarded:.1f}s", flush=True)
    finally:
        await seller.close()
        await buyer.close()
    await _quiesce(settings)
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=2) as db:
        await check_money(db)
        assert await db.fetchval("SELECT count(*) FROM trades") == 2, "each trade exactly once"


@pytest.mark.parametrize("dependency", ["redis", "postgres", "kafka"])
def test_a_silent_dependency_is_noticed_within_10s_and_served_through_without_a_restart(
    dependency: str, servers: dict[str, str]
) -> None:
    with _fleet_behind(dependency, servers) as (fleet, proxy):
        pids: dict[str, Any] = {name: p.pid for name, p in fleet.fleet.procs.items()}
        asyncio.run(_scenario(fleet, proxy, dependency))
        alive = {name: p.pid for name, p in fleet.fleet.procs.items() if p.poll() is None}
        assert alive == pids, "a service exited or was restarted"
