"""Rate limits shared by every gateway replica: fixed windows counted in Redis, one command per request.

Three budgets, as Binance has them: request weight per minute (per IP, or per API key when signed), new
orders per 10 seconds (per API key) and new orders per UTC day (per account: every key of a user counts
together). A new order spends all three in one Lua script call (``SPEND``), and in the same call claims its
client order id (``Claim``) when the gateway publishes orders itself: the hot path pays a single Redis
command before Kafka. A caller names its budgets with a hash tag (``signed_budget``: the user's, which the
client-id key and the account's daily count share), so the script also runs on a clustered ElastiCache.
Over budget: HTTP 429 with ``Retry-After``, code -1003 for weight and -1015 for orders, and nothing is
claimed. Responses tell what was used: ``X-MBX-USED-WEIGHT-1M``, and for orders ``X-MBX-ORDER-COUNT-10S``
and ``X-MBX-ORDER-COUNT-1D`` (``used_headers``).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

from shared import errors
from shared import redis as sredis

WEIGHT_WINDOW_S, ORDER_WINDOW_S, DAY_S = 60, 10, 86_400  # a day's windows start at 00:00 UTC, as Binance's
# What the current request has used of the budgets it spent, for Binance's X-MBX-USED-WEIGHT-1M and
# X-MBX-ORDER-COUNT-10S / -1D headers: a holder the outermost ASGI layer sets (``fastpath.OrderFastPath``) and
# ``spend`` fills, shared by every task the request runs in.
USED: ContextVar[dict[str, int] | None] = ContextVar("spot_used_budget", default=None)
# GET /api/v3/depth (and the WebSocket API's ``depth``) weight by limit: Binance's table today (issue 23; issue 20
# had the older 1/5/25/50)
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


def depth_weight(limit: int) -> int:
    return next((weight for most, weight in DEPTH_WEIGHTS if limit <= most), DEPTH_WEIGHTS[-1][1])


def used_headers(used: dict[str, int]) -> list[tuple[bytes, bytes]]:
    out = [(b"x-mbx-used-weight-1m", str(used["weight"]).encode())] if "weight" in used else []
    if "orders" in used:
        out.append((b"x-mbx-order-count-10s", str(used["orders"]).encode()))
    if "orders_1d" in used:
        out.append((b"x-mbx-order-count-1d", str(used["orders_1d"]).encode()))
    return out


# KEYS[1..n]: window counters; ARGV[3i-2] is the amount to add to KEYS[i], ARGV[3i-1] its window in seconds and
# ARGV[3i] its limit. With a claim, KEYS[n+1] is the key to SET NX with ARGV[3n+1] (the claim's value) for
# ARGV[3n+2] seconds, only if every counter is within its limit; the reply's last item is then 1 if claimed.
SPEND = """
local n = #KEYS
local claim = #ARGV ~= 3 * n
if claim then n = n - 1 end
local used, within = {}, true
for i = 1, n do
  local amount = tonumber(ARGV[3 * i - 2])
  used[i] = redis.call('INCRBY', KEYS[i], amount)
  if used[i] == amount then redis.call('EXPIRE', KEYS[i], ARGV[3 * i - 1] + 1) end
  if used[i] > tonumber(ARGV[3 * i]) then within = false end
end
if claim then
  used[n + 1] = 0
  if within and redis.call('SET', KEYS[n + 1], ARGV[3 * n + 1], 'NX', 'EX', ARGV[3 * n + 2]) then
    used[n + 1] = 1
  end
end
return used
"""


def signed_budget(user_id: int, api_key: str) -> str:
    """A signed caller's budget name: per API key, hashed by user, as ``shared.rediskeys.client_id_key`` is, so a
    new order's budgets and its client-id claim live in one cluster slot."""
    return f"{{u:{user_id}}}:k:{api_key}"


def account_of(budget: str) -> str:
    """The account a budget belongs to: its hash tag (``{u:7}`` of a signed budget), so every key of a user
    counts its orders of the day together, in the slot its other keys use; a budget without a tag is its
    own account."""
    end = budget.find("}")
    return budget[: end + 1] if budget.startswith("{") and end > 0 else budget


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
    def __init__(
        self, cache: sredis.Client, weight_per_minute: int, orders_per_10s: int, orders_per_day: int = 200_000
    ) -> None:
        self.weight_per_minute = weight_per_minute
        self.orders_per_10s = orders_per_10s
        self.orders_per_day = orders_per_day
        self._cache = cache
        self._spend = sredis.BatchedScript(cache, SPEND)  # concurrent requests' calls share a pipeline

    async def spend(self, budget: str, weight: int, orders: int = 0, claim: Claim | None = None) -> bool:
        """Spend ``weight`` of ``budget``'s per-minute weight and, if ``orders``, of its 10-second order
        budget and its account's daily one; raise if any is exhausted. With a ``claim`` (only with
        ``orders``), take its key if free: True if taken, False if someone holds it."""
        now = time.time()
        w_window, o_window, day = int(now // WEIGHT_WINDOW_S), int(now // ORDER_WINDOW_S), int(now // DAY_S)
        keys = [f"rl:{budget}:w:{w_window}"]
        args: list[int | str] = [weight, WEIGHT_WINDOW_S, self.weight_per_minute]
        if orders:
            keys += [f"rl:{budget}:o:{o_window}", f"rl:{account_of(budget)}:o1d:{day}"]
            args += [orders, ORDER_WINDOW_S, self.orders_per_10s, orders, DAY_S, self.orders_per_day]
            if claim is not None:
                keys.append(claim.key)
                args += [claim.value, claim.ttl_s]
        used = await self._spend(keys=keys, args=args)
        report = USED.get()
        if report is not None:
            report["weight"] = used[0]
            if orders:
                report["orders"], report["orders_1d"] = used[1], used[2]
        if orders and used[1] > self.orders_per_10s:
            retry = max(1, int((o_window + 1) * ORDER_WINDOW_S - now) + 1)
            raise errors.too_many_orders(retry, self.orders_per_10s, ORDER_WINDOW_S)
        if orders and used[2] > self.orders_per_day:
            retry = max(1, int((day + 1) * DAY_S - now) + 1)  # the next 00:00 UTC
            raise errors.too_many_orders(retry, self.orders_per_day, 1, "DAY")
        if used[0] > self.weight_per_minute:
            retry = max(1, int((w_window + 1) * WEIGHT_WINDOW_S - now) + 1)
            raise errors.rate_limited(retry, "request weight per minute", self.weight_per_minute)
        return claim is None or bool(used[3])

    async def weight(self, budget: str, amount: int) -> None:
        await self.spend(budget, amount)

    async def spend_limited(self, budget: str, limit: int, what: str, window_s: int = WEIGHT_WINDOW_S) -> None:
        """Spend one of ``budget``'s ``limit`` per ``window_s``; -1003 with ``Retry-After`` past it."""
        now = time.time()
        window = int(now // window_s)
        used = await self._spend(keys=[f"rl:{budget}:{window_s}:{window}"], args=[1, window_s, limit])
        if used[0] > limit:
            raise self._limited(now, window, window_s, what, limit)

    async def check_orders(self, budget: str) -> None:
        """Raise the -1015 ``spend`` would raise for one more order of ``budget``, spending nothing (the
        ``orderRateLimitExceededMode=DO_NOTHING`` check of ``order/cancelReplace``, before its cancel)."""
        now = time.time()
        o_window, day = int(now // ORDER_WINDOW_S), int(now // DAY_S)
        used = [  # two reads: the keys may sit in different slots of a Redis Cluster
            await self._cache.get(f"rl:{budget}:o:{o_window}"),
            await self._cache.get(f"rl:{account_of(budget)}:o1d:{day}"),
        ]
        if used[0] is not None and int(used[0]) >= self.orders_per_10s:
            retry = max(1, int((o_window + 1) * ORDER_WINDOW_S - now) + 1)
            raise errors.too_many_orders(retry, self.orders_per_10s, ORDER_WINDOW_S)
        if used[1] is not None and int(used[1]) >= self.orders_per_day:
            retry = max(1, int((day + 1) * DAY_S - now) + 1)
            raise errors.too_many_orders(retry, self.orders_per_day, 1, "DAY")

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
