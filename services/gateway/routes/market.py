"""Public market endpoints: exchangeInfo, depth, trades, aggTrades, klines, tickers, time, ping.

Depth, trades and klines are read from the state market-data keeps in Redis (``shared.rediskeys.market_key``,
a family market-data owns); exchangeInfo from the
markets table (cached in the replica).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared import errors
from shared.domain import Market
from shared.errors import ApiError
from shared.lifecycle import now_ms
from shared.rediskeys import market_key

from ..deps import GatewayDep, PublicParams, client_ip, int_param
from ..ratelimit import depth_weight, public_budget
from . import spec

router = APIRouter(prefix="/api/v3", responses=spec.ERRORS)
DAY_MS = 86_400_000


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


@router.get(
    "/klines",
    **spec.returns(
        list[spec.Kline],
        "Rows: open time, open, high, low, close, volume, close time, quote volume, trades, "
        "taker buy volume, taker buy quote volume, unused.",
    ),
    openapi_extra=spec.in_query(
        spec.SYMBOL,
        spec.INTERVAL,
        spec.START_TIME,
        spec.END_TIME,
        spec.limit(500, 1000),
    ),
)
async def klines(gw: GatewayDep, params: PublicParams) -> Response:
    m = gw.market(params.get("symbol"))
    interval = params.get("interval")
    if not interval:
        raise errors.mandatory("interval")
    if interval != "1m":
        raise ApiError(errors.BAD_INTERVAL, "Invalid interval.")
    limit = int_param(params, "limit", 500, 1, 1000)
    start = int_param(params, "startTime", 0)
    end = int_param(params, "endTime", 2**62)
    assert limit is not None and start is not None and end is not None
    rows: list[bytes]
    if params.get("startTime"):
        rows = cast(
            list[bytes], await gw.cache.zrangebyscore(market_key(m.symbol, "klines"), start, end, start=0, num=limit)
        )
    else:
        newest = cast(
            list[bytes], await gw.cache.zrevrangebyscore(market_key(m.symbol, "klines"), end, start, start=0, num=limit)
        )
        rows = list(reversed(newest))
    return raw_json(b"[" + b",".join(rows) + b"]")


async def _ticker(gw: GatewayDep, m: Market) -> dict[str, Any]:
    now = now_ms()
    pipe = gw.cache.pipeline(transaction=False)
    pipe.zrangebyscore(market_key(m.symbol, "klines"), now - DAY_MS, "+inf")
    rows, book = (await pipe.execute())[0], await _depth(gw, m, 1)
    candles = [orjson.loads(r) for r in rows]
    zero = Decimal(0)
    bid = book["bids"][0] if book["bids"] else ["0.00000000", "0.00000000"]
    ask = book["asks"][0] if book["asks"] else ["0.00000000", "0.00000000"]
    if candles:
        open_, last = Decimal(candles[0][1]), Decimal(candles[-1][4])
        high = max(Decimal(c[2]) for c in candles)
        low = min(Decimal(c[3]) for c in candles)
        volume = sum((Decimal(c[5]) for c in candles), zero)
        quote_volume = sum((Decimal(c[7]) for c in candles), zero)
        count = sum(int(c[8]) for c in candles)
        open_time = candles[0][0]
    else:
        open_ = last = high = low = volume = quote_volume = zero
        count, open_time = 0, now - DAY_MS
    change = last - open_
    pct = (change / open_ * 100) if open_ else zero
    wavg = (quote_volume / volume) if volume else zero
    return {
        "symbol": m.symbol,
        "priceChange": f"{change:.8f}",
        "priceChangePercent": f"{pct:.3f}",
        "weightedAvgPrice": f"{wavg:.8f}",
        "prevClosePrice": f"{open_:.8f}",
        "lastPrice": f"{last:.8f}",
        "lastQty": "0.00000000",
        "bidPrice": bid[0],
        "bidQty": bid[1],
        "askPrice": ask[0],
        "askQty": ask[1],
        "openPrice": f"{open_:.8f}",
        "highPrice": f"{high:.8f}",
        "lowPrice": f"{low:.8f}",
        "volume": f"{volume:.8f}",
        "quoteVolume": f"{quote_volume:.8f}",
        "openTime": open_time,
        "closeTime": now,
        "firstId": -1,
        "lastId": -1,
        "count": count,
    }


@router.get(
    "/ticker/24hr",
    **spec.returns(spec.Ticker24hr | list[spec.Ticker24hr]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL),
)
async def ticker_24hr(gw: GatewayDep, params: PublicParams) -> Any:
    if params.get("symbol"):
        return await _ticker(gw, gw.market(params["symbol"]))
    return [await _ticker(gw, m) for m in gw.markets.values()]


@router.get(
    "/ticker/price",
    **spec.returns(spec.TickerPrice | list[spec.TickerPrice]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL),
)
async def ticker_price(gw: GatewayDep, params: PublicParams) -> Any:
    async def one(m: Market) -> dict[str, str]:
        rows = await gw.cache.lrange(market_key(m.symbol, "trades"), 0, 0)
        return {"symbol": m.symbol, "price": orjson.loads(rows[0])["price"] if rows else "0.00000000"}

    if params.get("symbol"):
        return await one(gw.market(params["symbol"]))
    return [await one(m) for m in gw.markets.values()]


@router.get(
    "/ticker/bookTicker",
    **spec.returns(spec.BookTicker | list[spec.BookTicker]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL),
)
async def book_ticker(gw: GatewayDep, params: PublicParams) -> Any:
    async def one(m: Market) -> dict[str, str]:
        book = await _depth(gw, m, 1)
        bid = book["bids"][0] if book["bids"] else ["0.00000000", "0.00000000"]
        ask = book["asks"][0] if book["asks"] else ["0.00000000", "0.00000000"]
        return {"symbol": m.symbol, "bidPrice": bid[0], "bidQty": bid[1], "askPrice": ask[0], "askQty": ask[1]}

    if params.get("symbol"):
        return await one(gw.market(params["symbol"]))
    return [await one(m) for m in gw.markets.values()]
