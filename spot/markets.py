"""Markets changed while the fleet runs: ``spot admin market add|update|halt|resume|delist|list``.

A change is written to Postgres first (the row every service reads when it starts, or meets a symbol it does
not know), then sent in-band as a ``MarketChangeRequest`` on the symbol's ``order-requests`` partition: the
order processor applies it at that point of the symbol's sequence (orders before it are decided by the old
row, orders after it by the new: a halt refuses from exactly there) and passes it on to the matcher, which
applies it at the same point (a new symbol's book, new fees). Settlement, market-data and the trade archiver
read a new market's row at its first record (``postgres.learn_markets``), so none of its events is passed
over. The gateways are told on the access channel (``apikeys.MARKETS_CHANGED``) and read the markets again:
exchangeInfo shows the status within a round trip.

Statuses are Binance's: ``TRADING`` accepts orders; ``HALT``, ``BREAK`` (the circuit breaker's) and
``END_OF_DAY`` (a delisted market) refuse new orders with -2010 "Market is closed."; cancels always go
through. ``--cancel-resting`` then cancels the whole book in sequence (a ``CancelAllRequest`` of every owner,
``cancels.py``), each hold released by settlement once. A market's tick, step, base and quote never change:
the resting orders' prices and sizes are counted in them (delist it and add another symbol instead).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from shared import apikeys, dbsecret, kafka, postgres, segment_fence
from shared import redis as sredis
from shared.config import Settings
from shared.domain import Market
from shared.ids import BLOCK
from shared.lifecycle import now_ms
from shared.messages import EVERY_OWNER, MarketChangeRequest, Topic, encode, spec_of

from . import cancels, keys

STATUSES: Final = ("TRADING", "HALT", "BREAK", "END_OF_DAY")
CLOSED: Final = ("HALT", "BREAK", "END_OF_DAY")
FIXED: Final = ("base", "quote", "tick_size", "step_size")  # what resting orders are counted in
DECIMALS: Final = ("tick_size", "step_size", "min_price", "max_price", "min_qty", "max_qty", "min_notional",
                   "max_notional", "bid_up", "bid_down", "ask_up", "ask_down")  # fmt: skip
FEES: Final = ("maker_fee_bps", "taker_fee_bps")
SHARE: Final = "breaker_pct"  # a share in [0, 1): 0 turns the breaker off
WINDOW: Final = "breaker_window_s"
MAX_WINDOW_S: Final = 86_400
MAX_FEE_BPS: Final = 1000  # 10 %: a typo, not a fee


def parse_fields(raw: dict[str, str | None]) -> dict[str, Any]:
    """Command-line values (``None``: not given) as ``Market`` fields; ``ValueError`` naming a bad one."""
    out: dict[str, Any] = {}
    for name, text in raw.items():
        if text is None:
            continue
        if name in DECIMALS:
            try:
                value = Decimal(text)
            except InvalidOperation:
                raise ValueError(f"--{name.replace('_', '-')} {text!r} is not a number") from None
            if not value.is_finite() or value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {text}")
            out[name] = value
        elif name == SHARE:
            try:
                share = Decimal(text)
            except InvalidOperation:
                raise ValueError(f"--breaker-pct {text!r} is not a number") from None
            if not share.is_finite() or not 0 <= share < 1:
                raise ValueError(f"--breaker-pct is a share from 0 (off) to below 1, got {text}")
            out[name] = share
        elif name == WINDOW:
            if not text.isdigit() or not 0 < int(text) <= MAX_WINDOW_S:
                raise ValueError(f"--breaker-window-s is 1 to {MAX_WINDOW_S} seconds, got {text}")
            out[name] = int(text)
        elif name in FEES:
            if not text.isdigit() or int(text) > MAX_FEE_BPS:
                raise ValueError(f"--{name.replace('_', '-')} is 0 to {MAX_FEE_BPS} basis points, got {text}")
            out[name] = int(text)
        elif name == "status":
            if text not in STATUSES:
                raise ValueError(f"status is one of {', '.join(STATUSES)}, got {text}")
            out[name] = text
        else:
            out[name] = text.strip().upper()
    return out


def build(symbol: str, fields: dict[str, Any]) -> Market:
    """A new market; the filters an operator leaves out default to one tick / one step up to wide bounds."""
    for name in ("base", "quote", "tick_size", "step_size"):
        if name not in fields:
            raise ValueError(f"a new market needs --{name.replace('_', '-')}")
    defaults = {
        "min_price": fields["tick_size"],
        "max_price": Decimal(1_000_000),
        "min_qty": fields["step_size"],
        "max_qty": Decimal(9000),
        "min_notional": Decimal(5),
        "status": "TRADING",
    }
    return _checked(symbol, {**defaults, **fields})


def _checked(symbol: str, fields: dict[str, Any], old: Market | None = None) -> Market:
    """The market these fields make (over ``old``'s); ``ValueError`` naming what a ``Market`` refuses."""
    m = Market(symbol, **fields) if old is None else dataclasses.replace(old, **fields)
    if not m.symbol.isalnum() or not m.symbol.isupper() or len(m.symbol) > 20:
        raise ValueError(f"a symbol is 1-20 capital letters or digits, got {m.symbol!r}")
    if m.min_price > m.max_price or m.min_qty > m.max_qty:
        raise ValueError(f"{m.symbol}: a minimum is above its maximum")
    return m


async def add(settings: Settings, symbol: str, fields: dict[str, Any]) -> dict[str, object]:
    market = build(symbol, fields)  # ValueError before anything is written
    conn = await dbsecret.connect(settings)
    try:
        if await _row(conn, symbol) is not None:
            raise ValueError(f"market {symbol} exists (spot admin market update changes it)")
        return await _publish(settings, conn, market)
    finally:
        await conn.close()


async def update(
    settings: Settings, symbol: str, fields: dict[str, Any], cancel_resting: bool = False, wait_s: float = 5.0
) -> dict[str, object]:
    """Change an existing market's row (status, filters, fees); ``LookupError`` if there is none."""
    conn = await dbsecret.connect(settings)
    try:
        old = await _row(conn, symbol)
        if old is None:
            raise LookupError(f"no market {symbol}")
        moved = [f for f in FIXED if f in fields and fields[f] != getattr(old, f)]
        if moved:
            raise ValueError(f"{symbol}: {', '.join(moved)} cannot change while orders rest in it")
        new = _checked(symbol, fields, old)
        said = await _publish(settings, conn, new)
    finally:
        await conn.close()
    if cancel_resting:
        said["canceled"] = (await cancels.cancel_all(settings, EVERY_OWNER, symbol, wait_s)).as_json()
    return said


async def listed(settings: Settings) -> list[dict[str, object]]:
    conn = await dbsecret.connect(settings)
    try:
        return [_json(m) for m in (await postgres.load_markets(conn)).values()]
    finally:
        await conn.close()


async def _row(conn: Any, symbol: str) -> Market | None:
    return (await postgres.load_markets(conn)).get(symbol)


async def _publish(settings: Settings, conn: Any, market: Market) -> dict[str, object]:
    """Postgres first, then in-band on the symbol's partition, then the gateways."""
    await postgres.upsert_market(conn, market)
    request_id = await conn.fetchval("SELECT nextval('order_id_blocks')") * BLOCK
    change = MarketChangeRequest(request_id=request_id, symbol=market.symbol, market=spec_of(market), ts=now_ms())
    async with kafka.producer(settings) as out, sredis.client(settings) as cache:
        topic = Topic.ORDER_REQUESTS.value
        await segment_fence.send_into_ring(settings, out, cache, topic, encode(change), market.symbol)
    await keys.publish(settings, apikeys.MARKETS_CHANGED)
    return {**_json(market), "requestId": request_id}


def _json(m: Market) -> dict[str, object]:
    return msgspec.structs.asdict(spec_of(m))
