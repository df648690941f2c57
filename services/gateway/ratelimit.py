"""Rate limits shared by every gateway replica: fixed windows counted in Redis (one round trip).

Two budgets, as Binance has them: request weight per minute (per IP, or per API key when signed) and
new orders per 10 seconds (per API key). Over budget: HTTP 429, code -1003, ``Retry-After``.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from shared import errors


class RateLimiter:
    def __init__(self, cache: aioredis.Redis, weight_per_minute: int, orders_per_10s: int) -> None:
        self.cache = cache
        self.weight_per_minute = weight_per_minute
        self.orders_per_10s = orders_per_10s

    async def _spend(self, key: str, amount: int, window_s: int, limit: int, what: str) -> None:
        now = time.time()
        window = int(now // window_s)
        k = f"rl:{key}:{window_s}:{window}"
        pipe = self.cache.pipeline(transaction=False)
        pipe.incrby(k, amount)
        pipe.expire(k, window_s + 1)
        used, _ = await pipe.execute()
        if used > limit:
            retry = max(1, int((window + 1) * window_s - now) + 1)
            raise errors.rate_limited(retry, what, limit)

    async def weight(self, who: str, amount: int) -> None:
        await self._spend(f"w:{who}", amount, 60, self.weight_per_minute, "request weight per minute")

    async def order(self, who: str) -> None:
        await self._spend(f"o:{who}", 1, 10, self.orders_per_10s, "orders per 10 seconds")
