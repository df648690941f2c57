"""The ping reference: a cell that says what was measured, and an order's cost in pings."""

from __future__ import annotations

import os

from bench.ping_reference import describe, pings_per_order
from bench.soak import cpu_seconds

PING = {"rate": 2310.4, "concurrency": 64, "seconds": 5.0, "errors": {}, "gateway_cpu_ms": 0.21}


def test_the_reference_names_the_rate_connections_and_cpu() -> None:
    assert describe(PING) == "GET /ping 2,310/s on 64 connections, 0.21 ms of gateway CPU each"
    assert describe(None) == "-"
    failed = {"error": "CalledProcessError: exit 1"}
    assert describe(failed) == "GET /ping failed (CalledProcessError: exit 1)"
    assert pings_per_order(2.1, failed) == "-"


def test_an_order_is_counted_in_pings_of_the_gateways_cpu() -> None:
    assert pings_per_order(2.1, PING) == "an order = 10.0 pings"
    assert pings_per_order(None, PING) == "-"
    assert pings_per_order(2.1, {**PING, "gateway_cpu_ms": None}) == "-"


def test_the_gateways_cpu_is_read_as_the_soak_reads_every_process() -> None:
    def cpu() -> float:
        return sum(cpu_seconds({"me": os.getpid()}, {})["me"].values())

    before = cpu()
    sum(i * i for i in range(300_000))
    assert cpu() > before
