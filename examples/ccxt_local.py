"""Point an unmodified ccxt at the local fleet: only the URLs change.

make dev                                    # in one terminal
spot admin create-user --deposit BTC=1 --deposit USDT=100000 --json   # note apiKey and secret
SPOT_API_KEY=... SPOT_SECRET=... .venv/bin/python examples/ccxt_local.py
"""

import asyncio
import os

import ccxt.pro

BASE, WS = "http://127.0.0.1:8000", "ws://127.0.0.1:8000"
CONFIG = {
    "apiKey": os.environ.get("SPOT_API_KEY", ""),
    "secret": os.environ.get("SPOT_SECRET", ""),
    "enableRateLimit": False,
    "urls": {
        "api": {
            "public": BASE + "/api/v3",
            "private": BASE + "/api/v3",
            "v1": BASE + "/api/v1",
            "ws": {"spot": WS + "/ws", "margin": WS + "/ws", "ws-api": {"spot": WS + "/ws-api/v3"}},
        }
    },
    "options": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},  # no futures/margin endpoints
        "fetchCurrencies": False,  # no sapi calls
        "fetchMargins": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    },
}


async def main() -> None:
    exchange = ccxt.pro.binance(CONFIG)
    try:
        markets = await exchange.load_markets()
        print("markets:", list(markets))
        print("book:", await exchange.fetch_order_book("BTC/USDT", 5))
        if CONFIG["apiKey"]:
            print("balance:", (await exchange.fetch_balance())["total"])
            order = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 30_000)
            print("placed:", order["id"], order["status"])
            print("canceled:", (await exchange.cancel_order(order["id"], "BTC/USDT"))["status"])
    finally:
        await exchange.close()


if __name__ == "__main__":
    asyncio.run(main())
