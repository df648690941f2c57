"""What settlement says after a batch: every outcome in one message, in order, then each owner's balances."""

from __future__ import annotations

import orjson

from services.settlement.outcome import outcome
from services.settlement.told import told
from shared import redis as sredis
from shared import tracing
from shared.domain import ExecType, OrderStatus, OrderType, Side, TimeInForce, fmt_amount
from shared.messages import CommandError, MatchedEvent, OrderUpdate
from shared.postgres import DEFAULT_MARKETS
from tests.unit.order_processor.test_batch import TP, Traced

MARKETS = {m.symbol: m for m in DEFAULT_MARKETS}
CHANNELS = sredis.Channels("-t")


def filled(request_id: int, user: int) -> MatchedEvent:
    update = OrderUpdate(
        order_id=request_id,
        user_id=user,
        client_order_id=f"c{request_id}",
        side=Side.BUY,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price_ticks=10_000,
        qty_lots=3,
        status=OrderStatus.FILLED,
        exec_type=ExecType.TRADE,
        created_ts=1,
        executed_lots=3,
        cum_nu=30_000,
        last_lots=3,
        last_ticks=10_000,
        trade_id=9,
    )
    return MatchedEvent("BTCUSDT", request_id, 5, request_id, [update])


def refused(request_id: int, user: int) -> MatchedEvent:
    error = CommandError(user_id=user, order_id=request_id, code=-2011, msg="Unknown order sent.")
    return MatchedEvent("ETHUSDT", request_id, 5, request_id, error=error)


def test_outcomes_go_in_one_message_in_order_then_each_owners_balances() -> None:
    applied = [filled(1, 7), refused(2, 8), filled(3, 8)]
    balances = [
        {"user_id": 7, "asset": "BTC", "available": 3, "held": 0},
        {"user_id": 8, "asset": "USDT", "available": 10**8, "held": 5},
        {"user_id": 7, "asset": "USDT", "available": 1, "held": 2},
    ]
    said = list(told(MARKETS, applied, balances, CHANNELS, 99, Traced({id(applied[1])})))

    assert [channel for channel, _ in said] == [CHANNELS.outcomes, CHANNELS.user(7), CHANNELS.user(8)]
    lines = [tracing.unwrap(line.encode()) for line in said[0][1].split("\n")]
    outcomes = [(orjson.loads(body), tp) for body, tp in lines]
    assert [(o["requestId"], o["userId"], tp) for o, tp in outcomes] == [(1, 7, None), (2, 8, TP), (3, 8, None)]
    assert outcomes[0][0]["order"]["status"] == "FILLED" and outcomes[1][0]["error"]["code"] == -2011
    seven, eight = orjson.loads(said[1][1]), orjson.loads(said[2][1])
    assert seven["e"] == "outboundAccountPosition" and seven["E"] == 99
    assert [(b["a"], b["f"], b["l"]) for b in seven["B"]] == [
        ("BTC", fmt_amount(3), fmt_amount(0)),
        ("USDT", fmt_amount(1), fmt_amount(2)),
    ]
    assert [(b["a"], b["f"]) for b in eight["B"]] == [("USDT", fmt_amount(10**8))]


def test_an_untraced_batch_says_the_same_without_traces() -> None:
    applied = [filled(1, 7)]
    said = list(told(MARKETS, applied, [], CHANNELS, 99))
    assert len(said) == 1 and tracing.unwrap(said[0][1].encode())[1] is None


def test_a_mass_cancel_outcome_lists_every_order_it_canceled_in_order() -> None:
    """``DELETE /api/v3/openOrders`` answers ``orders``: each canceled order as ``DELETE /order`` shows it."""
    m = DEFAULT_MARKETS[0]

    def canceled(order_id: int) -> OrderUpdate:
        return OrderUpdate(order_id, 7, f"c{order_id}", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 100, 3,
                           OrderStatus.CANCELED, ExecType.CANCELED, 1)  # fmt: skip

    both = outcome(m, MatchedEvent("BTCUSDT", 9, 500, 77, [canceled(4), canceled(2)]))
    assert [o["orderId"] for o in both["orders"]] == [4, 2] and both["userId"] == 7
    assert {o["status"] for o in both["orders"]} == {"CANCELED"} and both["orders"][0]["transactTime"] == 500
    one = outcome(m, MatchedEvent("BTCUSDT", 10, 500, 78, [canceled(5)]))
    assert "orders" not in one and one["order"]["orderId"] == 5
