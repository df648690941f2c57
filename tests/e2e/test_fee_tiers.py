"""Per-market and per-user fees through the fleet: ``account`` and ``account/commission`` report the rates a
user pays (their fee tier's, set with ``spot admin``, or the market's), and settlement charges exactly those;
the money invariants hold after the trade."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from shared.postgres import DEFAULT_MARKETS
from spot import admin, fees
from tests.client import Client
from tests.invariants import check_money_at

pytestmark = pytest.mark.e2e

FUNDS = [("BTC", 5 * 10**8), ("USDT", 500_000 * 10**8)]
BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")


def _rate(bps: int) -> str:
    return f"{Decimal(bps) / 10_000:.8f}"


async def _trades(c: Client, within: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        status, rows = await c.signed("GET", "myTrades", symbol="BTCUSDT")
        assert status == 200, rows
        if rows or time.monotonic() > deadline:
            return rows  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


async def _tiers(base: str, settings: Any) -> None:
    vip_u = await admin.create_user(settings, "vip", FUNDS)
    plain_u = await admin.create_user(settings, "plain", FUNDS)
    vip, plain = Client(base, vip_u.api_key, vip_u.secret), Client(base, plain_u.api_key, plain_u.secret)
    try:
        assert await fees.set_tier(settings, "vip", 2, 5) == {"tier": "vip", "makerBps": 2, "takerBps": 5}
        await fees.set_user_tier(settings, vip_u.user_id, "vip")
        with pytest.raises(fees.FeeTierError):
            await fees.set_user_tier(settings, plain_u.user_id, "nope")
        with pytest.raises(fees.FeeTierError):
            await fees.set_tier(settings, "bad", 2, 5000)
        assert await fees.tiers(settings) == [{"tier": "vip", "makerBps": 2, "takerBps": 5, "users": 1}]

        status, account = await vip.signed("GET", "account")
        assert status == 200 and (account["makerCommission"], account["takerCommission"]) == (2, 5)
        assert account["commissionRates"] == {
            "maker": _rate(2),
            "taker": _rate(5),
            "buyer": _rate(0),
            "seller": _rate(0),
        }
        status, account = await plain.signed("GET", "account")  # the market's real rates, not fixed 10/10
        assert (account["makerCommission"], account["takerCommission"]) == (BTC.maker_fee_bps, BTC.taker_fee_bps)
        status, mine = await vip.signed("GET", "account/commission", symbol="BTCUSDT")
        assert status == 200 and mine == {
            "symbol": "BTCUSDT",
            "standardCommission": {"maker": _rate(2), "taker": _rate(5), "buyer": _rate(0), "seller": _rate(0)},
            "taxCommission": {"maker": _rate(0), "taker": _rate(0), "buyer": _rate(0), "seller": _rate(0)},
            "discount": mine["discount"],
        }
        status, theirs = await plain.signed("GET", "account/commission", symbol="BTCUSDT")
        assert theirs["standardCommission"]["maker"] == _rate(BTC.maker_fee_bps)
        assert theirs["standardCommission"]["taker"] == _rate(BTC.taker_fee_bps)
        status, body = await vip.signed("GET", "account/commission", symbol="NOPE")
        assert (status, body["code"]) == (400, -1121)
        status, tested = await vip.signed(
            "POST",
            "order/test",
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.1",
            price="50000",
            computeCommissionRates="true",
        )
        assert tested["standardCommissionForOrder"] == {"maker": _rate(2), "taker": _rate(5)}

        # the tier's maker rate on the resting SELL (quote), the market's taker rate on the BUY (base)
        limit = dict(symbol="BTCUSDT", type="LIMIT", timeInForce="GTC", quantity="0.1", price="50000")
        await vip.order(side="SELL", **limit)
        await plain.order(side="BUY", **limit)
        (sold,) = await _trades(vip)
        assert (sold["commission"], sold["commissionAsset"]) == (f"{Decimal(5000) * 2 / 10_000:.8f}", "USDT")
        (bought,) = await _trades(plain)
        assert (bought["commission"], bought["commissionAsset"]) == (
            f"{Decimal('0.1') * BTC.taker_fee_bps / 10_000:.8f}",
            "BTC",
        )
        # and the tier's taker rate when the tier's user takes
        await plain.order(side="SELL", **limit)
        await vip.order(side="BUY", **limit)
        deadline = time.monotonic() + 10
        while len(rows := await _trades(vip)) < 2:
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.1)
        assert (rows[-1]["commission"], rows[-1]["commissionAsset"]) == (f"{Decimal('0.1') * 5 / 10_000:.8f}", "BTC")
        await check_money_at(settings.database_url)
    finally:
        await vip.close()
        await plain.close()


def test_fee_tiers_set_with_spot_admin_are_reported_and_charged(shared_fleet: Any) -> None:
    asyncio.run(_tiers(shared_fleet.base, shared_fleet.settings))
