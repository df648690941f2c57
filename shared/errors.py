"""Binance error codes, mapped once. Handlers raise ``ApiError``; the gateway renders ``{"code","msg"}``.

The codes and messages are Binance's, so clients such as ccxt raise the matching exception class
(see ../shared/BINANCE-API-CONTRACT.md, section 3).
"""

from __future__ import annotations

from collections.abc import Mapping

from .domain import FilterFailure


class ApiError(Exception):
    def __init__(self, code: int, msg: str, http_status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


class ApiErrorWithData(ApiError):
    """A refusal that says what part of the request was done: ``order/cancelReplace``'s -2021 (409) and -2022,
    whose ``data`` carries each half's result, as Binance answers them."""

    def __init__(self, code: int, msg: str, http_status: int, data: Mapping[str, object]) -> None:
        super().__init__(code, msg, http_status)
        self.data = data

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg, "data": self.data}


# -- the codes used, by name -------------------------------------------------------------------------------
UNKNOWN = -1000
DISCONNECTED = -1001
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESP = -1006
TIMEOUT = -1007
SERVER_BUSY = -1008
TOO_MANY_ORDERS = -1015
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM = -1102
UNKNOWN_PARAM = -1103
UNREAD_PARAMETERS = -1104
PARAM_EMPTY = -1105
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
BAD_SYMBOL = -1121
INVALID_LISTEN_KEY = -1125
BAD_INTERVAL = -1120
BAD_COMBINATION = -1128
FILTER_FAILURE = -1013
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
CANCEL_REPLACE_PARTIAL = -2021
CANCEL_REPLACE_FAILED = -2022
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015
SUBSCRIPTION_ACTIVE = -2035
TIME_WINDOW_TOO_LONG = -1127
ADDRESS_INVALID = -4007  # the wallet API's (sapi) codes: withdrawals
NO_SUCH_ASSET = -4018
BELOW_MIN_WITHDRAW = -4022
WITHDRAW_INSUFFICIENT = -4026
HMAC_KEY_NOT_SUPPORTED = -4056  # session.logon with an HMAC key: a session stands on an Ed25519 key only

INSUFFICIENT_BALANCE_MSG = "Account has insufficient balance for requested action."
DUPLICATE_ORDER_MSG = "Duplicate order sent."


def mandatory(name: str) -> ApiError:
    return ApiError(MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str) -> ApiError:
    return ApiError(
        ILLEGAL_CHARS,
        f"Illegal characters found in parameter '{name}'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$'.",
    )


def not_required(name: str) -> ApiError:
    return ApiError(PARAM_NOT_REQUIRED, f"Parameter '{name}' sent when not required.")


def from_filter(f: FilterFailure) -> ApiError:
    return ApiError(FILTER_FAILURE, f"Filter failure: {f.filter_type}")


def invalid_symbol() -> ApiError:
    return ApiError(BAD_SYMBOL, "Invalid symbol.")


def too_many_orders(retry_after_s: int, limit: int, interval_num: int, interval: str = "SECOND") -> ApiError:
    """-1015 for an order budget (``10 SECOND``, ``1 DAY``: Binance's intervalNum and interval)."""
    return ApiError(
        TOO_MANY_ORDERS,
        f"Too many new orders; current limit is {limit} orders per {interval_num} {interval}.",
        429,
        {"Retry-After": str(retry_after_s)},
    )


def rate_limited(retry_after_s: int, what: str, limit: int) -> ApiError:
    return ApiError(
        TOO_MANY_REQUESTS,
        f"Too many requests; current limit of {what} is {limit}. Please use "
        "WebSocket Streams for live updates to avoid polling the API.",
        429,
        {"Retry-After": str(retry_after_s)},
    )
