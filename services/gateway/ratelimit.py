"""Rate limits shared by every gateway replica: fixed windows counted in Redis, one command per request.

Two budgets, as Binance has them: request weight per minute (per IP, or per API key when signed) and
new orders per 10 seconds (per API key). A new order spends both in one Lua script call (``SPEND``), and
in the same call claims its client order id (``Claim``) when the gateway publishes orders itself: the
hot path pays a single Redis command before Kafka. A caller names its budgets with a hash tag
(``signed_budget``: the user's, which the client-id key shares), so the script also runs on a clustered
ElastiCache. Over budget: HTTP 429 with ``Retry-After``, code -1003 for weight and -1015 for orders, and
nothing is claimed.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

from shared import errors
from shared import redis as sredis

WEIGHT_WINDOW_S, ORDER_WINDOW_S = 60, 10
# What the current request has used of the budgets it spent, for Binance's X-MBX-USED-WEIGHT-1M and
# X-MBX-ORDER-COUNT-10S headers: a holder the outermost ASGI layer sets (``fastpath.OrderFastPath``) and
# ``spend`` fills, shared by every task the request runs in.
USED: ContextVar[dict[str, int] | None] = ContextVar("spot_used_budget", default=None)
# GET /api/v3/depth weight by limit, as issue 20 fixes it from Binance's table (a deep book costs more)
DEPTH_WEIGHTS = ((100, 1), (500, 5), (1000, 25), (5000, 50))


def depth_weight(limit: int) -> int:
    return next((weight for most, weight in DEPTH_WEIGHTS if limit <= most), DEPTH_WEIGHTS[-1][1])


def used_headers(used: dict[str, int]) -> list[tuple[bytes, bytes]]:
    out = [(b"x-mbx-used-weight-1m", str(used["weight"]).encode())] if "weight" in used else []
    if "orders" in used:
        out.append((b"x-mbx-order-count-10s", str(used["orders"]).encode()))
    return out

# KEYS[1..n]: window counters, ARGV[2i-1] the amount to add to KEYS[i] and ARGV[2i] its window in seconds.
# With a claim, KEYS[n+1] is the key to SET NX with ARGV[2n+1] (the claim's value) for ARGV[2n+2] seconds,
# ARGV[2n+3] the order budget compared to the last counter first; the reply's last item is 1 if claimed.
SPEND = """
local n = #KEYS
local claim = #ARGV > 2 * n
if claim then n = n - 1 end
local used = {}
for i = 1, n do
  used[i] = redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if used[i] == tonumber(ARGV[2 * i - 1]) then redis.call('EXPIRE', KEYS[i], ARGV[2 * i] + 1) end
end
if claim then
  local within = used[n] <= tonumber(ARGV[2 * n + 3]) and used[1] <= tonumber(ARGV[2 * n + 4])
  used[n + 1] = 0
  if within and redis.call('SET', KEYS[n + 1], ARGV[2 * n + 1], 'NX', 'EX', ARGV[2 * n + 2]) then
    used[n + 1] = 1
  end
end
return used
"""


def signed_budget(user_id: int, api_key: str) -> str:
    """A signed caller's budget name: per API key, hashed by user, as ``shared.rediskeys.client_id_key`` is, so a
    new order's budgets and its client-id claim live in one cluster slot."""
    return f"{{u:{user_id}}}:k:{api_key}"


def public_budget(ip: str) -> str:
    """An IP's weight: public endpoints, and every refusal whose caller has not proven a key's secret."""
    return f"{{ip:{ip}}}"


def lookup_budget(ip: str) -> str:
    """An IP's API-key lookups in Postgres (``Gateway.api_key``), a budget of its own."""
    return f"{{ip:{ip}}}:lookups"


def connection_budget(ip: str) -> str:
    """An IP's new WebSocket connections per 5 minutes."""
    return f"{{ip:{ip}}}:ws"


@dataclass(frozen=True, slots=True)
class Claim:
    """A key to take with SET NX in the same call, if the budgets allow it."""

    key: str
    value: int
    ttl_s: int


class RateLimiter:
    def __init__(self, cache: sredis.Client, weight_per_minute: int, orders_per_10s: int) -> None:
        self.weight_per_minute = weight_per_minute
        self.orders_per_10s = orders_per_10s
        self._cache = cache
        self._spend = sredis.BatchedScript(cache, SPEND)  # concurrent requests' calls share a pipeline

    async def spend(self, budget: str, weight: int, orders: int = 0, claim: Claim | None = None) -> bool:
        """Spend ``weight`` of ``budget``'s per-minute weight and, if ``orders``, of its 10-second order
        budget; raise if either is exhausted. With a ``claim`` (only with ``orders``), take its key if
        free: True if taken, False if someone holds it."""
        now = time.time()
        w_window, o_window = int(now // WEIGHT_WINDOW_S), int(now // ORDER_WINDOW_S)
        keys = [f"rl:{budget}:w:{w_window}"]
        args: list[int | str] = [weight, WEIGHT_WINDOW_S]
        if orders:
            keys.append(f"rl:{budget}:o:{o_window}")
            args += [orders, ORDER_WINDOW_S]
            if claim is not None:
                keys.append(claim.key)
                args += [claim.value, claim.ttl_s, self.orders_per_10s, self.weight_per_minute]
        used = await self._spend(keys=keys, args=args)
        report = USED.get()
        if report is not None:
            report["weight"] = used[0]
            if orders:
                report["orders"] = used[1]
        if orders and used[1] > self.orders_per_10s:
            retry = max(1, int((o_window + 1) * ORDER_WINDOW_S - now) + 1)
            raise errors.too_many_orders(retry, self.orders_per_10s, ORDER_WINDOW_S)
        if used[0] > self.weight_per_minute:
            retry = max(1, int((w_window + 1) * WEIGHT_WINDOW_S - now) + 1)
            raise errors.rate_limited(retry, "request weight per minute", self.weight_per_minute)
        return claim is None or bool(used[2])

    async def weight(self, budget: str, amount: int) -> None:
        await self.spend(budget, amount)

    async def spend_limited(self, budget: str, limit: int, what: str, window_s: int = WEIGHT_WINDOW_S) -> None:
        """Spend one of ``budget``'s ``limit`` per ``window_s``; -1003 with ``Retry-After`` past it."""
        now = time.time()
        window = int(now // window_s)
        used = await self._spend(keys=[f"rl:{budget}:{window_s}:{window}"], args=[1, window_s])
        if used[0] > limit:
            raise self._limited(now, window, window_s, what, limit)

    async def check_limited(self, budget: str, limit: int, what: str, window_s: int = WEIGHT_WINDOW_S) -> None:
        """Raise as ``spend_limited`` would if ``budget`` has nothing left, spending nothing."""
        now = time.time()
        window = int(now // window_s)
        used = await self._cache.get(f"rl:{budget}:{window_s}:{window}")
        if used is not None and int(used) >= limit:
            raise self._limited(now, window, window_s, what, limit)

    @staticmethod
    def _limited(now: float, window: int, window_s: int, what: str, limit: int) -> Exception:
        retry = max(1, int((window + 1) * window_s - now) + 1)
        return errors.rate_limited(retry, f"{what} per {window_s} seconds", limit)
