"""Postgres, Redis and the broker each go away mid-run and come back: no service restarts.

Each dependency sits behind a proxy the test cuts (connections reset, new ones refused) and restores.
While it is gone, the services that hold it report not-ready and the API answers in Binance's words,
never a 500; once it is back, every service is ready again in the same process, orders trade, and the
money invariants hold (nothing accepted during the outage is lost or doubled).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest

from spot import admin
from spot.infra import port_open, tansu_binary
from tests.chaos.test_crash_replay import _quiesce
from tests.client import Client
from tests.conftest import make_env
from tests.e2e.conftest import RunningFleet, _run
from tests.faults import CuttableProxy, free_port, proxy_to, through
from tests.invariants import check_money

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

HOLDERS = {
    "postgres": ("gateway", "ingestion", "order-processor", "settlement"),
    "redis": ("gateway", "ingestion", "order-processor", "matcher", "settlement", "market-data"),
    "kafka": ("gateway", "ingestion", "order-processor", "matcher", "settlement", "market-data"),
}
NOT_READY_WITHIN_S, READY_WITHIN_S = 20.0, 60.0
SERVING_WITHIN_S = 60.0  # ready, then serving: a consumer back from an outage may take its first batch a while later


@contextlib.contextmanager
def _broker_behind(proxy_port: int) -> Iterator[str]:
    """A broker of its own that advertises the proxy, so every client connection passes through it."""
    port = free_port()
    proc = subprocess.Popen(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{proxy_port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert time.monotonic() < deadline, "tansu did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


async def _readiness(fleet: RunningFleet) -> dict[str, str | None]:
    """Each service's readiness: None when ready, else why not (its ``/readyz`` detail)."""
    async with httpx.AsyncClient(timeout=5) as http:

        async def one(name: str) -> str | None:
            try:
                r = await http.get(f"http://127.0.0.1:{fleet.fleet.port(name)}/readyz")
            except httpx.HTTPError as exc:
                return f"no answer ({type(exc).__name__})"
            return None if r.status_code == 200 else r.text

        names = list(fleet.fleet.procs)
        return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))


async def _wait(
    fleet: RunningFleet, want: bool, names: tuple[str, ...], within: float, when: str = ""
) -> dict[str, str]:
    """Until every one of ``names`` is ready (or not, ``want``); what the last poll before found not ready."""
    deadline = time.monotonic() + within
    last: dict[str, str] = {}
    while True:
        seen = await _readiness(fleet)
        if all((seen[n] is None) is want for n in names):
            return last
        last = {n: why for n, why in seen.items() if why is not None}
        assert time.monotonic() < deadline, (
            f"{when}: wanted ready={want} for {names} within {within}s; not ready: {last}"
        )
        await asyncio.sleep(0.25)


async def _trade(seller: Client, buyer: Client, price: str) -> None:
    sell = await seller.order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price=price
    )
    assert sell["status"] == "NEW", sell
    buy = await buyer.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=price)
    assert buy["status"] == "FILLED", buy


async def _status_of(client: Client, placed: dict[str, Any], want: str, within: float) -> None:
    """Wait until the order's status is ``want`` (an order whose decision came after its REST call's wait
    was answered with the ACK alone)."""
    deadline = time.monotonic() + within
    status, answer = placed.get("status"), (200, placed)
    while status != want:
        assert time.monotonic() < deadline, f"order {placed} not {want} within {within:.0f}s (last answer: {answer})"
        await asyncio.sleep(0.5)
        answer = await client.signed("GET", "order", symbol="BTCUSDT", orderId=placed["orderId"])
        status = answer[1].get("status")


async def _trade_eventually(seller: Client, buyer: Client, price: str, within: float) -> None:
    order = dict(symbol="BTCUSDT", type="LIMIT", timeInForce="GTC", quantity="0.01", price=price)
    await _status_of(seller, await seller.order(side="SELL", **order), "NEW", within)
    await _status_of(buyer, await buyer.order(side="BUY", **order), "FILLED", within)


async def _scenario(fleet: RunningFleet, proxies: dict[str, CuttableProxy], mark: Callable[[str], None]) -> None:
    settings = fleet.settings
    deposits = [("BTC", 10**8), ("USDT", 100_000 * 10**8)]
    seller_user = await admin.create_user(settings, "outage-seller", deposits)
    buyer_user = await admin.create_user(settings, "outage-buyer", deposits)
    seller = Client(fleet.base, seller_user.api_key, seller_user.secret)
    buyer = Client(fleet.base, buyer_user.api_key, buyer_user.secret)
    try:
        await _trade(seller, buyer, "50000")
        for i, (name, proxy) in enumerate(proxies.items()):
            proxy.cut()
            mark(f"{name} cut")
            await _wait(fleet, False, HOLDERS[name], NOT_READY_WITHIN_S, f"{name} cut")
            status, body = await seller.signed(
                "POST", "order", symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
                quantity="0.01", price=str(60_000 + i),
            )  # fmt: skip
            assert status != 500 and set(body) >= ({"orderId"} if status == 200 else {"code", "msg"}), (name, body)
            mark(f"an order while {name} is away: {status} {body}")
            proxy.restore()
            mark(f"{name} restored")
            began = time.monotonic()
            last = await _wait(fleet, True, tuple(fleet.fleet.procs), READY_WITHIN_S, f"{name} restored")
            mark(f"every service ready after {time.monotonic() - began:.1f}s; the last not ready: {last}")
            await _trade_eventually(seller, buyer, str(50_000 + i + 1), SERVING_WITHIN_S)
    finally:
        await seller.close()
        await buyer.close()
    await _quiesce(settings)
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=2) as db:
        await check_money(db)
        trades = await db.fetchval("SELECT count(*) FROM trades")
        assert trades == 1 + len(proxies), "each trade exactly once"


def _marker(out: IO[str]) -> Callable[[str], None]:
    """Writes the test's own steps into the fleet's log, between the services' lines."""

    def mark(step: str) -> None:
        out.write(f"{'test':>15} | {time.time():.3f} {step}\n")
        out.flush()

    return mark


NOISE = ('"aiokafka', '"rdkafka"', '"asyncpg.pool"')  # a client's own lines while a peer is away: one per retry
QUOTED = ("test |", "order-processor", "gateway", "ingestion")  # the services between an order and its NEW


def _last_words(log: Path, lines: int = 60) -> str:
    """The fleet's last lines from the services an order passes before NEW, without the clients' retries."""
    kept = [
        line[:400]
        for line in log.read_text(errors="replace").splitlines()
        if line.lstrip().startswith(QUOTED) and not any(n in line for n in NOISE)
    ]
    return "\n".join(kept[-lines:])


def test_a_lost_dependency_is_waited_out_without_a_restart(servers: dict[str, str], tmp_path: Path) -> None:
    env = make_env(servers)
    env["ORDER_RESULT_TIMEOUT_MS"] = "3000"
    kafka_proxy_port = free_port()
    with _broker_behind(kafka_proxy_port) as broker:
        proxies = {
            "postgres": proxy_to(env["DATABASE_URL"]),
            "redis": proxy_to(env["REDIS_URL"]),
            "kafka": CuttableProxy(int(broker.rsplit(":", 1)[1]), port=kafka_proxy_port).start(),
        }
        try:
            env["DATABASE_URL"] = through(env["DATABASE_URL"], proxies["postgres"])
            env["REDIS_URL"] = through(env["REDIS_URL"], proxies["redis"])
            env["KAFKA_BOOTSTRAP"] = f"127.0.0.1:{kafka_proxy_port}"
            log = tmp_path / "fleet.log"
            with log.open("w") as out, contextlib.contextmanager(_run)(env, log=out) as fleet:
                pids: dict[str, Any] = {name: p.pid for name, p in fleet.fleet.procs.items()}
                try:
                    asyncio.run(_scenario(fleet, proxies, _marker(out)))
                except AssertionError as exc:  # what the services said is the only account of a flake
                    raise AssertionError(f"{exc}\n--- the fleet's last words ({log}):\n{_last_words(log)}") from exc
                alive = {name: p.pid for name, p in fleet.fleet.procs.items() if p.poll() is None}
                assert alive == pids, "a service exited or was restarted"
        finally:
            for proxy in proxies.values():
                proxy.stop()
