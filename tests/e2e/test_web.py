"""The web trading page (services/gateway/static) in a real browser against the real fleet.

It proves the public API end to end from the browser: exchangeInfo, depth snapshot + diff stream, trades,
klines, ticker, WebCrypto-signed orders and cancels, the WS-API user stream, and recovery after the
gateway restarts. Chromium is Debian's (scripts/install-browser.sh), driven by Playwright for Python;
`playwright install` is never needed. Screenshots go to test-artifacts/; SPOT_UPDATE_SCREENSHOT=1 also
refreshes docs/screenshot.png.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from spot import admin
from tests.client import Client

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/install-browser.sh (Debian's chromium)"
    ),
]


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"web-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def place(page: Page, side: str, price: str, qty: str, tif: str = "GTC") -> str:
    """Fill the order form and submit; returns the message the page shows."""
    await page.click(f'[data-side="{side}"]')
    await page.click('[data-type="LIMIT"]')
    await page.fill("#price", price)
    await page.fill("#qty", qty)
    await page.select_option("#tif", tif)
    await page.click("#submit")
    msg = page.locator("#order-msg")
    await expect(msg).not_to_have_text(re.compile(r"^(|Sending…)$"), timeout=WAIT_MS)
    return await msg.inner_text()


def order_id(message: str) -> int:
    m = re.search(r"#(\d+)", message)
    assert m, message
    return int(m.group(1))


async def test_trading_page(fleet) -> None:  # type: ignore[no-untyped-def]
    web_user = await admin.create_user(fleet.settings, "web", [("BTC", 10 * 10**8), ("USDT", 100_000 * 10**8)])
    api_user = await admin.create_user(fleet.settings, "api", [("BTC", 10 * 10**8), ("USDT", 100_000 * 10**8)])
    web_api = Client(fleet.base, web_user.api_key, web_user.secret)
    other = Client(fleet.base, api_user.api_key, api_user.secret)
    third_user = await admin.create_user(fleet.settings, "third", [("BTC", 10**8), ("USDT", 10_000 * 10**8)])
    third = Client(fleet.base, third_user.api_key, third_user.secret)
    expect.set_options(timeout=WAIT_MS)
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            # the page runs under its own Content-Security-Policy (issue 20): anything it refused is an error
            page.on(
                "console",
                lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
            )
            answer = await page.goto(fleet.base + "/")
            assert answer is not None
            headers = await answer.all_headers()
            assert "frame-ancestors 'none'" in headers["content-security-policy"], headers
            assert (headers["x-frame-options"], headers["referrer-policy"]) == ("DENY", "no-referrer"), headers

            # public data: markets, the live streams, an empty synchronised book
            await expect(page.locator("#market option")).to_have_count(2)
            await expect(page.locator("#market")).to_have_value("BTCUSDT")
            await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
            await expect(page.locator("#book-state")).to_have_attribute("data-synced", "1")

            # some depth from another user, away from the prices used below, and two trades against it
            for side, prices in (("SELL", ("50500", "50750", "51250")), ("BUY", ("48500", "48250", "47750"))):
                for i, price in enumerate(prices):
                    await other.order(
                        symbol="BTCUSDT",
                        side=side,
                        type="LIMIT",
                        timeInForce="GTC",
                        quantity=f"0.{i + 1}5",
                        price=price,
                    )
            for side in ("BUY", "SELL"):
                await third.order(symbol="BTCUSDT", side=side, type="MARKET", quantity="0.05")
            await expect(page.locator("#trades tr[data-trade-id]")).to_have_count(2)
            await expect(page.locator('#bids .level[data-price="48500.00000000"] .q')).to_have_text("0.10000")
            await expect(page.locator("#chart-empty")).to_be_hidden()

            # sign in: key and secret in sessionStorage, balances from GET /account
            await page.click("#signin-btn")
            await page.fill("#api-key", web_user.api_key)
            await page.fill("#api-secret", web_user.secret)
            await page.click("#signin-submit")
            await expect(page.locator("#signin")).not_to_be_visible()
            btc = page.locator('#balances tr[data-asset="BTC"] td')
            usdt = page.locator('#balances tr[data-asset="USDT"] td')
            await expect(btc.nth(1)).to_have_text("10.00000000")
            await expect(usdt.nth(1)).to_have_text("100,000.00000000")
            await expect(page.locator("#user-state")).to_have_attribute("data-live", "1")
            stored = await page.evaluate("sessionStorage.getItem('spot.creds')")
            assert web_user.api_key in stored and await page.evaluate("localStorage.length") == 0

            # the page's own check against the filters, and the server's refusal, both shown
            msg = await place(page, "BUY", "50000.005", "0.1")
            assert "tick size" in msg, msg
            msg = await place(page, "BUY", "50000", "5")
            assert msg == "Account has insufficient balance for requested action.", msg

            # a resting sell: in open orders, in the book (marked as ours), its hold in the balances
            msg = await place(page, "SELL", "50000", "0.5")
            assert msg.endswith(": new"), msg
            sell_id = order_id(msg)
            await expect(page.locator(f'#open-orders tr[data-order-id="{sell_id}"]')).to_be_visible()
            ask = page.locator('#asks .level[data-price="50000.00000000"]')
            await expect(ask.locator(".q")).to_have_text("0.50000")
            await expect(ask).to_have_class(re.compile(r"\bmine\b"))
            await expect(btc.nth(2)).to_have_text("0.50000000")
            # a resting buy to cancel later
            msg = await place(page, "BUY", "49000", "0.1")
            buy_id = order_id(msg)
            await expect(page.locator('#bids .level[data-price="49000.00000000"] .q')).to_have_text("0.10000")
            await expect(page.locator("#open-count")).to_have_text("2")
            await expect(page.locator("#spread-val")).to_have_text("Spread 1,000.00 (2.000%)")
            await shot(page, "1-resting")

            # another user crosses the sell through the API: the fill, the trade, the balances
            bid = await other.order(
                symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2", price="50010"
            )
            assert bid["status"] == "FILLED", bid
            trade_id = bid["fills"][0]["tradeId"]
            await expect(page.locator(f'#trades tr[data-trade-id="{trade_id}"] td').nth(0)).to_have_text("50,000.00")
            await expect(page.locator(f'#trades tr[data-trade-id="{trade_id}"] td').nth(1)).to_have_text("0.20000")
            await expect(page.locator("#t-last")).to_have_text("50,000.00")
            await expect(page.locator("#t-high")).to_have_text("50,500.00")
            await expect(page.locator("#t-low")).to_have_text("48,500.00")
            await expect(page.locator("#t-vol")).to_have_text("0.30000")
            await expect(page.locator("#t-change")).to_have_text("-500.00 (-0.99%)")
            await expect(ask.locator(".q")).to_have_text("0.30000")
            await expect(page.locator(f'#open-orders tr[data-order-id="{sell_id}"] td').nth(6)).to_have_text("0.20000")
            await expect(btc.nth(1)).to_have_text("9.50000000")
            await expect(btc.nth(2)).to_have_text("0.30000000")
            # 100000 - 4900 held for the buy + 10000 - 0.1% fee
            await expect(usdt.nth(1)).to_have_text("105,090.00000000")
            await page.click('.tab[data-tab="fills"]')
            fill = page.locator(f'#fills tr[data-trade-id="{trade_id}"] td')
            await expect(fill.nth(1)).to_have_text("Sell")
            await expect(fill.nth(2)).to_have_text("50,000.00")
            await expect(fill.nth(3)).to_have_text("0.20000")
            await expect(fill.nth(6)).to_have_text("Maker")
            await shot(page, "2-filled")

            # cancel the buy from the page: gone from open orders and the book, its hold released
            await page.click('.tab[data-tab="open"]')
            await page.click(f'button[data-cancel="{buy_id}"]')
            await expect(page.locator(f'#open-orders tr[data-order-id="{buy_id}"]')).to_have_count(0)
            await expect(page.locator('#bids .level[data-price="49000.00000000"]')).to_have_count(0)
            await expect(usdt.nth(1)).to_have_text("109,990.00000000")
            await expect(usdt.nth(2)).to_have_text("0.00000000")
            await page.click('.tab[data-tab="history"]')
            await expect(page.locator(f'#order-history tr[data-order-id="{buy_id}"]')).to_have_attribute(
                "data-status", "CANCELED"
            )
            await expect(page.locator(f'#order-history tr[data-order-id="{sell_id}"]')).to_have_attribute(
                "data-status", "PARTIALLY_FILLED"
            )
            await page.click('.tab[data-tab="open"]')

            # the gateway restarts: both sockets come back, the book resynchronises from a new snapshot
            fleet.fleet.kill("gateway")
            await expect(page.locator("#conn")).not_to_have_attribute("data-state", "open")
            fleet.fleet.start("gateway")
            await asyncio.to_thread(fleet.fleet.wait_ready, ["gateway"], 60)
            await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=30_000)
            await expect(page.locator("#book-state")).to_have_attribute("data-synced", "1")
            await expect(ask.locator(".q")).to_have_text("0.30000")
            await other.order(
                symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.25", price="51000"
            )
            await expect(page.locator('#asks .level[data-price="51000.00000000"] .q')).to_have_text("0.25000")
            # the user stream is back too: an order placed elsewhere with the same key shows up
            await expect(page.locator("#user-state")).to_have_attribute("data-live", "1", timeout=30_000)
            elsewhere = await web_api.order(
                symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="48000"
            )
            await expect(page.locator(f'#open-orders tr[data-order-id="{elsewhere["orderId"]}"]')).to_be_visible()
            await expect(page.locator("#open-count")).to_have_text("2")
            await expect(usdt.nth(2)).to_have_text("480.00000000")
            final = await shot(page, "3-after-reconnect")
            if os.environ.get("SPOT_UPDATE_SCREENSHOT"):
                shutil.copyfile(ARTIFACTS / "web-2-filled.png", ROOT / "docs" / "screenshot.png")
            assert final.exists()
        except Exception:
            if "page" in locals():
                await shot(page, "failure")
            raise
        finally:
            await browser.close()
            await web_api.close()
            await other.close()
            await third.close()
    assert errors == [], errors
