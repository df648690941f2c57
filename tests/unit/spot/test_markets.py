"""``spot admin market``'s checks, before anything is written: bad values are named, a new market gets defaults."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spot import markets


def test_fields_are_parsed_and_bad_ones_named() -> None:
    raw = {"tick_size": "0.01", "maker_fee_bps": "7", "breaker_pct": "0.1", "breaker_window_s": "30", "base": "sol"}
    fields = markets.parse_fields({**raw, "status": "HALT", "min_qty": None})
    assert fields == {"tick_size": Decimal("0.01"), "maker_fee_bps": 7, "breaker_pct": Decimal("0.1"),
                      "breaker_window_s": 30, "base": "SOL", "status": "HALT"}  # fmt: skip
    for bad, named in (
        ({"tick_size": "-1"}, "--tick-size"),
        ({"tick_size": "NaN"}, "--tick-size"),
        ({"maker_fee_bps": "5000"}, "--maker-fee-bps"),
        ({"breaker_pct": "1"}, "--breaker-pct"),
        ({"breaker_window_s": "0"}, "--breaker-window-s"),
        ({"status": "CLOSED"}, "status"),
    ):
        with pytest.raises(ValueError, match=named):
            markets.parse_fields(bad)


def test_a_new_market_gets_defaults_and_a_bad_one_is_refused_whole() -> None:
    m = markets.build("SOLUSDT", markets.parse_fields({"base": "SOL", "quote": "USDT", "tick_size": "0.01",
                                                      "step_size": "0.001"}))  # fmt: skip
    assert (m.status, m.min_price, m.min_qty, m.bid_up, m.ask_down) == ("TRADING", Decimal("0.01"),
                                                                       Decimal("0.001"), 5, Decimal("0.2"))  # fmt: skip
    with pytest.raises(ValueError, match="--quote"):
        markets.build("SOLUSDT", {"base": "SOL", "tick_size": Decimal(1), "step_size": Decimal(1)})
    with pytest.raises(ValueError, match="PERCENT_PRICE_BY_SIDE"):
        markets.build("SOLUSDT", markets.parse_fields({"base": "SOL", "quote": "USDT", "tick_size": "0.01",
                                                       "step_size": "0.001", "bid_up": "0.5"}))  # fmt: skip
    with pytest.raises(ValueError, match="symbol"):
        markets.build("sol-usdt", markets.parse_fields({"base": "SOL", "quote": "USDT", "tick_size": "0.01",
                                                        "step_size": "0.001"}))  # fmt: skip
