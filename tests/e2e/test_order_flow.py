"""Two users trade through the real fleet; streams, depth, balances and holds all agree."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spot import admin, audit
from tests.client import Client
from tests.e2e.conftest import REDIS_KINDS
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e


def free(account: dict, asset: str) -> Decimal:
    return next((Decimal(b["free"]) for b in account["balances"] if b["asset"] == asset), Decimal(0))


def locked(account: dict, asset: str) -> Decimal:
    return next((Decimal(b["locked"]) for b in account["balances"] if b["asset"] == asset), Decimal(0))


async def _flow(base: str, settings) -> None:  # type: ignore[no-untyped-def]
    seller_u = await admin.create_user(settings, "seller", [("BTC", 10 * 10**8), ("USDT", 100_000 * 10**8)])
    buyer_u = await admin.create_user(settings, "buyer", [("BTC", 10 * 10**8), ("USDT", 100_000 * 10**8)])
    seller = Client(base, seller_u.api_key, seller_u.secret)
    buyer = Client(base, buyer_u.api_key, buyer_u.secret)
    seller_stream, buyer_stream = await seller.user_stream(), await buyer.user_stream()
    depth_stream = await seller.market_stream("btcusdt@depth@100ms", "btcusdt@trade")
    snapshot = await seller.public("depth", symbol="BTCUSDT", limit=1000)
    try:
        # a resting sell, then a crossing buy above it: the trade happens at the maker's price
        ask = await seller.order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5", price="50000"
        )
        assert ask["status"] == "NEW"
        # the hold shows on the owner's stream as Binance reports it: funds moved into the order
        await seller_stream.wait_for(
            lambda e: (
                e.get("e") == "outboundAccountPosition" and {"a": "BTC", "f": "9.50000000", "l": "0.50000000"} in e["B"]
            )
        )
        bid = await buyer.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2", price="50010"
        )
        assert bid["status"] == "FILLED", bid
        assert bid["fills"] == [
            {
                "price": "50000.00000000",
                "qty": "0.20000000",
                "commission": "0.00020000",
                "commissionAsset": "BTC",
                "tradeId": 1,
            }
        ]
        # the trade reaches both owners' streams
        for stream, order_id in ((seller_stream, ask["orderId"]), (buyer_stream, bid["orderId"])):
            report = await stream.wait_for(
                lambda e, o=order_id: e.get("e") == "executionReport" and e["i"] == o and e["x"] == "TRADE"
            )
            assert report["L"] == "50000.00000000" and report["l"] == "0.20000000"
        await depth_stream.wait_for(lambda e: e.get("e") == "trade" and e["t"] == 1)

        # a resting buy, cancelled: its whole hold comes back
        rest = await buyer.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="49000"
        )
        status, canceled = await buyer.signed("DELETE", "order", symbol="BTCUSDT", orderId=rest["orderId"])
        assert status == 200 and canceled["status"] == "CANCELED", canceled
        # nobody cancels another user's order
        status, refused = await buyer.signed("DELETE", "order", symbol="BTCUSDT", orderId=ask["orderId"])
        assert (status, refused["code"]) == (400, -2011)
        # the partly filled sell is cancelled: the unfilled 0.3 BTC is released
        status, canceled = await seller.signed("DELETE", "order", symbol="BTCUSDT", orderId=ask["orderId"])
        assert status == 200 and canceled["executedQty"] == "0.20000000" and canceled["status"] == "CANCELED"

        _, s_acct = await seller.signed("GET", "account")
        _, b_acct = await buyer.signed("GET", "account")
        notional = Decimal("10000")  # 0.2 BTC at 50000: the buyer's better limit is refunded
        assert free(s_acct, "BTC") == Decimal("9.8") and locked(s_acct, "BTC") == 0
        assert free(s_acct, "USDT") == Decimal("100000") + notional - notional * Decimal("0.001")
        assert free(b_acct, "BTC") == Decimal("10.2") - Decimal("0.0002") and locked(b_acct, "BTC") == 0
        assert free(b_acct, "USDT") == Decimal("100000") - notional and locked(b_acct, "USDT") == 0
        _, opens = await seller.signed("GET", "openOrders")
        assert opens == []

        # the local book built from the snapshot and the depth diffs equals the REST depth
        await asyncio.sleep(0.5)
        final = await seller.public("depth", symbol="BTCUSDT", limit=1000)
        local = {"bids": {p: q for p, q in snapshot["bids"]}, "asks": {p: q for p, q in snapshot["asks"]}}
        last = snapshot["lastUpdateId"]
        for e in [e for e in depth_stream.events if e.get("e") == "depthUpdate"]:
            if e["u"] <= last:
                continue
            assert e["U"] == last + 1, f"gap: {e['U']} after {last}"
            last = e["u"]
            for side, key in (("bids", "b"), ("asks", "a")):
                for p, q in e[key]:
                    if Decimal(q) == 0:
                        local[side].pop(p, None)
                    else:
                        local[side][p] = q
        assert last == final["lastUpdateId"]
        assert sorted(local["bids"].items(), reverse=True) == [tuple(x) for x in final["bids"]]
        assert sorted(local["asks"].items()) == [tuple(x) for x in final["asks"]]
        assert final["bids"] == [] and final["asks"] == []

        totals = await check_money_at(settings.database_url)
        assert totals == {"BTC": 20 * 10**8, "USDT": 200_000 * 10**8}
        found = await audit.run(settings, wait_s=10)  # `spot admin audit`: balances, ledger and books agree
        assert found.ok and {b.status for b in found.books} == {"ok"}, found.as_json()
    finally:
        for s in (seller_stream, buyer_stream, depth_stream):
            await s.close()
        await seller.close()
        await buyer.close()


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of a service's /metrics (0 if absent)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of one name on a service's /metrics, with its labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return [
        (dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _keys_per_node(settings) -> list[int]:  # type: ignore[no-untyped-def]
    """How many keys each primary of the fleet's Redis Cluster holds."""
    import redis

    cluster = redis.RedisCluster.from_url(settings.redis_url)
    try:
        return [cluster.dbsize(target_nodes=node) for node in cluster.get_primaries()]
    finally:
        cluster.close()


@pytest.mark.parametrize("fleet", REDIS_KINDS, indirect=True)
def test_two_users_trade_through_the_fleet(fleet) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_flow(fleet.base, fleet.settings))
    if fleet.settings.redis_cluster:  # ElastiCache in cluster mode: the fleet's keys live on several shards
        per_node = _keys_per_node(fleet.settings)
        assert len(per_node) == 3 and sum(1 for n in per_node if n) >= 2, per_node
    # the counters moved by exactly what the flow did: 3 orders accepted, 1 trade, 2 cancels, 1 foreign cancel
    port = fleet.fleet.port
    assert metric(port("gateway"), "spot_http_requests_total", method="POST", route="/api/v3/order", status="200") == 3
    assert (
        metric(port("gateway"), "spot_http_requests_total", method="DELETE", route="/api/v3/order", status="200") == 2
    )
    assert (
        metric(port("gateway"), "spot_http_requests_total", method="DELETE", route="/api/v3/order", status="400") == 1
    )
    # the default: the gateway publishes to order-requests itself, the ingestion service is not on the path
    assert metric(port("ingestion"), "spot_http_requests_total", route="/internal/orders", status="200") == 0
    assert metric(port("order-processor"), "spot_orders_decided_total", outcome="accepted") == 3
    assert metric(port("matcher"), "spot_trades_total", symbol="BTCUSDT") == 1
    assert metric(port("matcher"), "spot_matcher_events_total") == 5  # 3 orders + 2 cancels
    assert metric(port("settlement"), "spot_settled_events_total") == 5
    assert metric(port("gateway"), "spot_http_request_seconds_count", route="/api/v3/order") == 6

    # each REST call waits for its outcome, so every order and cancel is a batch of its own downstream
    assert metric(port("matcher"), "spot_match_latency_seconds_count") == 3  # accepted orders, not cancels
    assert metric(port("matcher"), "spot_match_latency_seconds_bucket", le="+Inf") == 3
    assert 0 <= metric(port("matcher"), "spot_match_latency_seconds_sum") < 3 * 10
    assert metric(port("gateway"), "spot_kafka_call_seconds_count", operation="send") == 5  # 3 orders, 2 cancels
    assert metric(port("gateway"), "spot_redis_call_seconds_count", operation="client_order_id") == 3
    assert metric(port("order-processor"), "spot_postgres_call_seconds_count", operation="take_holds") == 3
    assert metric(port("order-processor"), "spot_kafka_call_seconds_count", operation="flush") == 5
    assert metric(port("matcher"), "spot_redis_call_seconds_count", operation="book_commit") == 5
    # offsets are committed at most every KAFKA_COMMIT_INTERVAL_MS and when idle: not once per batch; a move to
    # the next log segment (shared.segments) commits what is done and the new slot's start
    switches = sum(v for _, v in samples(port("matcher"), "spot_segment_switches_total"))
    assert 1 <= metric(port("matcher"), "spot_kafka_call_seconds_count", operation="commit") <= 5 + 2 * switches
    assert metric(port("settlement"), "spot_postgres_call_seconds_count", operation="settle") == 5
    assert metric(port("market-data"), "spot_redis_call_seconds_count", operation="depth") >= 1
    # every consumer caught up: a lag sample for each topic it read, all zero
    consumed = {
        "order-processor": {"order-requests"},
        "matcher": {"validated-orders"},
        "settlement": {"matched-events"},
        "market-data": {"matched-events", "trade-execution"},
    }
    for service, topics in consumed.items():
        lags = samples(port(service), "spot_kafka_consumer_lag")
        assert {labels["topic"] for labels, _ in lags} == topics, (service, lags)
        assert all(labels["group"] == service and value == 0 for labels, value in lags), (service, lags)


def test_the_same_flow_through_the_ingestion_service(fresh_env: dict[str, str]) -> None:
    """``INGESTION_IN_GATEWAY=false``: the gateway hands each order to the ingestion service over HTTP, signed
    with the service key (the path of a deployment that keeps ingestion apart); the flow, its answers and the
    money are the same, and ingestion, not the gateway, publishes."""
    from tests.e2e.conftest import _run

    for running in _run({**fresh_env, "INGESTION_IN_GATEWAY": "false"}):
        asyncio.run(_flow(running.base, running.settings))
        port = running.fleet.port
        assert metric(port("ingestion"), "spot_http_requests_total", route="/internal/orders", status="200") == 3
        assert metric(port("ingestion"), "spot_kafka_call_seconds_count", operation="send") == 5  # 3 orders, 2 cancels
        assert metric(port("ingestion"), "spot_redis_call_seconds_count", operation="client_order_id") == 3
        assert metric(port("gateway"), "spot_kafka_call_seconds_count", operation="send") == 0
        served = metric(port("gateway"), "spot_http_requests_total", method="POST", route="/api/v3/order", status="200")
        assert served == 3
        assert metric(port("settlement"), "spot_settled_events_total") == 5
        ready = httpx.get(f"http://127.0.0.1:{port('gateway')}/readyz").json()
        assert ready["ready"], ready
