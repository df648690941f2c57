"""Depth, trades, klines and tickers, answered the same over REST (``routes/market.py``) and the WebSocket API
(``wsapi.py``).

Each answer takes the request's parameters as text (Binance's names; the WebSocket API's JSON values become the
same text first, ``wsapi.as_text``), refuses a bad one with Binance's code before anything is read, spends the
request's weight through ``spend`` (the caller's budget: REST's IP, the connection's), and answers from the
candles and trades Postgres keeps (``candles``, ``tickers``, ``trades``) and the depth and recent trades
market-data keeps in Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
import orjson

from shared import errors
from shared.aggtrades import AggTrade, agg_json
from shared.binance import kline_row
from shared.candles import (
    DAY_MS,
    HOUR_MS,
    INTERVALS,
    MINUTE_MS,
    Interval,
    bucket_open,
    level_for,
    next_open,
    parse_time_zone,
)
from shared.domain import Market
from shared.errors import ApiError
from shared.lifecycle import now_ms
from shared.rediskeys import market_key
from shared.tickers import AVG_PRICE_MS, day_full, full, mini, parse_window, window_open
from shared.tickers import avg_price as average

from . import candles, tickers, trades
from .deps import Gateway, int_param
from .ratelimit import depth_weight

Spend = Callable[[int], Awaitable[None]]  # spends a request's weight, or raises -1003 past the budget
KLINES_WEIGHT = 2  # Binance's, for klines and uiKlines
MAX_SYMBOLS = 100  # Binance's cap on ``symbols`` for the rolling and trading-day tickers
TICKER_TYPES = ("FULL", "MINI")
TRADES_WEIGHT, AGG_TRADES_WEIGHT = 25, 4  # Binance's: trades and historicalTrades 25, aggTrades 4
AGG_WINDOW_MS = HOUR_MS  # Binance: startTime and endTime at most an hour apart; endTime alone: the hour before it


async def depth(gw: Gateway, params: dict[str, str], spend: Spend) -> dict[str, Any]:
    """The book's best ``limit`` levels a side (100, at most 5,000) at ``lastUpdateId``, as market-data last
    pushed them (the same id sequence as the diff streams); weighed by limit (``ratelimit.depth_weight``)."""
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 100, 1, 5000)
    assert limit is not None
    await spend(depth_weight(limit))
    pipe = gw.cache.pipeline(transaction=True)
    pipe.get(market_key(m.symbol, "depth_seq"))
    pipe.hgetall(market_key(m.symbol, "bids"))
    pipe.hgetall(market_key(m.symbol, "asks"))
    seq, bids, asks = await pipe.execute()
    top_bids = sorted(((int(p), int(q)) for p, q in bids.items()), reverse=True)[:limit]
    top_asks = sorted((int(p), int(q)) for p, q in asks.items())[:limit]
    return {
        "lastUpdateId": int(seq or 0),
        "bids": [[m.fmt_price(p), m.fmt_qty(q)] for p, q in top_bids],
        "asks": [[m.fmt_price(p), m.fmt_qty(q)] for p, q in top_asks],
    }


async def recent_trades(gw: Gateway, params: dict[str, str], spend: Spend) -> list[bytes]:
    """``trades``: the newest ``limit`` (500, at most 1,000) trades, oldest first, as JSON rows: the ones
    market-data keeps in Redis."""
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 500, 1, 1000)
    assert limit is not None
    await spend(TRADES_WEIGHT)
    rows = cast(list[bytes], await gw.cache.lrange(market_key(m.symbol, "trades"), 0, limit - 1))
    rows.reverse()
    return rows


def _trade_row(m: Market, r: asyncpg.Record) -> dict[str, Any]:
    """A stored trade as a row of ``trades`` and ``historicalTrades`` (``shared.binance.trade_json``'s fields)."""
    trade_id, price, qty, _, _, buyer_is_maker, ts = r
    return {
        "id": trade_id,
        "price": m.fmt_price(price),
        "qty": m.fmt_qty(qty),
        "quoteQty": m.fmt_notional(price * qty),
        "time": ts,
        "isBuyerMaker": buyer_is_maker,
        "isBestMatch": True,
    }


async def historical_trades(gw: Gateway, params: dict[str, str], spend: Spend) -> list[dict[str, Any]]:
    """``historicalTrades``: ``limit`` (500, at most 1,000) trades from ``fromId`` on, or the newest, from
    Postgres: any trade since the symbol's first."""
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 500, 1, 1000)
    from_id = int_param(params, "fromId")
    assert limit is not None
    await spend(TRADES_WEIGHT)
    return [_trade_row(m, r) for r in await trades.historical(gw.db, m.symbol, from_id, limit)]


async def agg_trades(gw: Gateway, params: dict[str, str], spend: Spend) -> list[dict[str, Any]]:
    """``aggTrades``: ``limit`` (500, at most 1,000) aggregates (``shared.aggtrades``) from ``fromId``, or from
    ``startTime`` (to ``endTime``, at most an hour later), or the newest; from Postgres, over all history."""
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 500, 1, 1000)
    from_id = int_param(params, "fromId")
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    assert limit is not None
    if from_id is not None and (start is not None or end is not None):
        raise ApiError(errors.BAD_COMBINATION, "Combination of optional parameters invalid.")
    if start is not None and end is not None and not 0 <= end - start <= AGG_WINDOW_MS:
        raise ApiError(errors.TIME_WINDOW_TOO_LONG, "More than 1 hours between startTime and endTime.")
    await spend(AGG_TRADES_WEIGHT)
    found: list[AggTrade]
    if from_id is not None:
        found = await trades.aggregates_from(gw.db, m.symbol, from_id, limit)
    elif start is not None or end is not None:
        if start is None:
            assert end is not None
            start = max(0, end - AGG_WINDOW_MS)
        first = await trades.first_at(gw.db, m.symbol, start)
        found = [] if first is None else await trades.aggregates_from(gw.db, m.symbol, first, limit, start, end)
    else:
        found = await trades.newest_aggregates(gw.db, m.symbol, limit)
    return [agg_json(m, a) for a in found]


def _interval(params: dict[str, str]) -> Interval:
    name = params.get("interval")
    if not name:
        raise errors.mandatory("interval")
    iv = INTERVALS.get(name)
    if iv is None:
        raise ApiError(errors.BAD_INTERVAL, "Invalid interval.")
    return iv


def time_zone(params: dict[str, str]) -> int:
    """``timeZone`` as an offset in ms (0 when not sent); -1100 naming the range when it is not one."""
    raw = params.get("timeZone")
    if raw is None or raw == "":
        return 0
    try:
        return parse_time_zone(raw)
    except ValueError as exc:
        raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter 'timeZone': {exc}.") from None


async def klines(gw: Gateway, params: dict[str, str], spend: Spend) -> list[list[object]]:
    """``klines`` and ``uiKlines``: Binance's rows."""
    m = gw.market(params.get("symbol"))
    iv = _interval(params)
    offset = time_zone(params)
    limit = int_param(params, "limit", 500, 1, 1000)
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    assert limit is not None
    await spend(KLINES_WEIGHT)
    rows = await candles.klines(gw.db, m.symbol, iv, offset, now=now_ms(), start=start, end=end, limit=limit)
    return [kline_row(m, c) for c in rows]


def _markets(gw: Gateway, params: dict[str, str], *, required: bool = False) -> tuple[list[Market], bool]:
    """The markets ``symbol`` or ``symbols`` name (every market when neither and not ``required``), and
    whether the answer is one object (``symbol``) rather than a list."""
    one, many = params.get("symbol"), params.get("symbols")
    if one and many:
        raise ApiError(errors.BAD_COMBINATION, "Combination of optional parameters invalid.")
    if one:
        return [gw.market(one)], True
    if not many:
        if required:
            raise ApiError(errors.MANDATORY_PARAM, "Param 'symbol' or 'symbols' must be sent, but both were empty.")
        return list(gw.markets.values()), False
    try:
        names = orjson.loads(many)
    except orjson.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ApiError(errors.ILLEGAL_CHARS, "Illegal characters found in parameter 'symbols'; send a JSON array.")
    if len(names) > MAX_SYMBOLS:
        raise ApiError(
            errors.TOO_MANY_PARAMETERS, f"Parameter 'symbols' has {len(names)} symbols, at most {MAX_SYMBOLS}."
        )
    if len(set(names)) != len(names):
        raise ApiError(errors.TOO_MANY_PARAMETERS, "Duplicate values for parameter 'symbols'.")
    return [gw.market(n) for n in names], False


def _type(params: dict[str, str]) -> str:
    kind = params.get("type") or "FULL"
    if kind not in TICKER_TYPES:
        raise ApiError(errors.ILLEGAL_CHARS, f"Parameter 'type' must be FULL or MINI, not {kind[:20]!r}.")
    return kind


def _answer(rows: list[dict[str, Any]], one: bool) -> Any:
    return rows[0] if one else rows


def day_weight(count: int, named: bool) -> int:
    """``ticker/24hr``'s weight: 2 for up to 20 symbols, 40 up to 100, 80 past that or for all of them."""
    if not named or count > 100:
        return 80
    return 2 if count <= 20 else 40


async def ticker_24hr(gw: Gateway, params: dict[str, str], spend: Spend) -> Any:
    """The rolling day, opening on a minute; FULL with the previous close, the last quantity and the book."""
    markets, one = _markets(gw, params)
    kind = _type(params)
    await spend(day_weight(len(markets), bool(params.get("symbol") or params.get("symbols"))))
    now = now_ms()
    symbols = [m.symbol for m in markets]
    window = await tickers.window(gw.db, symbols, MINUTE_MS, window_open(now, DAY_MS), now)
    if kind == "MINI":
        return _answer([mini(m, window[m.symbol]) for m in markets], one)
    last, book = await tickers.last_trades(gw.db, symbols), await tickers.books(gw.cache, symbols)
    rows = [day_full(m, window[m.symbol], last.get(m.symbol, (0, 0, 0))[1], book[m.symbol]) for m in markets]
    return _answer(rows, one)


async def ticker_window(gw: Gateway, params: dict[str, str], spend: Spend) -> Any:
    """The rolling-window ticker: ``windowSize`` from 1m to 7d (default 1d), opening on a minute."""
    markets, one = _markets(gw, params, required=True)
    kind = _type(params)
    try:
        size = parse_window(params.get("windowSize") or "1d")
    except ValueError as exc:
        raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter 'windowSize': {exc}.") from None
    await spend(min(4 * len(markets), 200))
    now = now_ms()
    window = await tickers.window(gw.db, [m.symbol for m in markets], MINUTE_MS, window_open(now, size), now)
    shape = mini if kind == "MINI" else full
    return _answer([shape(m, window[m.symbol]) for m in markets], one)


async def ticker_trading_day(gw: Gateway, params: dict[str, str], spend: Spend) -> Any:
    """Today so far on the clock of ``timeZone`` (default UTC): openTime and closeTime are the day's bounds."""
    markets, one = _markets(gw, params, required=True)
    kind = _type(params)
    offset = time_zone(params)
    await spend(min(4 * len(markets), 200))
    day = INTERVALS["1d"]
    opens = bucket_open(now_ms(), day, offset)
    closes = next_open(opens, day, offset) - 1
    symbols = [m.symbol for m in markets]
    window = await tickers.window(gw.db, symbols, level_for(day, offset), opens, closes)
    shape = mini if kind == "MINI" else full
    return _answer([shape(m, window[m.symbol]) for m in markets], one)


async def avg_price(gw: Gateway, params: dict[str, str], spend: Spend) -> dict[str, Any]:
    """The volume-weighted price of the last 5 minutes (from the minute they open on, as the ``@avgPrice``
    stream); the last price when nothing traded in them."""
    m = gw.market(params.get("symbol"))
    await spend(2)
    volume, quote = await tickers.recent(gw.db, m.symbol, window_open(now_ms(), AVG_PRICE_MS))
    last = (await tickers.last_trades(gw.db, [m.symbol])).get(m.symbol, (0, 0, 0))
    return {"mins": AVG_PRICE_MS // MINUTE_MS, "price": average(m, volume, quote, last[0]), "closeTime": last[2]}


async def ticker_price(gw: Gateway, params: dict[str, str], spend: Spend) -> Any:
    """The last trade's price."""
    markets, one = _markets(gw, params)
    await spend(2 if one else 4)
    last = await tickers.last_trades(gw.db, [m.symbol for m in markets])
    return _answer([{"symbol": m.symbol, "price": m.fmt_price(last.get(m.symbol, (0, 0, 0))[0])} for m in markets], one)


async def book_ticker(gw: Gateway, params: dict[str, str], spend: Spend) -> Any:
    """The best bid and ask, from market-data's depth."""
    markets, one = _markets(gw, params)
    await spend(2 if one else 4)
    book = await tickers.books(gw.cache, [m.symbol for m in markets])
    rows = []
    for m in markets:
        bid, bid_qty, ask, ask_qty = book[m.symbol]
        rows.append(
            {
                "symbol": m.symbol,
                "bidPrice": m.fmt_price(bid),
                "bidQty": m.fmt_qty(bid_qty),
                "askPrice": m.fmt_price(ask),
                "askQty": m.fmt_qty(ask_qty),
            }
        )
    return _answer(rows, one)
