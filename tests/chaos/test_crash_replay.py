"""Kill every service in turn while orders flow; the outcome equals a replay through the pure core.

A seeded flow of orders from many users on two symbols (with cancels, amends to a smaller quantity, conditional
orders, trailing ones among them, OCO order lists, and now and then a user's cancel of all its open orders on a
symbol) goes through the real fleet over signed REST, while each service is SIGKILLed at a random moment and
started again.
Afterwards:

* every order that got an order id is in the warm book (nothing accepted is lost, nothing placed twice);
* the trades in Postgres equal, id for id, the trades of a replay of ``validated-orders`` through the
  pure ``Book`` (prices, quantities, order ids), and so do the final books in Redis (state hash);
* every balance equals what the pure settlement of the replay gives from the deposits and holds;
* the money invariants hold (conservation per asset, ledger = balances, holds released exactly once);
* the candles of every kline interval are the candles of the stored trades, both the ones REST rolls up from
  Postgres and the live ones market-data keeps for the streams (killed and restarted too).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.gateway.candles import klines
from services.market_data.klines import SERIES, LiveCandles
from services.matcher.book import Book
from services.matcher.bookstore import BookStore
from services.settlement.ledger import OrderHold, settle
from shared import postgres
from shared import redis as sredis
from shared.candles import INTERVALS, bucket_open
from shared.domain import Bucket, ExecType, Side
from shared.messages import AcceptedOrder, CancelAllOrders, OrderListCommand, RejectedOrder, Topic, unpack_commands
from shared.rediskeys import market_key
from spot import admin, audit
from spot.fleet import Fleet
from tests.candle_model import candles_at
from tests.client import Client
from tests.e2e.conftest import REDIS_KINDS, RunningFleet, fleet_of_kind
from tests.invariants import check_money


@pytest.fixture
def fleet(request: pytest.FixtureRequest, servers: dict[str, str]) -> Iterator[RunningFleet]:
    """The default fleet with one log segment for the whole test: the comparison replays validated-orders from
    its first record, which the segment ring would have recycled (``shared.segments``)."""
    yield from fleet_of_kind(request, servers, KAFKA_SEGMENT_S="3600")


pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

SEED = 20261125
ORDERS = 2400
USERS = 16
CLIENTS = 12
VICTIMS = ("order-processor", "matcher", "settlement", "market-data", "ingestion", "gateway")
DEPOSITS = {"BTC": 2 * 10**8, "ETH": 40 * 10**8, "USDT": 400_000 * 10**8}
MID = {"BTCUSDT": 50_000, "ETHUSDT": 3_000}
Disturbance = tuple[str, Callable[[Fleet], None]]  # what it is, and what it does to the fleet


def order_params(rng: random.Random, symbol: str) -> dict[str, str]:
    mid = MID[symbol]
    side = rng.choice(("BUY", "SELL"))
    qty = f"{rng.randint(1, 40) / (1000 if symbol == 'BTCUSDT' else 100):.4f}"
    roll = rng.random()
    if roll < 0.12:
        return {"symbol": symbol, "side": side, "type": "MARKET", "quantity": qty}
    if roll < 0.2:
        return stop_params(rng, symbol, side, qty)
    if roll < 0.25:
        return oco_params(rng, symbol, side, qty)
    offset = rng.randint(-12, 12) * (mid // 5000)
    price = mid + (offset if side == "SELL" else -offset)  # mostly rest, often cross
    tif = rng.choice(("GTC", "GTC", "GTC", "IOC", "FOK"))
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": tif, "quantity": qty, "price": str(price)}


STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")


def stop_params(rng: random.Random, symbol: str, side: str, qty: str) -> dict[str, str]:
    """A conditional order (issue 24): a stop price within the flow's prices, a trailing delta of 10-30 BIPS
    (they move about 25 BIPS either side of the mid), or both; one that the last price already meets is
    refused, as Binance refuses it."""
    mid = MID[symbol]
    kind = rng.choice(STOP_TYPES)
    params = {"symbol": symbol, "side": side, "type": kind, "quantity": qty}
    how = rng.random()
    if how < 0.6:
        params["stopPrice"] = str(mid + rng.randint(-12, 12) * (mid // 5000))
    if how > 0.4:
        params["trailingDelta"] = str(rng.randint(10, 30))
    if kind.endswith("_LIMIT"):
        offset = rng.randint(-12, 12) * (mid // 5000)
        params |= {"timeInForce": rng.choice(("GTC", "GTC", "IOC")), "price": str(mid + offset)}
    return params


def oco_params(rng: random.Random, symbol: str, side: str, qty: str) -> dict[str, str]:
    """An OCO (issue 24's order lists): a LIMIT_MAKER and a stop-loss (MARKET or LIMIT once triggered) a few
    steps either side of the mid, the pair's legs canceling each other in the matcher's sequence."""
    mid, step = MID[symbol], MID[symbol] // 5000
    upper, lower = mid + rng.randint(2, 12) * step, mid - rng.randint(2, 12) * step
    limit_price, stop_price = (upper, lower) if side == "SELL" else (lower, upper)
    limit = {"Type": "LIMIT_MAKER", "Price": str(limit_price)}
    stop = {"Type": "STOP_LOSS", "StopPrice": str(stop_price)}
    if rng.random() < 0.5:
        stop |= {"Type": "STOP_LOSS_LIMIT", "Price": str(stop_price), "TimeInForce": "GTC"}
    above, below = (limit, stop) if side == "SELL" else (stop, limit)
    params = {"symbol": symbol, "side": side, "quantity": qty, "path": "orderList/oco"}
    return params | {f"above{k}": v for k, v in above.items()} | {f"below{k}": v for k, v in below.items()}


async def _submit(client: Client, params: dict[str, Any], acked: dict[int, int], user_id: int) -> int | None:
    """Send until the fleet answers; a retry reuses the client order id, so nothing is placed twice. The order's
    id if it was acknowledged (an order list's: its legs' ids are acknowledged, none returned)."""
    params = dict(params)
    path = params.pop("path", "order")
    if path != "order":  # its legs' client ids from the list's: a retry is refused as a duplicate, never doubled
        list_client_id = params.pop("newClientOrderId")
        params |= {"listClientOrderId": list_client_id, "aboveClientOrderId": f"{list_client_id}-a"}
        params["belowClientOrderId"] = f"{list_client_id}-b"
    for _ in range(60):
        try:
            status, body = await client.signed("POST", path, **params)
        except httpx.HTTPError:
            await asyncio.sleep(0.25)
            continue
        if status == 200 and path != "order":
            for leg in body["orders"]:
                acked[leg["orderId"]] = user_id
            return None
        if status == 200:
            acked[body["orderId"]] = user_id
            return int(body["orderId"])
        if status >= 500 or body.get("code") == -1003:
            await asyncio.sleep(0.25)
            continue
        return None  # refused (insufficient balance, duplicate of an accepted retry, filters): fine
    return None


def kill_and_restart(victim: str) -> Disturbance:
    """SIGKILL a service and start it again, as a crashed pod is restarted."""

    def act(fleet: Fleet) -> None:
        fleet.kill(victim)
        time.sleep(0.3)
        fleet.start(victim)
        fleet.wait_ready([victim], 60)

    return f"killed {victim}", act


async def _flow(fleet: Any, disturbances: Sequence[Disturbance] | None = None, one_at_a_time: bool = False) -> None:
    """The seeded flow with each disturbance at a random point of it, then the comparison with the replay.

    ``one_at_a_time``: a disturbance waits until the one before it is done (when order matters).
    """
    disturbances = disturbances or [kill_and_restart(v) for v in VICTIMS]
    settings = fleet.settings
    rng = random.Random(SEED)
    users = [await admin.create_user(settings, f"u{i}", list(DEPOSITS.items())) for i in range(USERS)]
    clients = [Client(fleet.base, u.api_key, u.secret) for u in users]
    acked: dict[int, int] = {}
    plan = []
    for n in range(ORDERS):
        u = rng.randrange(USERS)
        params = order_params(rng, rng.choice(("BTCUSDT", "ETHUSDT")))
        params["newClientOrderId"] = f"chaos-{n}"
        params["newOrderRespType"] = "ACK"
        plan.append((u, params))
    gap = ORDERS // (len(disturbances) + 2)
    kill_at = [gap * (i + 1) + rng.randrange(gap // 2) for i in range(len(disturbances))]  # spread through the flow
    cancel_rng = random.Random(SEED + 1)  # the workers' choices do not disturb the plan
    resting: dict[int, list[tuple[int, str, Decimal]]] = {}  # per user: GTC orders placed (id, symbol, quantity)
    queue: asyncio.Queue[tuple[int, dict[str, str]]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while not queue.empty():
            if one_at_a_time:  # the flow waits at a disturbance's point until it has begun
                for point, ev in zip(kill_at, begun, strict=True):
                    if sent >= point and not ev.is_set():
                        await ev.wait()
            u, params = queue.get_nowait()
            placed = await _submit(clients[u], params, acked, users[u].user_id)
            if placed is not None and params.get("timeInForce") == "GTC":
                resting.setdefault(u, []).append((placed, params["symbol"], Decimal(params["quantity"])))
            sent += 1
            if cancel_rng.random() < 0.1 and resting.get(u):  # amend one to half its size, maybe already done
                order_id, symbol, qty = cancel_rng.choice(resting[u])
                half = (qty / 2).quantize(Decimal("0.0001"), ROUND_DOWN)
                with contextlib.suppress(httpx.HTTPError):
                    await clients[u].signed(
                        "PUT", "order/amend/keepPriority", symbol=symbol, orderId=order_id, newQty=str(half)
                    )
            if cancel_rng.random() < 0.15 and acked:  # cancel one of this user's orders, maybe already done
                mine = [o for o, owner in acked.items() if owner == users[u].user_id]
                if mine:
                    try:
                        await clients[u].signed(
                            "DELETE", "order", symbol=params["symbol"], orderId=cancel_rng.choice(mine)
                        )
                    except httpx.HTTPError:
                        pass
            elif cancel_rng.random() < 0.02:  # the kill switch: all of this user's orders on the symbol at once
                try:
                    await clients[u].signed("DELETE", "openOrders", symbol=params["symbol"])
                except httpx.HTTPError:
                    pass

    kills: list[tuple[str, int]] = []
    serial = asyncio.Lock()  # FIFO: disturbances take it in the order of their points in the flow
    begun = [asyncio.Event() for _ in disturbances]
    failures: list[str] = []

    async def killer(disturbance: Disturbance, at: int, begun: asyncio.Event) -> None:
        """Each disturbance on its own clock, so a slow restart does not push the next one past the flow."""
        what, act = disturbance
        while sent < at:  # noqa: ASYNC110 - polls a counter the workers bump
            await asyncio.sleep(0.01)
        async with serial if one_at_a_time else contextlib.nullcontext():
            begun.set()
            at_kill = sent
            kills.append((what, at_kill))
            try:
                await asyncio.to_thread(act, fleet.fleet)
            except Exception as exc:  # reported after the flow, with the service's last log lines
                failures.append(f"{what}: {exc}")
                return
        print(f"{what} after {at_kill} orders; done", flush=True)

    started = time.monotonic()

    async def progress() -> None:
        while sent < ORDERS:
            print(f"sent {sent}, acknowledged {len(acked)}", flush=True)
            await asyncio.sleep(5)

    await asyncio.gather(
        *[killer(d, at, b) for d, at, b in zip(disturbances, kill_at, begun, strict=True)],
        progress(),
        *[worker() for _ in range(CLIENTS)],
    )
    assert not failures, "a service did not come back:\n" + "\n".join(failures)
    assert all(at < ORDERS for _, at in kills), f"every kill lands while orders flow: {kills}"
    for c in clients:
        await c.close()
    await _quiesce(settings)
    await _compare(settings, acked, time.monotonic() - started)


async def _quiesce(settings: Any, quiet_s: float = 3.0, limit_s: float = 120.0) -> None:
    """Wait until settlement has applied everything the matcher committed and nothing moves."""
    db = await asyncpg.connect(settings.database_url)
    deadline, last, stable_since = time.monotonic() + limit_s, None, time.monotonic()
    try:
        async with sredis.client(settings) as cache:
            store = BookStore(cache)
            markets = await postgres.load_markets(db)
            while time.monotonic() < deadline:
                seqs = tuple([(await store.load(m))[0].state.seq for m in markets.values()])
                cursor = tuple(
                    [
                        await db.fetchval("SELECT coalesce(max(seq), 0) FROM settlement_cursor WHERE symbol=$1", s)
                        for s in markets
                    ]
                )
                pending = await db.fetchval("SELECT count(*) FROM orders WHERE status = 'NEW' AND last_seq = 0")
                now = (seqs, cursor, pending)
                if now != last:
                    print(f"quiesce: matcher seqs {seqs}, settlement cursors {cursor}, unmatched {pending}", flush=True)
                    last, stable_since = now, time.monotonic()
                elif seqs == cursor and pending == 0 and time.monotonic() - stable_since > quiet_s:
                    return
                await asyncio.sleep(0.5)
    finally:
        await db.close()
    raise AssertionError(f"fleet did not settle: matcher seqs, settlement cursors, unmatched = {last}")


async def _validated(settings: Any) -> dict[int, list[Any]]:
    """Every command of validated-orders (envelopes unpacked), per partition in offset order."""
    topic = settings.topic(Topic.VALIDATED_ORDERS)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: dict[int, list[Any]] = {tp.partition: [] for tp in parts}
        idle = 0
        while idle < 4:  # Tansu's end_offsets is the last batch's start + 1, so read until nothing comes
            polled = await consumer.getmany(timeout_ms=250, max_records=5000)
            idle = 0 if polled else idle + 1
            for tp, records in polled.items():
                out[tp.partition] += [command for r in records for command, _ in unpack_commands(r.value)]
        return out
    finally:
        await consumer.stop()


async def _compare(settings: Any, acked: dict[int, int], elapsed: float) -> None:
    db = await asyncpg.connect(settings.database_url)
    try:
        markets = await postgres.load_markets(db)
        stored = {r["order_id"] for r in await db.fetch("SELECT order_id FROM orders")}
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged orders missing from the warm book"

        # replay validated-orders through the pure core, exactly as the matcher consumed it
        books = {s: Book(m) for s, m in markets.items()}
        events = []
        for records in (await _validated(settings)).values():
            for command in records:
                event = books[command.symbol].apply(command, 0)
                if event is not None:
                    events.append((command, event))
        replay_trades = sorted(
            (e.symbol, t.trade_id, t.price_ticks, t.qty_lots, t.buyer_order_id, t.seller_order_id)
            for _, e in events
            for t in e.trades
        )
        db_trades = sorted(
            tuple(r)
            for r in await db.fetch(
                "SELECT symbol, trade_id, price_ticks, qty_lots, buyer_order_id, seller_order_id FROM trades"
            )
        )
        assert len(replay_trades) > 100, "the flow should trade a lot"
        mass = [e for c, e in events if isinstance(c, CancelAllOrders) and e.updates]
        assert mass, "the flow should cancel all of a user's orders now and then"
        assert db_trades == replay_trades, "trades differ from the replay"

        async with sredis.client(settings) as cache:
            store = BookStore(cache)
            for symbol, m in markets.items():
                live, _ = await store.load(m)
                assert live.state_hash() == books[symbol].state_hash(), f"{symbol} book differs from the replay"

        # balances: deposits, the holds the processor took, then the pure settlement of the replay
        expected: dict[tuple[int, str], list[int]] = {}
        for r in await db.fetch("SELECT credit_user, asset, amount FROM ledger WHERE kind = 'deposit'"):
            expected.setdefault((r["credit_user"], r["asset"]), [0, 0])[0] += r["amount"]
        holds: dict[int, OrderHold] = {}
        for command, event in events:
            if isinstance(command, AcceptedOrder):
                m = markets[command.symbol]
                asset = m.quote if command.side is Side.BUY else m.base
                atoms = command.budget * (m.atoms_per_nu if command.side is Side.BUY else m.atoms_per_lot)
                row = expected.setdefault((command.user_id, asset), [0, 0])
                row[0] -= atoms
                row[1] += atoms
                holds[command.order_id] = OrderHold(
                    command.user_id, asset, atoms, command.side, command.type, command.price_ticks, command.qty_lots
                )
            elif isinstance(command, RejectedOrder):
                holds[command.order_id] = OrderHold(
                    command.user_id, "", 0, command.side, command.type, command.price_ticks, command.qty_lots
                )
            elif isinstance(command, OrderListCommand):  # the processor's rule: an OCO pair holds its larger need once
                m = markets[command.symbol]
                for r in command.rejected:
                    holds[r.order_id] = OrderHold(r.user_id, "", 0, r.side, r.type, r.price_ticks, r.qty_lots)
                pairs = {"OCO": [[0, 1]], "OTO": [[0], [1]], "OTOCO": [[0], [1, 2]]}[command.contingency]
                for pair in pairs if command.orders else []:
                    legs = [command.orders[k] for k in pair]
                    unit = m.atoms_per_nu if legs[0].side is Side.BUY else m.atoms_per_lot
                    most = max(leg.budget * unit for leg in legs)
                    holder = next(leg for leg in legs if leg.budget * unit == most)
                    asset = m.quote if legs[0].side is Side.BUY else m.base
                    row = expected.setdefault((command.user_id, asset), [0, 0])
                    row[0] -= most
                    row[1] += most
                    for leg in legs:
                        holds[leg.order_id] = OrderHold(
                            command.user_id, asset, most if leg is holder else 0, leg.side, leg.type,
                            leg.price_ticks, leg.qty_lots, list_id=command.list_id, shared=len(pair) > 1,
                        )  # fmt: skip
            for p in settle([event], markets[event.symbol], holds).postings:
                expected.setdefault((p.debit_user, p.asset), [0, 0])[p.debit_bucket is Bucket.HELD] -= p.amount
                expected.setdefault((p.credit_user, p.asset), [0, 0])[p.credit_bucket is Bucket.HELD] += p.amount
        actual = {
            (r["user_id"], r["asset"]): [r["available"], r["held"]]
            for r in await db.fetch("SELECT user_id, asset, available, held FROM balances")
        }
        assert {k: v for k, v in actual.items() if v != [0, 0]} == {k: v for k, v in expected.items() if v != [0, 0]}
        totals = await check_money(db)
        assert totals == {a: atoms * USERS for a, atoms in DEPOSITS.items()}
        await _compare_candles(db, settings, list(markets))
        found = await audit.run(settings, wait_s=20)  # what an operator runs: every book agrees too
        assert found.ok and {b.status for b in found.books} == {"ok"}, found.as_json()
        amended = sum(1 for _, e in events for u in e.updates if u.exec_type is ExecType.REPLACED)
        lists = [c for c, _ in events if isinstance(c, OrderListCommand) and c.orders]
        assert lists, "the flow should place order lists"
        # the replay runs at ts 0: a triggered order's working time is 0 there, a waiting one's -1
        triggered = [u for _, e in events for u in e.updates if u.stop is not None and u.stop.working_ts != -1]
        assert triggered, "the flow should trigger conditional orders"
        assert any(u.stop is not None and u.stop.trailing_delta for u in triggered), "... trailing ones too"
        print(
            f"\nchaos: {len(acked)} orders acknowledged, {len(db_trades)} trades, {len(events)} matcher events "
            f"({amended} amends, {len(triggered)} reports of triggered stops, {len(lists)} OCOs), "
            f"{elapsed:.1f}s with {len(VICTIMS)} kills"
        )
    finally:
        await db.close()


async def _compare_candles(db: asyncpg.Connection, settings: Any, symbols: list[str]) -> None:
    """Every interval's candles over REST (Postgres) and every stream's live candle (market-data's, in Redis)
    are the candles of the trades settlement stored."""
    async with sredis.client(settings) as cache:
        for symbol in symbols:
            query = "SELECT trade_id, price_ticks, qty_lots, buyer_is_maker, ts FROM trades WHERE symbol = $1"
            trades = [tuple(r) for r in await db.fetch(query, symbol)]
            if not trades:
                continue
            last = max(trades)
            for iv in INTERVALS.values():
                got = await klines(db, symbol, iv, 0, now=last[4], start=None, end=None, limit=1000)
                assert got[-1].open_time == bucket_open(last[4], iv), (symbol, iv.name)
                want = candles_at(trades, iv, 0, [c.open_time for c in got])  # type: ignore[arg-type]
                assert got == want, f"{symbol} {iv.name} candles differ from the trades'"
            live = LiveCandles.restore(orjson.loads(await cache.get(market_key(symbol, "kline_cur"))))
            for s in SERIES:
                at = bucket_open(last[4], s.interval, s.offset_ms)
                want = candles_at(trades, s.interval, s.offset_ms, [at])  # type: ignore[arg-type]
                assert [live.current[s.kind]] == want, (symbol, s.kind)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fleet", REDIS_KINDS, indirect=True)  # one Redis, and ElastiCache's cluster mode
def test_killing_each_service_changes_nothing(fleet: Any) -> None:
    asyncio.run(_flow(fleet))
