"""Benchmark 8: the producer. What a service pays to send one record at the fleet's rates, per client.

``make bench ARGS="produce --rate 300 --seconds 20"``: records of 200 bytes, keyed over 8 keys, sent open loop
at ``--rate`` to a topic of 4 partitions on the bench's broker, each one's ack awaited (as the gateway awaits
an order request's), through the producer the fleet uses (``shared.kafka_producer``, librdkafka) and, as the
reference, through aiokafka's producer with the settings ``shared.kafka`` gave it before. Figures: the
process's CPU per record (librdkafka's threads included) and the ack's p50/p99 from the send.
At these rates a produce batch holds one record, so the figure is the per-batch cost every service pays.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .common import Row, pct

VALUE = b"x" * 200
KEYS = 8
WARM = 200  # records sent before measuring: connections, metadata


def _cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


Send = Callable[[bytes, bytes], Awaitable[Awaitable[Any]]]


async def _paced(send: Send, rate: float, seconds: float) -> dict[str, float]:
    acks: list[float] = []
    waiting: set[asyncio.Future[Any]] = set()

    async def one(i: int, measured: bool) -> None:
        started = time.perf_counter()
        ack = await send(VALUE, str(i % KEYS).encode())
        fut = asyncio.ensure_future(ack)
        waiting.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            waiting.discard(f)
            if measured and not f.cancelled() and f.exception() is None:
                acks.append(time.perf_counter() - started)

        fut.add_done_callback(done)

    for i in range(WARM):
        await one(i, False)
    await asyncio.gather(*waiting)
    n = int(rate * seconds)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await one(i, True)
    await asyncio.gather(*waiting)
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - t0
    acks.sort()
    return {"records": n, "acked": len(acks), "cpu_us_per_record": cpu / n * 1e6, "cpu_pct": cpu / wall * 100,
            "ack_p50_ms": pct(acks, 50) * 1e3, "ack_p99_ms": pct(acks, 99) * 1e3}


async def _librdkafka(env: dict[str, str], topic: str, rate: float, seconds: float) -> dict[str, float]:
    from shared.kafka_producer import Producer

    from .common import settings_for

    producer = Producer(settings_for(env), linger_ms=1)
    await producer.start()
    try:
        return await _paced(lambda v, k: producer.send(topic, v, k), rate, seconds)
    finally:
        await producer.stop()


async def _aiokafka(env: dict[str, str], topic: str, rate: float, seconds: float) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP"], acks="all", enable_idempotence=False,
                                linger_ms=1, max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    try:
        return await _paced(lambda v, k: producer.send(topic, v, key=k), rate, seconds)
    finally:
        await producer.stop()


def run(env: dict[str, str], rate: float, seconds: float) -> dict[str, Any]:
    from .kafkatools import create_topic

    out: dict[str, Any] = {"rate": rate, "seconds": seconds}
    for name, client in (("aiokafka", _aiokafka), ("librdkafka", _librdkafka)):
        topic = f"bench-produce-{name}-{int(time.time() * 1000)}"
        asyncio.run(create_topic(env["KAFKA_BOOTSTRAP"], topic, 4))
        out[name] = asyncio.run(client(env, topic, rate, seconds))
    return out


def rows(res: dict[str, Any]) -> list[Row]:
    ours, ref = res["librdkafka"], res["aiokafka"]

    def said(r: dict[str, float]) -> str:
        return (f"{r['cpu_us_per_record']:.0f} us CPU per record ({r['cpu_pct']:.0f}% of a core), ack p50/p99 "
                f"{r['ack_p50_ms']:.1f}/{r['ack_p99_ms']:.1f} ms")

    return [Row(
        "producer: librdkafka (shared.kafka_producer)",
        f"{res['rate']:,.0f} records/s of 200 B for {res['seconds']:.0f} s, open loop, 8 keys, 4 partitions, "
        "each ack awaited; the process's CPU, client threads included",
        said(ours),
        "below aiokafka's",
        f"aiokafka: {said(ref)}",
        f"{ours['cpu_us_per_record'] / ref['cpu_us_per_record']:.2f}x",
        value=ours["cpu_us_per_record"],
        unit="us/record",
        met=ours["cpu_us_per_record"] < ref["cpu_us_per_record"] and ours["acked"] == ours["records"],
        extra=res,
    )]
