"""What the OpenAPI description says about each route: parameters, form bodies, response bodies. Documentation only.

The routes read their parameters raw (query string and form body, signed exactly as sent) and refuse bad
ones with Binance's codes, so nothing here validates a request or reshapes a response: parameters reach
the description through ``openapi_extra`` and bodies through ``responses``, never through FastAPI's
validation, which would answer 422s and re-serialise the signed payload. The models forbid unknown
fields, so the schemathesis test (tests/e2e/test_schemathesis.py) notices any drift between this file and
what the routes send (a success body with a ``code`` key, for one, breaks ccxt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.candles import INTERVALS
from shared.domain import OrderStatus, OrderType, Side, StpMode, TimeInForce
from shared.order_request import CLIENT_ID, RESP_TYPES

# -- request parameters -------------------------------------------------------------------------------------

MAX_ID = 2**62  # deps.int_param's ceiling
DECIMAL_IN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"  # shared.amounts.DECIMAL_TEXT: no sign, no exponent


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False

    def query(self, required: bool | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required if required is None else required,
            "description": self.description,
            "schema": self.schema,
        }


def _int(lo: int = 0, hi: int = MAX_ID) -> dict[str, Any]:
    return {"type": "integer", "format": "int64", "minimum": lo, "maximum": hi}


SYMBOL_SCHEMA = {"type": "string", "pattern": r"^[A-Z0-9_.-]{1,20}$", "examples": ["BTCUSDT"]}
SYMBOL = Param("symbol", SYMBOL_SCHEMA, "Market, as listed by exchangeInfo.", required=True)
SYMBOL_OPTIONAL = Param("symbol", SYMBOL_SCHEMA, "One market; all markets when omitted.")
START_TIME = Param("startTime", _int(), "Earliest time, in milliseconds since the epoch.")
END_TIME = Param("endTime", _int(), "Latest time, in milliseconds since the epoch.")
ORDER_ID = Param("orderId", _int(), "The order's id.")
ORIG_CLIENT_ORDER_ID = Param(
    "origClientOrderId", {"type": "string", "pattern": CLIENT_ID.pattern}, "The order's client id."
)

FROM_ORDER_ID = Param("orderId", _int(), "From this order id on.")
FROM_TRADE_ID = Param("fromId", _int(), "From this trade id on.")
SYMBOLS = Param("symbols", {"type": "string", "examples": ['["BTCUSDT","ETHUSDT"]']}, "JSON array of markets.")
INTERVAL = Param("interval", {"type": "string", "enum": list(INTERVALS)}, "Candle length.", required=True)
TIME_ZONE = Param(
    "timeZone",
    {"type": "string", "pattern": r"^[+-]?[0-9]{1,2}(:[0-9]{2})?$", "examples": ["0", "8", "-1:00", "05:45"]},
    "Lay the candles out on this zone's clock, from -12:00 to +14:00 (default 0, UTC); times stay UTC.",
)
TICKER_TYPE = Param("type", {"type": "string", "enum": ["FULL", "MINI"], "default": "FULL"}, "FULL or MINI fields.")
WINDOW_SIZE = Param(
    "windowSize",
    {"type": "string", "pattern": r"^[1-9][0-9]?[mhd]$", "default": "1d", "examples": ["1m", "4h", "7d"]},
    "Rolling window: 1m-59m, 1h-23h or 1d-7d; it opens on a minute.",
)
LISTEN_KEY = Param("listenKey", {"type": "string", "maxLength": 80}, "From POST /userDataStream.", required=True)


def limit(default: int, hi: int) -> Param:
    return Param("limit", {**_int(1, hi), "default": default}, f"At most this many rows (default {default}).")


SIGNED = (
    Param("timestamp", _int(), "Milliseconds since the epoch; refused (-1021) outside the window.", required=True),
    Param("recvWindow", {**_int(0, 60_000), "default": 5000}, "Milliseconds the request stays valid (at most 60000)."),
    Param(
        "signature",
        {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "Hex HMAC-SHA256, keyed by the secret, of the query string followed by the body, exactly as sent, "
        "without this parameter.",
        required=True,
    ),
)

NEW_ORDER = (
    SYMBOL,
    Param("side", {"type": "string", "enum": list(Side)}, "BUY or SELL.", required=True),
    Param("type", {"type": "string", "enum": list(OrderType)}, "Order type.", required=True),
    Param("timeInForce", {"type": "string", "enum": list(TimeInForce)}, "LIMIT orders only; mandatory there."),
    Param("quantity", {"type": "string", "pattern": DECIMAL_IN, "examples": ["0.01"]}, "Base quantity."),
    Param("quoteOrderQty", {"type": "string", "pattern": DECIMAL_IN}, "MARKET only: spend (BUY) or receive (SELL)."),
    Param("price", {"type": "string", "pattern": DECIMAL_IN, "examples": ["50000"]}, "LIMIT and LIMIT_MAKER only."),
    Param(
        "stopPrice",
        {"type": "string", "pattern": DECIMAL_IN},
        "STOP_LOSS(_LIMIT), TAKE_PROFIT(_LIMIT): the last price that triggers it (or starts its trailing).",
    ),
    Param(
        "trailingDelta",
        {"type": "string", "pattern": "^[0-9]{1,9}$"},
        "STOP_LOSS(_LIMIT), TAKE_PROFIT(_LIMIT): trail by this many BIPS (TRAILING_DELTA filter).",
    ),
    Param("newClientOrderId", {"type": "string", "pattern": CLIENT_ID.pattern}, "Unique among open orders."),
    Param("newOrderRespType", {"type": "string", "enum": list(RESP_TYPES)}, "Reply shape (default FULL)."),
    Param("selfTradePreventionMode", {"type": "string", "enum": list(StpMode)}, "Default EXPIRE_MAKER."),
    Param("icebergQty", {"type": "string", "pattern": DECIMAL_IN}, "GTC LIMIT / LIMIT_MAKER: the slice it shows."),
    *SIGNED,
)

NEW_ORDER_EXAMPLE = {  # a limit buy as ccxt sends it, with a signature to recompute
    "timestamp": 1795573805473,
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.01",
    "price": "50000",
    "newOrderRespType": "FULL",
    "recvWindow": 10000,
    "signature": "0" * 64,
}

CANCEL_ORDER = (
    SYMBOL,
    ORDER_ID,
    ORIG_CLIENT_ORDER_ID,
    Param("newClientOrderId", {"type": "string", "pattern": CLIENT_ID.pattern}, "Client id of the cancel."),
    Param("cancelRestrictions", {"type": "string", "enum": ["ONLY_NEW", "ONLY_PARTIALLY_FILLED"]}, "Cancel only if."),
    *SIGNED,
)

TEST_ORDER = (
    *NEW_ORDER[:-3],
    Param("computeCommissionRates", {"type": "string", "enum": ["true", "false"]}, "Answer the rates (weight 20)."),
    *SIGNED,
)

CANCEL_REPLACE = (
    *NEW_ORDER[:-3],
    Param("cancelReplaceMode", {"type": "string", "enum": ["STOP_ON_FAILURE", "ALLOW_FAILURE"]}, "", required=True),
    Param("cancelOrderId", _int(), "The order to cancel (or cancelOrigClientOrderId)."),
    Param("cancelOrigClientOrderId", {"type": "string", "pattern": CLIENT_ID.pattern}, "The order to cancel."),
    Param("cancelNewClientOrderId", {"type": "string", "pattern": CLIENT_ID.pattern}, "Client id of the cancel."),
    Param("cancelRestrictions", {"type": "string", "enum": ["ONLY_NEW", "ONLY_PARTIALLY_FILLED"]}, "Cancel only if."),
    Param(
        "orderRateLimitExceededMode",
        {"type": "string", "enum": ["DO_NOTHING", "CANCEL_ONLY"]},
        "Over the order count: refuse all (default) or cancel only.",
    ),
    *SIGNED,
)

AMEND_ORDER = (
    SYMBOL,
    ORDER_ID,
    ORIG_CLIENT_ORDER_ID,
    Param("newClientOrderId", {"type": "string", "pattern": CLIENT_ID.pattern}, "The order's client id after."),
    Param("newQty", {"type": "string", "pattern": DECIMAL_IN}, "Below the order's quantity.", required=True),
    *SIGNED,
)

PREVENTED_MATCHES = (
    SYMBOL,
    Param("preventedMatchId", _int(), "One prevented match (weight 2)."),
    Param("orderId", _int(), "The prevented matches of this order, as taker or maker (weight 20)."),
    Param("fromPreventedMatchId", _int(), "With orderId: from this id on."),
    limit(500, 1000),
    *SIGNED,
)

ASSET_PATTERN = r"^[A-Z0-9]{1,20}$"
ADDRESS_PATTERN = r"^[A-Za-z0-9:_.-]{1,128}$"
NETWORK_PATTERN = r"^[A-Z0-9_-]{1,20}$"
WITHDRAW_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
COIN = Param("coin", {"type": "string", "pattern": ASSET_PATTERN, "examples": ["USDT"]}, "The asset.", required=True)
WITHDRAW_ORDER_ID = Param(
    "withdrawOrderId", {"type": "string", "pattern": WITHDRAW_ORDER_ID_PATTERN}, "The client's id of the withdrawal."
)
WITHDRAW_APPLY = (
    COIN,
    Param("amount", {"type": "string", "pattern": DECIMAL_IN, "examples": ["100"]}, "How much.", required=True),
    Param("address", {"type": "string", "pattern": ADDRESS_PATTERN}, "Where the funds go.", required=True),
    Param("network", {"type": "string", "pattern": NETWORK_PATTERN}, "The network (default: the coin's)."),
    WITHDRAW_ORDER_ID,
    *SIGNED,
)
WITHDRAW_HISTORY = (
    Param("coin", {"type": "string", "pattern": ASSET_PATTERN}, "Only this asset."),
    WITHDRAW_ORDER_ID,
    Param("status", {"type": "integer", "enum": [0, 1, 2, 3, 4, 5, 6]}, "4 Processing, 5 Failure, 6 Completed."),
    Param("offset", {**_int(0, 1_000_000), "default": 0}, "Rows to skip."),
    limit(1000, 1000),
    Param("startTime", _int(), "Earliest apply time (ms); default 90 days before endTime."),
    Param("endTime", _int(), "Latest apply time (ms); at most 90 days after startTime."),
    *SIGNED,
)

TOTAL_PARAMS = (
    "Binance reads the query string and the form body as one parameter set (totalParams = query + body); "
    "a parameter sent in both is refused (-1101)."
)


def in_query(*params: Param) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its parameters from the query string."""
    return {"parameters": [p.query() for p in params]}


def _form(params: tuple[Param, ...], *, marks_required: bool, example: dict[str, Any] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {p.name: {**p.schema, "description": p.description} for p in params},
        "additionalProperties": False,  # ingestion refuses unread parameters (-1104)
    }
    if marks_required:
        schema["required"] = [p.name for p in params if p.required]
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"required": False, "content": {"application/x-www-form-urlencoded": media}}


def in_form(*params: Param, example: dict[str, Any] | None = None) -> dict[str, Any]:
    """``openapi_extra`` of a POST: a form body as clients (ccxt) send it; the query may carry any of them."""
    return {
        "description": TOTAL_PARAMS,
        "parameters": [p.query(required=False) for p in params],
        "requestBody": _form(params, marks_required=True, example=example),
    }


def in_query_or_form(*params: Param) -> dict[str, Any]:
    """``openapi_extra`` of a DELETE: the query as clients (ccxt) send it; a form body may carry any of them."""
    return {
        "description": TOTAL_PARAMS,
        "parameters": [p.query() for p in params],
        "requestBody": _form(params, marks_required=False),
    }


# -- response bodies ----------------------------------------------------------------------------------------

DecimalStr = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$")]
Millis = Annotated[int, Field(ge=0)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiErrorBody(Body):
    """Every refusal, with a 4xx (a fault of ours: 5xx)."""

    code: int = Field(lt=0, description="Binance's error code, e.g. -1021 timestamp, -1022 signature.")
    msg: str


ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ApiErrorBody, "description": "Refused: Binance's code and message."},
    429: {
        "model": ApiErrorBody,
        "description": "Over a rate limit (-1003); retry after the given seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "required": True}},
    },
    "5XX": {"model": ApiErrorBody, "description": "Our fault or an unavailable backend; the outcome is unknown."},
}


class Empty(Body):
    pass


class ServerTime(Body):
    serverTime: Millis


class RateLimit(Body):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class Filter(BaseModel):
    """PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL, MAX_NUM_ORDERS: fields per type, as Binance's."""

    model_config = ConfigDict(extra="allow")
    filterType: str


class SymbolInfo(Body):
    symbol: str
    status: str
    baseAsset: str
    baseAssetPrecision: int
    quoteAsset: str
    quotePrecision: int
    quoteAssetPrecision: int
    baseCommissionPrecision: int
    quoteCommissionPrecision: int
    orderTypes: list[OrderType]
    icebergAllowed: bool
    ocoAllowed: bool
    otoAllowed: bool
    quoteOrderQtyMarketAllowed: bool
    allowTrailingStop: bool
    cancelReplaceAllowed: bool
    isSpotTradingAllowed: bool
    isMarginTradingAllowed: bool
    filters: list[Filter]
    permissions: list[str]
    permissionSets: list[list[str]]
    defaultSelfTradePreventionMode: StpMode
    allowedSelfTradePreventionModes: list[StpMode]


class ExchangeInfo(Body):
    timezone: str
    serverTime: Millis
    rateLimits: list[RateLimit]
    exchangeFilters: list[Filter]
    symbols: list[SymbolInfo]


Level = Annotated[list[DecimalStr], Field(min_length=2, max_length=2)]  # [price, quantity]


class Depth(Body):
    lastUpdateId: int = Field(ge=0, description="Depth stream diffs continue at U = lastUpdateId + 1.")
    bids: list[Level] = Field(description="[price, quantity], best first.")
    asks: list[Level] = Field(description="[price, quantity], best first.")


class Trade(Body):
    id: int
    price: DecimalStr
    qty: DecimalStr
    quoteQty: DecimalStr
    time: Millis
    isBuyerMaker: bool
    isBestMatch: bool


class AggTrade(Body):
    """Consecutive fills of one taker order at one price: ``a`` is its first trade's id, ``f``..``l`` its trades."""

    a: int
    p: DecimalStr
    q: DecimalStr
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: Millis
    m: bool
    M: bool


# prefixItems (a tuple per position) would say more, but schemathesis 4.32 rejects it as a response schema
Kline = Annotated[list[int | DecimalStr], Field(min_length=12, max_length=12)]


class Ticker24hr(Body):
    symbol: str
    priceChange: DecimalStr
    priceChangePercent: DecimalStr
    weightedAvgPrice: DecimalStr
    prevClosePrice: DecimalStr
    lastPrice: DecimalStr
    lastQty: DecimalStr
    bidPrice: DecimalStr
    bidQty: DecimalStr
    askPrice: DecimalStr
    askQty: DecimalStr
    openPrice: DecimalStr
    highPrice: DecimalStr
    lowPrice: DecimalStr
    volume: DecimalStr
    quoteVolume: DecimalStr
    openTime: Millis
    closeTime: Millis
    firstId: int
    lastId: int
    count: int


class TickerMini(Body):
    """``type=MINI``: no change, average, previous close, last quantity or book."""

    symbol: str
    openPrice: DecimalStr
    highPrice: DecimalStr
    lowPrice: DecimalStr
    lastPrice: DecimalStr
    volume: DecimalStr
    quoteVolume: DecimalStr
    openTime: Millis
    closeTime: Millis
    firstId: int
    lastId: int
    count: int


class TickerWindow(TickerMini):
    """The rolling-window and trading-day tickers (FULL)."""

    priceChange: DecimalStr
    priceChangePercent: DecimalStr
    weightedAvgPrice: DecimalStr


class AvgPrice(Body):
    mins: int
    price: DecimalStr
    closeTime: Millis


class TickerPrice(Body):
    symbol: str
    price: DecimalStr


class BookTicker(Body):
    symbol: str
    bidPrice: DecimalStr
    bidQty: DecimalStr
    askPrice: DecimalStr
    askQty: DecimalStr


class Order(Body):
    """shared.binance.order_json: GET /order, openOrders, allOrders."""

    symbol: str
    orderId: int
    orderListId: int
    clientOrderId: str
    price: DecimalStr
    origQty: DecimalStr
    executedQty: DecimalStr
    cummulativeQuoteQty: DecimalStr
    status: OrderStatus
    timeInForce: TimeInForce
    type: OrderType
    side: Side
    stopPrice: DecimalStr
    icebergQty: DecimalStr
    time: Millis
    updateTime: Millis
    isWorking: bool
    workingTime: Annotated[int, Field(ge=-1)]  # -1: a conditional order not triggered yet
    origQuoteOrderQty: DecimalStr
    selfTradePreventionMode: StpMode
    trailingDelta: int | None = None  # a trailing order's, in BIPS
    trailingTime: Annotated[int, Field(ge=-1)] | None = None  # ... when it started trailing (-1: not yet)
    preventedQuantity: DecimalStr | None = None  # what DECREMENT / TRANSFER took from it, when they did


class OrderAck(Body):
    """newOrderRespType=ACK, or any reply sent before the outcome was known."""

    symbol: str
    orderId: int
    clientOrderId: str
    transactTime: Millis


class Fill(Body):
    price: DecimalStr
    qty: DecimalStr
    commission: DecimalStr
    commissionAsset: str
    tradeId: int


class OrderResult(Order):
    """newOrderRespType=RESULT (no fills) or FULL."""

    transactTime: Millis
    fills: list[Fill] = Field(default_factory=list)


class CanceledOrder(Order):
    transactTime: Millis
    origClientOrderId: str


class CommissionPair(Body):
    maker: DecimalStr
    taker: DecimalStr


class Discount(Body):
    enabledForAccount: bool
    enabledForSymbol: bool
    discountAsset: str
    discount: DecimalStr


class TestOrderRates(Body):
    """``order/test`` with ``computeCommissionRates=true`` (without it: ``{}``)."""

    standardCommissionForOrder: CommissionPair
    taxCommissionForOrder: CommissionPair
    discount: Discount


class CodeMsg(Body):
    code: int
    msg: str


class CancelReplace(Body):
    """``order/cancelReplace``: both halves' results; in a -2021/-2022 refusal, its ``data``."""

    cancelResult: str = Field(pattern="^(SUCCESS|FAILURE)$")
    newOrderResult: str = Field(pattern="^(SUCCESS|FAILURE|NOT_ATTEMPTED)$")
    cancelResponse: CanceledOrder | CodeMsg
    newOrderResponse: OrderResult | OrderAck | CodeMsg | None


class CancelReplaceRefused(ApiErrorBody):
    """-2021 (409: one half done) or -2022 (400: neither), with what each half did; other refusals without."""

    data: CancelReplace | None = None


class AmendedOrder(Body):
    symbol: str
    orderId: int
    orderListId: int
    origClientOrderId: str
    clientOrderId: str
    price: DecimalStr
    qty: DecimalStr
    executedQty: DecimalStr
    preventedQty: DecimalStr
    quoteOrderQty: DecimalStr
    cumulativeQuoteQty: DecimalStr
    status: OrderStatus
    timeInForce: TimeInForce
    type: OrderType
    side: Side
    workingTime: Millis
    selfTradePreventionMode: StpMode


class Amended(Body):
    """``order/amend/keepPriority``."""

    transactTime: Millis
    executionId: int
    amendedOrder: AmendedOrder


class PreventedMatch(Body):
    symbol: str
    preventedMatchId: int
    takerOrderId: int
    makerSymbol: str
    makerOrderId: int
    tradeGroupId: int
    selfTradePreventionMode: StpMode
    price: DecimalStr
    makerPreventedQuantity: DecimalStr
    transactTime: Millis


class Balance(Body):
    asset: str
    free: DecimalStr
    locked: DecimalStr


class CommissionRates(Body):
    maker: DecimalStr
    taker: DecimalStr
    buyer: DecimalStr
    seller: DecimalStr


class AccountCommission(Body):
    """``GET /api/v3/account/commission``: the caller's rates on one symbol (its fee tier's, or the market's)."""

    symbol: str
    standardCommission: CommissionRates
    taxCommission: CommissionRates
    discount: Discount


class Account(Body):
    makerCommission: int
    takerCommission: int
    buyerCommission: int
    sellerCommission: int
    commissionRates: CommissionRates
    canTrade: bool
    canWithdraw: bool
    canDeposit: bool
    brokered: bool
    requireSelfTradePrevention: bool
    preventSor: bool
    updateTime: Millis
    accountType: str
    balances: list[Balance]
    permissions: list[str]
    uid: int


class MyTrade(Body):
    symbol: str
    id: int
    orderId: int
    orderListId: int
    price: DecimalStr
    qty: DecimalStr
    quoteQty: DecimalStr
    commission: DecimalStr
    commissionAsset: str
    time: Millis
    isBuyer: bool
    isMaker: bool
    isBestMatch: bool


class ListenKey(Body):
    listenKey: str


class WithdrawId(Body):
    id: str


class Withdrawal(Body):
    id: str
    amount: DecimalStr
    transactionFee: DecimalStr
    coin: str
    status: int
    address: str
    txId: str
    applyTime: str
    network: str
    transferType: int
    withdrawOrderId: str | None = None
    info: str
    confirmNo: int
    walletType: int
    txKey: str
    completeTime: str | None = None


def returns(model: Any, description: str = "Success.") -> dict[str, Any]:
    """Route arguments documenting ``model`` as the 200 body without enforcing it.

    ``response_model=Any`` keeps FastAPI's pydantic serialiser (several times faster than the encoder it
    falls back on without one) while leaving the schema to ``responses``: the return annotation
    (``dict[str, Any]``) would otherwise be merged into the documented schema.
    """
    return {"response_model": Any, "responses": {200: {"model": model, "description": description}}}
