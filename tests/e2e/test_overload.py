"""Past capacity the fleet refuses at the door: with room for one order in flight between the gateway and
ingestion and 1 ms to wait for it, a burst of concurrent orders is answered 200 or Binance's
``503 {"code": -1008}`` with ``Retry-After``, never a 500 or a -1001, and no traceback reaches a log; every
order that was ACKed is confirmed on the user stream, and the refused ones left nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared import errors
from spot import admin
from tests.client import Client
from tests.e2e.conftest import RunningFleet, _run

pytestmark = pytest.mark.e2e
BURST = 60


@pytest.fixture
def narrow_fleet(fresh_env: dict[str, str]) -> Iterator[RunningFleet]:
    yield from _run({**fresh_env, "ORDERS_IN_FLIGHT_MAX": "1", "POOL_WAIT_MS": "1"})


async def _confirmed(stream: Any, answers: list[tuple[int, dict[str, Any], str | None]]) -> list[str]:
    """The client order ids NEW on the user stream, once every ACKed one is, and a second more: a refused
    order would be confirmed by then too, were it in the fleet."""
    acked = {a[1]["clientOrderId"] for a in answers if a[0] == 200}

    def news() -> set[str]:
        return {e["c"] for e in stream.events if e.get("e") == "executionReport" and e.get("x") == "NEW"}

    await stream.wait_for(lambda _: news() >= acked, within=30)
    await asyncio.sleep(1)
    return sorted(news())


async def _burst(fleet: RunningFleet) -> tuple[list[tuple[int, dict[str, Any], str | None]], list[str]]:
    user = await admin.create_user(fleet.settings, "burst", [("USDT", 1_000_000 * 10**8)])
    client = Client(fleet.base, user.api_key, user.secret)
    stream = await client.user_stream()
    try:
        headers = {"X-MBX-APIKEY": user.api_key, "Content-Type": "application/x-www-form-urlencoded"}

        async def one(i: int) -> tuple[int, dict[str, Any], str | None]:
            body = client.sign(dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
                                    price="20000", newClientOrderId=f"burst{i}", newOrderRespType="ACK"))
            async with httpx.AsyncClient(base_url=fleet.base, timeout=15) as http:  # a connection each: concurrent
                r = await http.post("/api/v3/order", content=body, headers=headers)
            return r.status_code, r.json(), r.headers.get("Retry-After")

        answers = await asyncio.gather(*(one(i) for i in range(BURST)))
        return answers, await _confirmed(stream, answers)
    finally:
        await stream.close()
        await client.close()


def test_a_burst_past_capacity_is_refused_with_1008_and_the_rest_confirmed(narrow_fleet: RunningFleet) -> None:
    answers, confirmed = asyncio.run(_burst(narrow_fleet))
    refused = [a for a in answers if a[0] != 200]
    acked = sorted(a[1]["clientOrderId"] for a in answers if a[0] == 200)
    assert refused and acked and confirmed == acked, answers  # every ACKed one confirmed; no refused one
    for status, body, retry_after in refused:
        assert (status, body["code"], retry_after) == (503, errors.SERVER_BUSY, "1"), body
    for name, tail in narrow_fleet.fleet.tails.items():
        assert not [line for line in tail if "Traceback" in line or '"ERROR"' in line], (name, list(tail))


# The processor made slow on purpose: each fetch of order requests waits up to 400 ms at the broker for 10 MB,
# so every request waits about that long before it is taken, while the gateways admit a backlog of 50 ms.
SLOW_PROCESSOR = {"ADMIT_BACKLOG_MS": "50", "KAFKA_REQUEST_FETCH_MIN_BYTES": "10485760",
                  "KAFKA_REQUEST_FETCH_MAX_WAIT_MS": "400"}  # fmt: skip
FLOOD_S, FLOOD_RATE = 4.0, 60


@pytest.fixture
def behind_fleet(fresh_env: dict[str, str]) -> Iterator[RunningFleet]:
    yield from _run({**fresh_env, **SLOW_PROCESSOR})


async def _flood(fleet: RunningFleet) -> tuple[list[tuple[int, dict[str, Any], str | None]], list[str]]:
    """Orders at ``FLOOD_RATE``/s for ``FLOOD_S`` seconds, open loop, whatever the answers."""
    user = await admin.create_user(fleet.settings, "flood", [("USDT", 1_000_000 * 10**8)])
    client = Client(fleet.base, user.api_key, user.secret)
    stream = await client.user_stream()
    headers = {"X-MBX-APIKEY": user.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    try:
        async with httpx.AsyncClient(base_url=fleet.base, timeout=15) as http:

            async def one(i: int) -> tuple[int, dict[str, Any], str | None]:
                await asyncio.sleep(i / FLOOD_RATE)  # open loop: sent on time whatever came back before
                body = client.sign(dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                        quantity="0.001", price="20000", newClientOrderId=f"flood{i}",
                                        newOrderRespType="ACK"))  # fmt: skip
                r = await http.post("/api/v3/order", content=body, headers=headers)
                return r.status_code, r.json(), r.headers.get("Retry-After")

            answers = await asyncio.gather(*(one(i) for i in range(int(FLOOD_S * FLOOD_RATE))))
        return answers, await _confirmed(stream, answers)
    finally:
        await stream.close()
        await client.close()


def test_a_fleet_behind_refuses_new_orders_by_its_measured_backlog_and_drains(behind_fleet: RunningFleet) -> None:
    """Admission adapts to what the processor measures (``shared.pressure``), not to a count: with requests
    waiting ~400 ms against a budget of 50, the gateway refuses new orders with -1008 and ``Retry-After``
    once the processor's reports come in, admits again once they stop (the flood ended, or a refusal let the
    backlog drain), every ACKed order is confirmed and no refused one reaches the fleet; the processor's lag
    is back to zero after the flood."""
    from tests.e2e.test_order_flow import samples

    answers, confirmed = asyncio.run(_flood(behind_fleet))
    refused = [a for a in answers if a[0] != 200]
    acked = sorted(a[1]["clientOrderId"] for a in answers if a[0] == 200)
    assert refused and acked and confirmed == acked, answers
    for status, body, retry_after in refused:
        assert (status, body["code"], retry_after) == (503, errors.SERVER_BUSY, "1"), body
    gateway = behind_fleet.fleet.port("gateway")
    text = httpx.get(f"http://127.0.0.1:{gateway}/metrics").text
    assert f'spot_overload_refusals_total{{resource="order backlog"}} {float(len(refused))}' in text
    processor = behind_fleet.fleet.port("order-processor")
    lags = samples(processor, "spot_kafka_consumer_lag")
    assert lags and all(value == 0 for _, value in lags), lags
    for name, tail in behind_fleet.fleet.tails.items():
        assert not [line for line in tail if "Traceback" in line or '"ERROR"' in line], (name, list(tail))
