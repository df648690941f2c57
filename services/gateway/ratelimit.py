"""Rate limits shared by every gateway replica: fixed windows counted in Redis, one command per request.

Two budgets, as Binance has them: request weight per minute (per IP, or per API key when signed) and
new orders per 10 seconds (per API key). A new order spends both in one Lua script call (``SPEND``), so
the hot path pays a single Redis command for its limits; the keys share a hash tag, so the script also
runs on a clustered ElastiCache. Over budget: HTTP 429 with ``Retry-After``, code -1003 for weight and
-1015 for orders.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from shared import errors

WEIGHT_WINDOW_S, ORDER_WINDOW_S = 60, 10

# KEYS[i] is a window counter, ARGV[2i-1] the amount to add, ARGV[2i] the window's length in seconds.
SPEND = """
local used = {}
for i, key in ipairs(KEYS) do
  used[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
  if used[i] == tonumber(ARGV[2 * i - 1]) then redis.call('EXPIRE', key, ARGV[2 * i] + 1) end
end
return used
"""


class RateLimiter:
    def __init__(self, cache: aioredis.Redis, weight_per_minute: int, orders_per_10s: int) -> None:
        self.weight_per_minute = weight_per_minute
        self.orders_per_10s = orders_per_10s
        self._spend = cache.register_script(SPEND)

    async def spend(self, who: str, weight: int, orders: int = 0) -> None:
        """Spend ``weight`` of ``who``'s per-minute budget and, if ``orders``, of its 10-second order budget."""
        now = time.time()
        w_window, o_window = int(now // WEIGHT_WINDOW_S), int(now // ORDER_WINDOW_S)
        keys = [f"rl:{{{who}}}:w:{w_window}"]
        args: list[int] = [weight, WEIGHT_WINDOW_S]
        if orders:
            keys.append(f"rl:{{{who}}}:o:{o_window}")
            args += [orders, ORDER_WINDOW_S]
        used = await self._spend(keys=keys, args=args)
        if orders and used[1] > self.orders_per_10s:
            retry = max(1, int((o_window + 1) * ORDER_WINDOW_S - now) + 1)
            raise errors.too_many_orders(retry, self.orders_per_10s, ORDER_WINDOW_S)
        if used[0] > self.weight_per_minute:
            retry = max(1, int((w_window + 1) * WEIGHT_WINDOW_S - now) + 1)
            raise errors.rate_limited(retry, "request weight per minute", self.weight_per_minute)

    async def weight(self, who: str, amount: int) -> None:
        await self.spend(who, amount)
