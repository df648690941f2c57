"""Public market endpoints: exchangeInfo, depth, trades, historicalTrades, aggTrades, klines, tickers, time, ping.

The answers are ``..marketdata``'s (the WebSocket API's too): depth and recent trades from the state market-data
keeps in Redis (``shared.rediskeys.market_key``, a family market-data owns); historical and aggregate trades from
the trades table, klines and tickers from the candles Postgres keeps with the trades (every interval and zone
since the first trade); exchangeInfo from the markets table (cached in the replica).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared import errors
from shared.domain import MAX_NUM_ALGO_ORDERS, TRAILING_DELTA_MAX, TRAILING_DELTA_MIN, Market, StpMode
from shared.errors import ApiError
from shared.filters import ICEBERG_PARTS_LIMIT
from shared.lifecycle import now_ms

from .. import marketdata
from ..deps import GatewayDep, PublicParams, client_ip
from ..ratelimit import public_budget
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


def _symbol_info(m: Market, max_orders: int) -> dict[str, Any]:
    """``max_orders``: MAX_NUM_ORDERS, a user's open orders on the symbol (the processor's cap)."""
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
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
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
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": f"{m.bid_up}",
                "bidMultiplierDown": f"{m.bid_down}",
                "askMultiplierUp": f"{m.ask_up}",
                "askMultiplierDown": f"{m.ask_down}",
                "avgPriceMins": 5,  # shared.tickers.AVG_PRICE_MS
            },
            {"filterType": "ICEBERG_PARTS", "limit": ICEBERG_PARTS_LIMIT},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": max_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_NUM_ALGO_ORDERS},
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": TRAILING_DELTA_MIN,
                "maxTrailingAboveDelta": TRAILING_DELTA_MAX,
                "minTrailingBelowDelta": TRAILING_DELTA_MIN,
                "maxTrailingBelowDelta": TRAILING_DELTA_MAX,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": [mode.value for mode in StpMode],  # with DECREMENT, TRANSFER
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
        "exchangeFilters": [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": s.exchange_open_orders_max}],
        "symbols": [_symbol_info(m, s.open_orders_max) for m in markets],
    }


@router.get("/depth", **spec.returns(spec.Depth), openapi_extra=spec.in_query(spec.SYMBOL, spec.limit(100, 5000)))
async def depth(request: Request, gw: GatewayDep, params: PublicParams) -> dict[str, Any]:
    """Weight by limit, as Binance's: 1-100 5, 101-500 25, 501-1000 50, 1001-5000 250."""
    return await marketdata.depth(gw, params, _spender(request, gw))


@router.get(
    "/trades", **spec.returns(list[spec.Trade]), openapi_extra=spec.in_query(spec.SYMBOL, spec.limit(500, 1000))
)
async def recent_trades(request: Request, gw: GatewayDep, params: PublicParams) -> Response:
    return raw_json(b"[" + b",".join(await marketdata.recent_trades(gw, params, _spender(request, gw))) + b"]")


@router.get(
    "/historicalTrades",
    **spec.returns(list[spec.Trade]),
    openapi_extra=spec.in_query(spec.SYMBOL, spec.FROM_TRADE_ID, spec.limit(500, 1000)),
)
async def historical_trades(request: Request, gw: GatewayDep, params: PublicParams) -> list[dict[str, Any]]:
    """Any trade since the symbol's first (Postgres), from ``fromId`` on, or the newest."""
    return await marketdata.historical_trades(gw, params, _spender(request, gw))


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
async def agg_trades(request: Request, gw: GatewayDep, params: PublicParams) -> list[dict[str, Any]]:
    """Consecutive fills of one taker order at one price are one aggregate (``shared.aggtrades``)."""
    return await marketdata.agg_trades(gw, params, _spender(request, gw))


KLINES_DOC = (
    "Rows: open time, open, high, low, close, volume, close time, quote volume, trades, taker buy volume, "
    "taker buy quote volume, unused. Every candle from the symbol's first trade to now, also those with no trade "
    "(zero volume at the previous close); with startTime the oldest, else the newest."
)
KLINES_PARAMS = spec.in_query(
    spec.SYMBOL, spec.INTERVAL, spec.START_TIME, spec.END_TIME, spec.TIME_ZONE, spec.limit(500, 1000)
)
TICKERS = spec.Ticker24hr | spec.TickerMini | list[spec.Ticker24hr] | list[spec.TickerMini]
WINDOW_TICKERS = spec.TickerWindow | spec.TickerMini | list[spec.TickerWindow] | list[spec.TickerMini]


def _spender(request: Request, gw: GatewayDep) -> marketdata.Spend:
    """Spend the rest of an endpoint's Binance weight from the caller's IP (PublicParams spent its first unit)."""

    async def spend(weight: int) -> None:
        if weight > 1:
            await gw.limiter.weight(public_budget(client_ip(request, gw.settings.trusted_proxy_hops)), weight - 1)

    return spend


@router.get("/klines", **spec.returns(list[spec.Kline], KLINES_DOC), openapi_extra=KLINES_PARAMS)
async def klines(request: Request, gw: GatewayDep, params: PublicParams) -> Response:
    return raw_json(orjson.dumps(await marketdata.klines(gw, params, _spender(request, gw))))


@router.get("/uiKlines", **spec.returns(list[spec.Kline], KLINES_DOC), openapi_extra=KLINES_PARAMS)
async def ui_klines(request: Request, gw: GatewayDep, params: PublicParams) -> Response:
    """Binance's klines "for presentation": the same candles here (ours have no gaps to smooth over)."""
    return raw_json(orjson.dumps(await marketdata.klines(gw, params, _spender(request, gw))))


@router.get(
    "/ticker/24hr",
    **spec.returns(TICKERS),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS, spec.TICKER_TYPE),
)
async def ticker_24hr(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    return await marketdata.ticker_24hr(gw, params, _spender(request, gw))


@router.get(
    "/ticker",
    **spec.returns(WINDOW_TICKERS),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS, spec.WINDOW_SIZE, spec.TICKER_TYPE),
)
async def ticker_window(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    return await marketdata.ticker_window(gw, params, _spender(request, gw))


@router.get(
    "/ticker/tradingDay",
    **spec.returns(WINDOW_TICKERS),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS, spec.TIME_ZONE, spec.TICKER_TYPE),
)
async def ticker_trading_day(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    return await marketdata.ticker_trading_day(gw, params, _spender(request, gw))


@router.get("/avgPrice", **spec.returns(spec.AvgPrice), openapi_extra=spec.in_query(spec.SYMBOL))
async def avg_price(request: Request, gw: GatewayDep, params: PublicParams) -> dict[str, Any]:
    return await marketdata.avg_price(gw, params, _spender(request, gw))


@router.get(
    "/ticker/price",
    **spec.returns(spec.TickerPrice | list[spec.TickerPrice]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS),
)
async def ticker_price(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    return await marketdata.ticker_price(gw, params, _spender(request, gw))


@router.get(
    "/ticker/bookTicker",
    **spec.returns(spec.BookTicker | list[spec.BookTicker]),
    openapi_extra=spec.in_query(spec.SYMBOL_OPTIONAL, spec.SYMBOLS),
)
async def book_ticker(request: Request, gw: GatewayDep, params: PublicParams) -> Any:
    return await marketdata.book_ticker(gw, params, _spender(request, gw))
