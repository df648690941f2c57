"""``python -m bench.pending_cost [--redis URL] [--rounds N]``: what keeping an order pending costs the door.

The ``Ingestor`` adds each new order to ``req:{SYMBOL}:pending`` (``shared/pending.py``) in the pipeline of its
client-id claim. This measures the client-side CPU per order of the claim alone and of the claim with the
pending entry beside it, 64 concurrent orders a turn in one ``BatchedCommands`` pipeline, alternating twice so a
noisy machine shows as a spread. Redis: a scratch database (default 15 on the local server); its keys expire or
are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis.asyncio as aioredis

from shared import pending
from shared import redis as sredis
from shared.domain import OrderType, Side, TimeInForce
from shared.messages import NewOrderRequest
from shared.rediskeys import client_id_key, pending_key

CONCURRENT = 64
REQUEST = NewOrderRequest(
    order_id=1, user_id=7, symbol="BTCUSDT", side=Side.BUY, type=OrderType.LIMIT, tif=TimeInForce.GTC,
    price="40000", quantity="0.001", client_order_id="bench", ts=1,
)  # fmt: skip


async def _cpu_per_order(batched: sredis.BatchedCommands, rounds: int, keep: bool, start: int) -> float:
    async def one(i: int) -> None:
        claimed = batched("SET", client_id_key(7, f"b{i}"), i, "NX", "EX", 5)
        if keep:
            await batched("HSET", pending_key("BTCUSDT"), i, pending.entry(REQUEST, 0))
        await claimed

    began = time.process_time()
    for r in range(rounds):
        await asyncio.gather(*(one(start + r * CONCURRENT + k) for k in range(CONCURRENT)))
    return (time.process_time() - began) / (rounds * CONCURRENT) * 1e6


async def main(url: str, rounds: int) -> None:
    cache = aioredis.Redis.from_url(url)
    batched = sredis.BatchedCommands(cache)
    try:
        for n, keep in enumerate((False, True, False, True)):
            us = await _cpu_per_order(batched, rounds, keep, n * rounds * CONCURRENT)
            print(f"claim{' + pending entry' if keep else '':<16} {us:6.1f} us of client CPU per order")
    finally:
        await cache.delete(pending_key("BTCUSDT"))
        await cache.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.rounds))
