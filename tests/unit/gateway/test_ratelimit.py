"""The rate limiter's budget names (``services/gateway/ratelimit.py``), without Redis.

A new order spends three budgets and claims its client order id in one script call, which a Redis Cluster runs
only if every key lies in one hash slot: for any user, API key and client order id, they must. Every key of a
user counts its orders of the day together (one account), no two users share one, and an IP's budgets are its
own. The used-budget headers say exactly what was spent. The spending itself runs against a real Redis in
``tests/integration/test_ratelimit.py``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from services.gateway.ratelimit import (
    account_of,
    connection_budget,
    lookup_budget,
    public_budget,
    signed_budget,
    used_headers,
)
from shared.order_request import CLIENT_ID
from shared.rediskeys import client_id_key

users = st.integers(1, 2**63 - 1)
api_keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=64)
client_ids = st.from_regex(CLIENT_ID, fullmatch=True)
ips = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
windows = st.integers(0, 10**10)


@given(users, api_keys, client_ids, windows, windows, windows)
def test_a_new_orders_budgets_and_its_client_id_claim_share_one_cluster_slot(
    user: int, key: str, client_id: str, minute: int, ten_s: int, day: int
) -> None:
    budget = signed_budget(user, key)
    keys = [  # as ``RateLimiter.spend`` names them
        f"rl:{budget}:w:{minute}",
        f"rl:{budget}:o:{ten_s}",
        f"rl:{account_of(budget)}:o1d:{day}",
        client_id_key(user, client_id),
    ]
    assert len({key_slot(k.encode()) for k in keys}) == 1, keys


@given(users, api_keys, api_keys, users)
def test_every_key_of_a_user_is_one_account_and_no_other_users(user: int, key: str, other_key: str, other: int) -> None:
    assert account_of(signed_budget(user, key)) == account_of(signed_budget(user, other_key))
    if other != user:
        assert account_of(signed_budget(user, key)) != account_of(signed_budget(other, key))


@given(ips, users, api_keys)
def test_an_ips_budgets_are_its_own_and_never_a_users(ip: str, user: int, key: str) -> None:
    names = [public_budget(ip), lookup_budget(ip), connection_budget(ip)]
    assert len(set(names)) == 3  # weight, key lookups and connections are spent apart
    assert account_of(public_budget(ip)) == public_budget(ip)
    assert all(account_of(n) != account_of(signed_budget(user, key)) for n in names)


@given(st.text(alphabet="abc:{}", max_size=12))
def test_a_budget_without_a_leading_hash_tag_is_its_own_account(budget: str) -> None:
    tagged = budget.startswith("{") and budget.find("}") > 0
    want = budget[: budget.index("}") + 1] if tagged else budget
    assert account_of(budget) == want


# what was spent -> Binance's header saying it, in the order the reply carries them
HEADERS = {"weight": b"x-mbx-used-weight-1m", "orders": b"x-mbx-order-count-10s", "orders_1d": b"x-mbx-order-count-1d"}
spent = st.fixed_dictionaries({}, optional={"weight": st.integers(0, 10**6), "orders": st.integers(0, 10**6)})


@given(spent, st.one_of(st.none(), st.integers(0, 10**6)))
def test_used_headers_name_exactly_what_was_spent(used: dict[str, int], day: int | None) -> None:
    if day is not None:
        used = {**used, "orders_1d": day}
    names = {
        "weight": b"x-mbx-used-weight-1m",
        "orders": b"x-mbx-order-count-10s",
        "orders_1d": b"x-mbx-order-count-1d",
    }
    want = [(names[k], str(used[k]).encode()) for k in ("weight", "orders", "orders_1d") if k in used]
    assert used_headers(used) == want
