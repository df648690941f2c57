"""The ping reference: a cell that says what was measured, and an order's cost in pings."""

from __future__ import annotations

import os

from bench.ping_reference import cpu_seconds, describe, pings_per_order

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


def test_cpu_seconds_reads_this_process() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_seconds(os.getpid()) > before
