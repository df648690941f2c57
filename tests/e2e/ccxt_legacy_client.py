"""Run by test_ccxt.py under ccxt 4.5.5 (the last release with the listenKey user stream).

Usage: python ccxt_legacy_client.py BASE API_KEY SECRET; prints a JSON summary on stdout.
"""

import asyncio
import json
import sys

import ccxt.pro

from tests.e2e.test_ccxt import config


async def main(base: str, api_key: str, secret: str) -> None:
    ex = ccxt.pro.binance(config(base, api_key, secret))
    try:
        await ex.load_markets()
        watching = asyncio.create_task(ex.watch_orders("BTC/USDT"))
        balance_task = asyncio.create_task(ex.watch_balance())
        await asyncio.sleep(1.0)  # the listenKey stream is open
        order = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40_000)
        seen = [(o["id"], o["status"]) for o in await asyncio.wait_for(watching, 15)]  # copied: ccxt updates it
        balance = await asyncio.wait_for(balance_task, 15)
        used = balance["USDT"]["used"]  # now: ccxt updates this dict in place, and the cancel's event frees it
        opened = await ex.fetch_open_orders()
        canceled = await ex.cancel_order(order["id"], "BTC/USDT")
        print(
            json.dumps(
                {
                    "version": ccxt.__version__,
                    "listenKey": ex.options["spot"].get("listenKey") is not None,
                    "orderId": order["id"],
                    "seen": seen,
                    "usdtUsed": used,
                    "open": [o["id"] for o in opened],
                    "canceled": canceled["status"],
                }
            )
        )
    finally:
        await ex.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
