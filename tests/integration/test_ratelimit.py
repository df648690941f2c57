"""The gateway's rate limits on a real Redis: every budget in one round trip, each refused on its own.

A new order spends request weight, one of the key's orders per 10 seconds and one of its account's orders
of the day in the same call; the order budgets run out first here and are refused with Binance's -1015, the
weight budget with -1003, each with a ``Retry-After`` within its window. Another key's budget is untouched.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from services.gateway.ratelimit import (
    DAY_S,
    ORDER_WINDOW_S,
    USED,
    WEIGHT_WINDOW_S,
    Claim,
    RateLimiter,
    signed_budget,
    used_headers,
)
from shared import errors
from shared.errors import ApiError
from shared.rediskeys import client_id_key


async def _limits(redis_url: str) -> None:
    cache = aioredis.from_url(redis_url)
    try:
        limiter = RateLimiter(cache, weight_per_minute=10, orders_per_10s=3)
        for _ in range(3):
            await limiter.spend("k:alice", 1, orders=1)
        with pytest.raises(ApiError) as refused:
            await limiter.spend("k:alice", 1, orders=1)
        assert (refused.value.code, refused.value.http_status) == (errors.TOO_MANY_ORDERS, 429)
        assert refused.value.msg == "Too many new orders; current limit is 3 orders per 10 SECOND."
        assert 1 <= int(refused.value.headers["Retry-After"]) <= ORDER_WINDOW_S + 1

        await limiter.spend("k:bob", 1, orders=1)  # budgets are per key
        for _ in range(6):  # weight only: alice's order budget is spent, her weight (4 of 10, the refusal too) not
            await limiter.spend("k:alice", 1)
        with pytest.raises(ApiError) as refused:
            await limiter.weight("k:alice", 1)
        assert (refused.value.code, refused.value.http_status) == (errors.TOO_MANY_REQUESTS, 429)
        assert "request weight per minute is 10" in refused.value.msg
        assert 1 <= int(refused.value.headers["Retry-After"]) <= WEIGHT_WINDOW_S + 1

        counters = [k async for k in cache.scan_iter("rl:*")]
        assert len(counters) == 6  # weight, orders per 10 s and per day, for alice and bob
        ttls = {k: await cache.ttl(k) for k in counters}
        windows = {k: DAY_S if b":o1d:" in k else WEIGHT_WINDOW_S for k in counters}
        assert all(0 < ttls[k] <= windows[k] + 1 for k in counters), f"a window that never expires: {ttls}"
    finally:
        await cache.aclose()


def test_a_new_order_spends_weight_and_order_budget_in_one_round_trip(fresh_env: dict[str, str]) -> None:
    asyncio.run(_limits(fresh_env["REDIS_URL"]))


async def _claims(redis_url: str) -> None:
    cache = aioredis.from_url(redis_url)
    try:
        limiter = RateLimiter(cache, weight_per_minute=100, orders_per_10s=2)
        budget = signed_budget(7, "key-a")
        first = Claim(client_id_key(7, "my-order"), 1001, 60)
        assert await limiter.spend(budget, 1, orders=1, claim=first)
        assert await cache.get(first.key) == b"1001"
        again = Claim(first.key, 1002, 60)  # the same client id: refused, the first order keeps it
        assert not await limiter.spend(budget, 1, orders=1, claim=again)
        assert await cache.get(first.key) == b"1001"
        late = Claim(client_id_key(7, "too-many"), 1003, 60)
        with pytest.raises(ApiError) as refused:  # the order budget (2) is spent: refused, nothing claimed
            await limiter.spend(budget, 1, orders=1, claim=late)
        assert refused.value.code == errors.TOO_MANY_ORDERS
        assert await cache.get(late.key) is None
        assert 0 < await cache.ttl(first.key) <= 60
        # a cluster runs the script only if every key is in one slot: the budgets and the claim share a tag
        tags = {k.decode().split("{", 1)[1].split("}", 1)[0] async for k in cache.scan_iter("*{u:7}*")}
        assert tags == {"u:7"}
        assert len([k async for k in cache.scan_iter("*{u:7}*")]) == 4  # weight, orders (10 s, day), the claim
    finally:
        await cache.aclose()


def test_a_new_order_claims_its_client_id_in_the_same_call_only_within_budget(fresh_env: dict[str, str]) -> None:
    asyncio.run(_claims(fresh_env["REDIS_URL"]))


async def _daily(redis_url: str) -> None:
    cache = aioredis.from_url(redis_url)
    try:
        limiter = RateLimiter(cache, weight_per_minute=100, orders_per_10s=100, orders_per_day=3)
        first, second, other = signed_budget(7, "key-a"), signed_budget(7, "key-b"), signed_budget(8, "key-c")
        used: dict[str, int] = {}
        token = USED.set(used)
        try:
            await limiter.spend(first, 1, orders=1)
            await limiter.spend(first, 1, orders=1)
            assert used == {"weight": 2, "orders": 2, "orders_1d": 2}
            await limiter.spend(second, 1, orders=1)  # another key of the same account: its own 10 s, one day
            assert (used["orders"], used["orders_1d"]) == (1, 3)
            assert used_headers(used) == [
                (b"x-mbx-used-weight-1m", b"1"),
                (b"x-mbx-order-count-10s", b"1"),
                (b"x-mbx-order-count-1d", b"3"),
            ]
            late = Claim(client_id_key(7, "over-the-day"), 1004, 60)
            with pytest.raises(ApiError) as refused:
                await limiter.spend(second, 1, orders=1, claim=late)
        finally:
            USED.reset(token)
        assert (refused.value.code, refused.value.http_status) == (errors.TOO_MANY_ORDERS, 429)
        assert refused.value.msg == "Too many new orders; current limit is 3 orders per 1 DAY."
        until_midnight = DAY_S - int(time.time()) % DAY_S
        assert 1 <= int(refused.value.headers["Retry-After"]) <= until_midnight + 2
        assert await cache.get(late.key) is None, "an order over the day's budget claims nothing"
        await limiter.spend(other, 1, orders=1)  # another account's day is its own
        (day_key,) = [k async for k in cache.scan_iter("rl:{u:7}:o1d:*")]
        assert 0 < await cache.ttl(day_key) <= DAY_S + 1
    finally:
        await cache.aclose()


def test_an_account_places_a_bounded_number_of_orders_a_day_over_all_its_keys(fresh_env: dict[str, str]) -> None:
    """Binance's ORDERS per DAY (``X-MBX-ORDER-COUNT-1D``): counted per account, refused with -1015 until the
    next 00:00 UTC."""
    asyncio.run(_daily(fresh_env["REDIS_URL"]))
