"""What several e2e tests of order types share: a BTCUSDT GTC limit order's parameters, and a wait for the
locked balance settlement shows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.client import Client


def limit(side: str, qty: str, price: str, **extra: Any) -> dict[str, Any]:
    order = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": qty, "price": price}
    return order | extra


async def wait_locked(c: Client, asset: str, expected: str, within: float = 10) -> None:
    """Wait until settlement shows ``expected`` locked of ``asset``."""
    deadline = time.monotonic() + within
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, account = await c.signed("GET", "account")
        assert status == 200, account
        row = next(b for b in account["balances"] if b["asset"] == asset)
        if row["locked"] == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{asset} locked {row.get('locked')}, expected {expected}")
