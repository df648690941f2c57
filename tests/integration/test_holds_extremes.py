"""Any number a client or a producer can send, through ingestion's parsing and filters and the order processor's
real Postgres step: each request is refused with a Binance code or accepted with a hold that fits, never an
exception, and the money invariants hold after each.

Every request goes to the processor twice over: as ingestion canonicalised it (when ingestion took it) and as
raw as a producer writing straight to ``order-requests`` could make it, which the processor must refuse to its
owner before any number reaches Postgres. A batch Postgres still refuses (here: a CHECK constraint stricter
than the filters, and an id past a BIGINT) is decided one request at a time, and only the offending request
is rejected.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from services.order_processor.holds import UNSTORABLE, Holds, Located
from shared import errors, postgres
from shared.domain import INT64_MAX, OrderType, Side, StpMode, TimeInForce
from shared.errors import ApiError
from shared.funds import credit
from shared.messages import AcceptedOrder, NewOrderRequest, RejectedOrder
from shared.order_request import check_filters, parse_new_order
from tests.integration.markets_db import markets_db
from tests.invariants import check_money

BTC_ATOMS, USDT_ATOMS = 10**8, 100_000 * 10**8  # each user holds 1 BTC and 100,000 USDT
EXTREMES = [
    "0",
    "0.00000001",  # one atom
    "0.00001",  # one lot
    "0.01",  # one tick
    "1",
    "5",
    "9000",
    "9000.00001",
    "1000000",
    "1000000.01",
    "9000000000",
    "9000000000.00000001",
    "90000000000",
    "1000000000000",
    str(INT64_MAX - 1),
    str(INT64_MAX),
    str(INT64_MAX + 1),
    "9223372036854775807.99999999",
    "1" + "0" * 30,  # 1e30
    "0." + "1" * 40,  # 40 decimals
    "50000.0000000000000000000000000001",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1_000",
    "1e3",
    "1E-3",
    "\u0663",  # Arabic-Indic three
    "\uff13",  # fullwidth three
    "NaN",
    "Infinity",
    "-Infinity",
    ".5",
    "5.",
    "",
]

def _text(strategy: st.SearchStrategy[Decimal]) -> st.SearchStrategy[str]:
    return strategy.map(lambda d: format(d, "f"))


numbers = st.one_of(
    st.sampled_from(EXTREMES),
    _text(st.decimals(min_value=0, max_value=10**21, places=8)),
    st.integers(0, 2**70).map(str),
    st.text(alphabet="0123456789.-+e _\u0663\uff13", max_size=30),
)
prices = _text(st.decimals(min_value=0, max_value=100_000, places=2)) | numbers  # half of them plausible
quantities = _text(st.decimals(min_value=0, max_value=2, places=5)) | numbers
quotes = _text(st.decimals(min_value=0, max_value=200_000, places=2)) | numbers
maybe = st.none() | numbers
KINDS = [(OrderType.LIMIT, TimeInForce.GTC), (OrderType.LIMIT, TimeInForce.IOC), (OrderType.LIMIT_MAKER, None),
         (OrderType.MARKET, None)]  # fmt: skip


class Exchange:
    """One migrated database and a processor's Postgres step over it, on one event loop for every example."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.db_context = markets_db(url)
        self.db: asyncpg.Pool = self.loop.run_until_complete(self.db_context.__aenter__())
        self.markets = self.loop.run_until_complete(postgres.load_markets(self.db))
        self.holds = Holds(self.db, self.markets, 200)
        self.ids = itertools.count(1_000)

    def close(self) -> None:
        self.loop.run_until_complete(self.db_context.__aexit__(None, None, None))
        self.loop.close()

    async def user(self) -> int:
        user_id: int = await self.db.fetchval("INSERT INTO users (name, created_at) VALUES ('x', 0) RETURNING user_id")
        async with self.db.acquire() as conn:
            await credit(conn, user_id, "BTC", BTC_ATOMS, 0, "test")
            await credit(conn, user_id, "USDT", USDT_ATOMS, 0, "test")
        return user_id


@pytest.fixture
def exchange(fresh_env: dict[str, str]) -> Iterator[Exchange]:
    ex = Exchange(fresh_env["DATABASE_URL"])
    yield ex
    ex.close()


def _params(side: Side, kind: OrderType, tif: TimeInForce | None, price: str | None, qty: str | None,
            quote: str | None) -> dict[str, str]:  # fmt: skip
    given_ = {"price": price, "quantity": qty, "quoteOrderQty": quote, "timeInForce": tif and tif.value}
    return {"symbol": "BTCUSDT", "side": side.value, "type": kind.value} | {k: v for k, v in given_.items() if v}


def _check_decision(ex: Exchange, decision: object, request: NewOrderRequest) -> None:
    assert decision is not None
    if isinstance(decision, RejectedOrder):
        assert decision.code < 0 and decision.msg, decision
        assert decision.msg != UNSTORABLE, "the filters refuse it before Postgres has to"
        return
    assert isinstance(decision, AcceptedOrder), decision
    market = ex.markets["BTCUSDT"]
    for amount in (decision.price_ticks, decision.qty_lots, decision.quote_nu, decision.budget):
        assert 0 <= amount <= INT64_MAX
    unit = market.atoms_per_nu if request.side is Side.BUY else market.atoms_per_lot
    held = decision.budget * unit
    assert 0 < held <= (USDT_ATOMS if request.side is Side.BUY else BTC_ATOMS)


async def _decide(ex: Exchange, side: Side, kind: OrderType, tif: TimeInForce | None, price: str | None,
                  qty: str | None, quote: str | None) -> None:  # fmt: skip
    user_id = await ex.user()
    params = _params(side, kind, tif, price, qty, quote)
    # as ingestion takes it: refused with a code, or canonical strings the processor then decides
    ingested: NewOrderRequest | None = None
    try:
        ingested = parse_new_order(params, user_id=user_id, order_id=next(ex.ids), ts=1, symbols=ex.markets)
        check_filters(ingested, ex.markets["BTCUSDT"])
    except ApiError as refused:
        assert refused.code in (-1013, -1100, -1102, -1106, -1111) and refused.http_status == 400, refused.body()
        ingested = None
    # as a producer could write it: the raw strings, any shape
    raw = NewOrderRequest(order_id=next(ex.ids), user_id=user_id, symbol="BTCUSDT", side=side, type=kind,
                          tif=tif or (TimeInForce.IOC if kind is OrderType.MARKET else TimeInForce.GTC),
                          price=price, quantity=qty, quote_order_qty=quote, client_order_id=f"raw-{next(ex.ids)}",
                          stp=StpMode.EXPIRE_MAKER, ts=1)  # fmt: skip
    batch = [raw] if ingested is None else [ingested, raw]
    decisions, _, _ = await ex.holds.take([Located(0, i, r) for i, r in enumerate(batch)], 2)
    for decision, request in zip(decisions, batch, strict=True):
        _check_decision(ex, decision, request)
        event(f"{'ingested' if request is ingested else 'raw'}: {getattr(decision, 'msg', 'accepted')}")
    if ingested is None:  # what ingestion refuses for its numbers, the processor refuses too
        assert isinstance(decisions[-1], RejectedOrder), (params, decisions[-1])
    await check_money(ex.db)


Order = tuple[OrderType, TimeInForce | None, str | None, str | None, str | None]


@st.composite
def orders(draw: st.DrawFn) -> Order:
    """(type, timeInForce, price, quantity, quoteOrderQty): mostly the numbers the type takes, sometimes any."""
    kind, tif = draw(st.sampled_from(KINDS))
    if draw(st.integers(0, 4)) == 0:
        return kind, tif, draw(maybe), draw(maybe), draw(maybe)
    if kind is not OrderType.MARKET:
        return kind, tif, draw(prices), draw(quantities), None
    if draw(st.booleans()):
        return kind, tif, None, draw(quantities), None
    return kind, tif, None, None, draw(quotes)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(side=st.sampled_from(Side), order=orders())
@example(side=Side.SELL, order=(OrderType.MARKET, None, None, None, "1000000000000"))  # the request
@example(side=Side.BUY, order=(OrderType.MARKET, None, None, None, "1000000000000"))
@example(side=Side.BUY, order=(OrderType.LIMIT, TimeInForce.GTC, "1000000", "9223372036854775807", None))
@example(side=Side.SELL, order=(OrderType.MARKET, None, None, "900000", None))  # 9e10 lots
@example(side=Side.BUY, order=(OrderType.LIMIT, TimeInForce.IOC, "50000", "900000", None))
@example(side=Side.BUY, order=(OrderType.LIMIT, TimeInForce.GTC, "50000.0000000000000000000000000001", "0.01", None))
@example(side=Side.SELL, order=(OrderType.LIMIT, TimeInForce.GTC, "50000", "0.01", None))  # an ordinary one
def test_any_number_is_refused_with_a_code_or_held_within_bounds(exchange: Exchange, side: Side, order: Order) -> None:
    exchange.loop.run_until_complete(_decide(exchange, side, *order))


async def _isolated(ex: Exchange) -> None:
    alice, bob = await ex.user(), await ex.user()
    # the database is stricter than the filters here: a stand-in for any value a filter misses
    await ex.db.execute("ALTER TABLE orders ADD CONSTRAINT test_small_orders CHECK (qty_lots <= 50000)")
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "price": "50000"}

    def sell(user_id: int, quantity: str) -> NewOrderRequest:
        p = {**params, "quantity": quantity, "newClientOrderId": f"c{next(ex.ids)}"}
        return parse_new_order(p, user_id=user_id, order_id=next(ex.ids), ts=1, symbols=ex.markets)

    past_bigint = msgspec.structs.replace(sell(bob, "0.1"), user_id=INT64_MAX + 1)  # not decodable off the topic
    first, big, second = sell(alice, "0.1"), sell(bob, "0.6"), sell(alice, "0.2")  # bob has 1 BTC
    batch = [first, big, past_bigint, second, first]
    decisions, balances, redelivered = await ex.holds.take([Located(0, i, r) for i, r in enumerate(batch)], 2)

    assert [type(d).__name__ for d in decisions] == ["AcceptedOrder", "RejectedOrder", "RejectedOrder",
                                                     "AcceptedOrder", "AcceptedOrder"]  # fmt: skip
    assert decisions[4] is decisions[0], "a second copy still gets the first's decision"
    for refused in (decisions[1], decisions[2]):
        assert isinstance(refused, RejectedOrder)
        assert (refused.code, refused.msg) == (errors.NEW_ORDER_REJECTED, UNSTORABLE)
    assert redelivered == set()
    assert {(b["user_id"], b["asset"]): (b["available"], b["held"]) for b in balances} == {
        (alice, "BTC"): (BTC_ATOMS - 30_000_000, 30_000_000)
    }
    rows = {r["order_id"]: r["status"] for r in await ex.db.fetch("SELECT order_id, status FROM orders")}
    assert rows == {first.order_id: "NEW", second.order_id: "NEW"}, "the refused ones have no row"
    # a redelivery of the whole batch decides the same
    again, _, stored = await ex.holds.take([Located(0, i, r) for i, r in enumerate(batch)], 3)
    assert [type(d).__name__ for d in again] == [type(d).__name__ for d in decisions]
    assert stored == {first.order_id, second.order_id}
    await check_money(ex.db)


def test_a_request_postgres_refuses_is_rejected_alone_and_the_batch_goes_on(exchange: Exchange) -> None:
    exchange.loop.run_until_complete(_isolated(exchange))

