"""A conditional order's fields in Binance's shapes (``shared/binance.py``): its stop, whether it works yet."""

from __future__ import annotations

from decimal import Decimal

from shared.binance import execution_report, order_from_row, order_from_update
from shared.domain import ExecType, Market, OrderStatus, OrderType, Side, StpMode, TimeInForce
from shared.messages import OrderUpdate, StopState

BTC = Market(
    "BTCUSDT",
    "BTC",
    "USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_price=Decimal("0.01"),
    max_price=Decimal("1000000"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
)


def update(stop: StopState | None, type: OrderType = OrderType.STOP_LOSS_LIMIT) -> OrderUpdate:
    return OrderUpdate(
        7, 1, "c7", Side.SELL, type, TimeInForce.GTC, 4_900_000, 10_000, OrderStatus.NEW, ExecType.NEW, 1000,
        stop=stop,
    )  # fmt: skip


def test_an_untriggered_stop_reports_its_stop_and_does_not_work_yet() -> None:
    report = execution_report(BTC, update(StopState(4_950_000)), 1001)
    assert (report["P"], report["w"], report["W"], report["p"]) == ("49500.00000000", False, -1, "49000.00000000")
    assert "d" not in report and "D" not in report
    order = order_from_update(BTC, update(StopState(4_950_000)), 1001)
    assert (order["stopPrice"], order["isWorking"], order["workingTime"]) == ("49500.00000000", False, -1)


def test_a_triggered_trailing_stop_works_from_its_trigger_and_shows_its_trailing() -> None:
    report = execution_report(BTC, update(StopState(0, 150, 1500, 2000)), 2000)
    assert (report["P"], report["w"], report["W"], report["d"], report["D"]) == ("0.00000000", True, 2000, 150, 1500)
    order = order_from_update(BTC, update(StopState(0, 150, -1, -1)), 2000)
    assert (order["trailingDelta"], order["trailingTime"], order["isWorking"]) == (150, -1, False)


def test_a_market_stop_shows_no_price_and_other_orders_keep_their_shape() -> None:
    assert execution_report(BTC, update(StopState(1), OrderType.STOP_LOSS), 5)["p"] == "0.00000000"
    plain = execution_report(BTC, update(None, OrderType.LIMIT), 5)
    assert (plain["P"], plain["w"], plain["W"]) == ("0.00000000", True, 1000) and "d" not in plain
    row = {
        "order_id": 7, "client_order_id": "c7", "side": "SELL", "type": "TAKE_PROFIT", "tif": "IOC",
        "price_ticks": 0, "qty_lots": 1, "quote_nu": 0, "status": "NEW", "executed_lots": 0, "cum_nu": 0,
        "created_ts": 10, "updated_ts": 10, "stp": StpMode.EXPIRE_MAKER.value, "stop_ticks": 5_000_000,
        "trailing_delta": 0, "working_ts": -1, "iceberg_lots": 0, "prevented_lots": 0,
    }  # fmt: skip
    order = order_from_row(BTC, row)
    assert (order["stopPrice"], order["isWorking"], order["workingTime"]) == ("50000.00000000", False, -1)
    assert order_from_row(BTC, {**row, "type": "LIMIT", "stop_ticks": 0, "working_ts": 0})["isWorking"] is True
