"""Public market endpoints: exchangeInfo, depth, trades, aggTrades, klines, tickers, time, ping.

Depth, trades and the tickers are read from the state market-data keeps in Redis (``shared.rediskeys.market_key``,
a family market-data owns); klines from the candles Postgres keeps with the trades (``..candles``, every interval
and zone since the first trade); exchangeInfo from the markets table (cached in the replica).
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared import errors
from shared.binance import kline_row
from shared.candles import DAY_MS, INTERVALS, MINUTE_MS, Interval, bucket_open, level_for, next_open, parse_time_zone
from shared.domain import Market
from shared.errors import ApiError
from shared.lifecycle import now_ms
from shared.rediskeys import market_key
from shared.tickers import AVG_PRICE_MS, avg_price, day_full, full, mini, parse_window, window_open

from .. import candles, tickers
from ..deps import GatewayDep, PublicParams, client_ip, int_param
from ..ratelimit import depth_weight, public_budget
from . import spec

router = APIRouter(prefix="/api/v3", responses=spec.ERRORS)


def raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get("/ping", **spec.returns(spec.Empty))
async def ping(_: PublicParams) -> dict[str, Any]:
    return {}


@router.get("/time", **spec.returns(spec.ServerTime))
async def server_time(_: PublicParams) -> dict[str, Any]:
    return {"serverTime": now_ms()}


def _symbol_info(m: Market) -> dict[str, Any]:
    return {
        "symbol": m.symbol,
        "status": m.status,
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": f"{m.min_price:.8f}",
                "maxPrice": f"{m.max_price:.8f}",
                "tickSize": f"{m.tick_size:.8f}",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": f"{m.min_qty:.8f}",
                "maxQty": f"{m.max_qty:.8f}",
                "stepSize": f"{m.step_size:.8f}",
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": f"{m.min_qty:.8f}",
                "maxQty": f"{m.max_qty:.8f}",
                "stepSize": f"{m.step_size:.8f}",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": f"{m.min_notional:.8f}",
                "applyMinToMarket": True,
                "maxNotional": f"{m.max_notional:.8f}",
                "applyMaxToMarket": True,
                "avgPriceMins": 0,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


@router.get(
    "/exchangeInfo",
    **spec.returns(spec.ExchangeInfo),
    openapi_extra=spec.in_query(
        spec.SYMBOL_OPTIONAL,
        spec.SYMBOLS,
    ),
)
async def exchange_info(gw: GatewayDep, params: PublicParams) -> dict[str, Any]:
    wanted: list[str] | None = None
    if params.get("symbol"):
        wanted = [params["symbol"]]
    elif params.get("symbols"):
        try:
            wanted = [str(s) for s in orjson.loads(params["symbols"])]
        except (orjson.JSONDecodeError, TypeError):
            raise ApiError(errors.ILLEGAL_CHARS, "Illegal characters found in parameter 'symbols'.") from None
    markets = [gw.market(s) for s in wanted] if wanted else list(gw.markets.values())
    s = gw.settings
    return {
        "timezone": "UTC",
        "serverTime": now_ms(),
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": s.request_weight_per_minute,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": s.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": s.orders_per_day},
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(m) for m in markets],
    }


async def _depth(gw: GatewayDep, m: Market, limit: int) -> dict[str, Any]:
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


@router.get("/depth", **spec.returns(spec.Depth), openapi_extra=spec.in_query(spec.SYMBOL, spec.limit(100, 5000)))
async def depth(request: Request, gw: GatewayDep, params: PublicParams) -> dict[str, Any]:
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 100, 1, 5000)
    assert limit is not None
    # Binance's weight by limit; the request's first unit was spent by PublicParams
    await gw.limiter.weight(public_budget(client_ip(request, gw.settings.trusted_proxy_hops)), depth_weight(limit) - 1)
    return await _depth(gw, m, limit)


async def _recent(gw: GatewayDep, m: Market, limit: int) -> list[dict[str, Any]]:
    rows = cast(list[bytes], await gw.cache.lrange(market_key(m.symbol, "trades"), 0, limit - 1))
    return [orjson.loads(r) for r in reversed(rows)]


@router.get(
    "/trades", **spec.returns(list[spec.Trade]), openapi_extra=spec.in_query(spec.SYMBOL, spec.limit(500, 1000))
)
async def trades(gw: GatewayDep, params: PublicParams) -> Response:
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 500, 1, 1000)
    assert limit is not None
    rows = cast(list[bytes], await gw.cache.lrange(market_key(m.symbol, "trades"), 0, limit - 1))
    return raw_json(b"[" + b",".join(reversed(rows)) + b"]")


@router.get(
    "/aggTrades",
    **spec.returns(list[spec.AggTrade]),
    openapi_extra=spec.in_query(
        spec.SYMBOL,
        spec.FROM_TRADE_ID,
        spec.START_TIME,
        spec.END_TIME,
        spec.limit(500, 1000),
    ),
)
async def agg_trades(gw: GatewayDep, params: PublicParams) -> list[dict[str, Any]]:
    m = gw.market(params.get("symbol"))
    limit = int_param(params, "limit", 500, 1, 1000)
    from_id = int_param(params, "fromId")
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    assert limit is not None
    out = []
    for t in await _recent(gw, m, 1000):
        if from_id is not None and t["id"] < from_id:
            continue
        if (start is not None and t["time"] < start) or (end is not None and t["time"] > end):
            continue
        out.append(
            {
                "a": t["id"],
                "p": t["price"],
                "q": t["qty"],
                "f": t["id"],
                "l": t["id"],
                "T": t["time"],
                "m": t["isBuyerMaker"],
                "M": True,
            }
        )
    return out[:limit] if from_id is not None or start is not None else out[-limit:]


KLINES_DOC = (
    "Rows: open time, open, high, low, close, volume, close time, quote volume, trades, taker buy volume, "
    "taker buy quote volume, unused. Every candle from the symbol's first trade to now, also those with no trade "
    "(zero volume at the previous close); with startTime the oldest, else the newest."
)
KLINES_PARAMS = spec.in_query(
    spec.SYMBOL, spec.INTERVAL, spec.START_TIME, spec.END_TIME, spec.TIME_ZONE, spec.limit(500, 1000)
)
KLINES_WEIGHT = 2  # Binance's, for klines and uiKlines


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


async def _klines(request: Request, gw: GatewayDep, params: dict[str, str]) -> Response:
    m = gw.market(params.get("symbol"))
    iv = _interval(params)
    offset = time_zone(params)
    limit = int_param(params, "limit", 500, 1, 1000)
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    assert limit is not None
    await _spend(request, gw, KLINES_WEIGHT)
    rows = await candles.klines(gw.db, m.symbol, iv, offset, now=now_ms(), start=start, end=end, limit=limit)
    return raw_json(orjson.dumps([kline_row(m, c) for c in rows]))


@router.get("/klines", **spec.returns(list[spec.Kline], KLINES_DOC), openapi_extra=KLINES_PARAMS)
async def klines(request: Request, gw: GatewayDep, params: PublicParams) -> Response:
    return await _klines(request, gw, params)


@router.get("/uiKlines", **spec.returns(list[spec.Kline], KLINES_DOC), openapi_extra=KLINES_PARAMS)
async def ui_klines(request: Request, gw: GatewayDep, params: PublicParams) -> Response:
    """Binance's klines "for presentation": the same candles here (ours have no gaps to smooth over)."""
    return await _klines(request, gw, params)


# -- tickers ---------------------------------------------------------------------------------------------------
MAX_SYMBOLS = 100  # Binance's cap on ``symbols`` for the rolling and trading-day tickers
TICKER_TYPES = ("FULL", "MINI")


def _markets(gw: GatewayDep, params: dict[str, str], *, required: bool = False) -> tuple[list[Market], bool]:
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
        raise ApiError(errors.TOO_MANY_PARAMETERS, f"Parameter 'symbols' has {len(names)} symbols, at most {MAX_SYMBOLS}.")
    if len(set(names)) != len(names):
        raise ApiError(errors.TOO_MANY_PARAMETERS, "Duplicate values for parameter 'symbols'.")
    return [gw.market(n) for n in names], False


def _type(params: dict[str, str]) -> str:
    kind = params.get("type") or "FULL"
    if kind not in TICKER_TYPES:
        raise ApiError(errors.ILLEGAL_CHARS, f"Parameter 'type' must be FULL or MINI, not {kind[:20]!r}.")
    return kind


async def _spend(request: Request, gw: GatewayDep, weight: int) -> None:
    """Spend the rest of an endpoint's Binance weight (PublicParams spent its first unit)."""
    if weight > 1:
        await gw.limiter.weight(public_budget(client_ip(request, gw.settings.trusted_proxy_hops)), weight - 1)


def _answer(rows: list[dict[str, Any]], one: bool) -> Any:
    return rows[0] if one else rows


def day_weight(count: int, named: bool) -> int:
    """``ticker/24hr``'s weight: 2 for up to 20 symbols, 40 up to 100, 80 past that or for all of them."""
    if not named or count > 100:
        return 80
    return 2 if count <= 20 else 40


@router.get(
    "/ticker/24hr",
    **spec.returns(spec.Ticker24hr | spec.TickerMini | list[spec.Ticker24hr] | list[spec.TickerMini]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS, spec.TICKER_TYPE),
)
async def ticker_24hr(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    markets, one = _markets(gw, params)
    kind = _type(params)
    await _spend(request, gw, day_weight(len(markets), bool(params.get("symbol") or params.get("symbols"))))
    now = now_ms()
    symbols = [m.symbol for m in markets]
    window = await tickers.window(gw.db, symbols, MINUTE_MS, window_open(now, DAY_MS), now)
    if kind == "MINI":
        return _answer([mini(m, window[m.symbol]) for m in markets], one)
    last, book = await tickers.last_trades(gw.db, symbols), await tickers.books(gw.cache, symbols)
    rows = [day_full(m, window[m.symbol], last.get(m.symbol, (0, 0, 0))[1], book[m.symbol]) for m in markets]
    return _answer(rows, one)


@router.get(
    "/ticker",
    **spec.returns(spec.TickerWindow | spec.TickerMini | list[spec.TickerWindow] | list[spec.TickerMini]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS, spec.WINDOW_SIZE, spec.TICKER_TYPE),
)
async def ticker_window(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    """The rolling-window ticker: ``windowSize`` from 1m to 7d (default 1d), opening on a minute."""
    markets, one = _markets(gw, params, required=True)
    kind = _type(params)
    try:
        size = parse_window(params.get("windowSize") or "1d")
    except ValueError as exc:
        raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter 'windowSize': {exc}.") from None
    await _spend(request, gw, min(4 * len(markets), 200))
    now = now_ms()
    window = await tickers.window(gw.db, [m.symbol for m in markets], MINUTE_MS, window_open(now, size), now)
    shape = mini if kind == "MINI" else full
    return _answer([shape(m, window[m.symbol]) for m in markets], one)


@router.get(
    "/ticker/tradingDay",
    **spec.returns(spec.TickerWindow | spec.TickerMini | list[spec.TickerWindow] | list[spec.TickerMini]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS, spec.TIME_ZONE, spec.TICKER_TYPE),
)
async def ticker_trading_day(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    """Today so far on the clock of ``timeZone`` (default UTC): openTime and closeTime are the day's bounds."""
    markets, one = _markets(gw, params, required=True)
    kind = _type(params)
    offset = time_zone(params)
    await _spend(request, gw, min(4 * len(markets), 200))
    day = INTERVALS["1d"]
    opens = bucket_open(now_ms(), day, offset)
    closes = next_open(opens, day, offset) - 1
    symbols = [m.symbol for m in markets]
    window = await tickers.window(gw.db, symbols, level_for(day, offset), opens, closes)
    shape = mini if kind == "MINI" else full
    return _answer([shape(m, window[m.symbol]) for m in markets], one)


@router.get("/avgPrice", **spec.returns(spec.AvgPrice), openapi_extra=spec.in_query(spec.SYMBOL))
async def avg_price_now(request: Request, gw: GatewayDep, params: PublicParams) -> dict[str, Any]:
    """The volume-weighted price of the last 5 minutes (from the minute they open on, as the ``@avgPrice``
    stream); the last price when nothing traded in them."""
    m = gw.market(params.get("symbol"))
    await _spend(request, gw, 2)
    volume, quote = await tickers.recent(gw.db, m.symbol, window_open(now_ms(), AVG_PRICE_MS))
    last = (await tickers.last_trades(gw.db, [m.symbol])).get(m.symbol, (0, 0, 0))
    return {"mins": AVG_PRICE_MS // MINUTE_MS, "price": avg_price(m, volume, quote, last[0]), "closeTime": last[2]}


@router.get(
    "/ticker/price",
    **spec.returns(spec.TickerPrice | list[spec.TickerPrice]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS),
)
async def ticker_price(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    markets, one = _markets(gw, params)
    await _spend(request, gw, 2 if one else 4)
    last = await tickers.last_trades(gw.db, [m.symbol for m in markets])
    rows = [{"symbol": m.symbol, "price": m.fmt_price(last.get(m.symbol, (0, 0, 0))[0])} for m in markets]
    return _answer(rows, one)


@router.get(
    "/ticker/bookTicker",
    **spec.returns(spec.BookTicker | list[spec.BookTicker]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS),
)
async def book_ticker(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    markets, one = _markets(gw, params)
    await _spend(request, gw, 2 if one else 4)
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
