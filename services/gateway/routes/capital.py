"""Withdrawals, as Binance's wallet API has them: ``POST /sapi/v1/capital/withdraw/apply`` and
``GET /sapi/v1/capital/withdraw/history``.

A request holds the amount of the caller's free balance (available -> held, with its ledger entry) until an
operator completes the withdrawal (the held funds leave the exchange) or fails it (they return to free):
``spot admin withdraw complete|fail``. The hold, its ledger entry and the row are one call of
``withdrawal_hold`` (``shared.funds``; migration 0011), the only money the gateway's database role may move.
The owner's stream hears ``balanceUpdate`` and ``outboundAccountPosition``. A key withdraws only with the
``WITHDRAW`` permission, which no key has unless an operator grants it, as Binance's "Enable Withdrawals".
Users see only their own withdrawals. Every parameter is bounded here, where it enters.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from shared import apikeys, errors, funds
from shared.amounts import parse_amount
from shared.domain import INT64_MAX, decimal_to_atoms
from shared.errors import ApiError
from shared.lifecycle import now_ms

from ..deps import Caller, DataCaller, Gateway, GatewayDep, int_param, signed
from . import spec

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sapi/v1/capital", responses=spec.ERRORS)
WithdrawCaller = Annotated[Caller, Depends(signed(apikeys.WITHDRAW))]

ASSET = re.compile(spec.ASSET_PATTERN.strip("^$"))
ADDRESS = re.compile(spec.ADDRESS_PATTERN.strip("^$"))
NETWORK = re.compile(spec.NETWORK_PATTERN.strip("^$"))
WITHDRAW_ORDER_ID = re.compile(spec.WITHDRAW_ORDER_ID_PATTERN.strip("^$"))
HISTORY_WINDOW_MS = 90 * 24 * 3600 * 1000  # Binance's: at most 90 days between startTime and endTime
OFFSET_MAX = 1_000_000


def _text(params: dict[str, str], name: str, pattern: re.Pattern[str], required: bool = False) -> str | None:
    value = params.get(name) or None
    if value is None:
        if required:
            raise errors.mandatory(name)
        return None
    if not pattern.fullmatch(value):
        if name == "address":
            raise ApiError(errors.ADDRESS_INVALID, "Address validation is not passed.")
        raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'.")
    return value


def _coin(gw: Gateway, params: dict[str, str]) -> str:
    coin = _text(params, "coin", ASSET, required=True)
    assert coin is not None
    if coin not in {a for m in gw.markets.values() for a in (m.base, m.quote)}:
        raise ApiError(errors.NO_SUCH_ASSET, "We don't have this asset.")
    return coin


def _amount(params: dict[str, str]) -> int:
    text = params.get("amount") or ""
    if not text:
        raise errors.mandatory("amount")
    atoms = decimal_to_atoms(parse_amount(text, "amount"))  # -1100 off the grammar, -1111 past 8 decimals
    if atoms <= 0:
        raise ApiError(errors.BELOW_MIN_WITHDRAW, "Not less than the minimum pick-up quantity 0.00000001.")
    if atoms > INT64_MAX:
        raise ApiError(errors.ILLEGAL_CHARS, f"Parameter 'amount' is past the largest amount, {text}.")
    return atoms


@router.post("/withdraw/apply", **spec.returns(spec.WithdrawId), openapi_extra=spec.in_form(*spec.WITHDRAW_APPLY))
async def withdraw_apply(gw: GatewayDep, caller: WithdrawCaller) -> dict[str, Any]:
    """Hold the amount for a withdrawal; the same ``withdrawOrderId`` again answers the same withdrawal."""
    p = caller.params
    coin, amount = _coin(gw, p), _amount(p)
    address = _text(p, "address", ADDRESS, required=True)
    assert address is not None
    network = _text(p, "network", NETWORK) or coin
    client_id = _text(p, "withdrawOrderId", WITHDRAW_ORDER_ID)
    now = now_ms()
    try:
        withdrawal, change = await funds.request_withdrawal(
            gw.db, caller.user_id, coin, amount, address, network, client_id, now
        )
    except funds.InsufficientBalance:
        raise ApiError(errors.WITHDRAW_INSUFFICIENT, "You have insufficient balance.") from None
    if change is not None:
        try:
            await funds.tell(gw.cache, gw.hub.channels, [change], now)
        except Exception as exc:  # committed: the answer stands; the stream's next position tells the balance
            log.warning("withdrawal %s: user stream not told (%s: %s)", withdrawal.withdraw_id, type(exc).__name__, exc)
    return {"id": withdrawal.withdraw_id}


@router.get(
    "/withdraw/history",
    **spec.returns(list[spec.Withdrawal]),
    openapi_extra=spec.in_query(*spec.WITHDRAW_HISTORY),
)
async def withdraw_history(gw: GatewayDep, caller: DataCaller) -> list[dict[str, Any]]:
    """The caller's withdrawals, newest first; by default those applied for in the last 90 days."""
    p = caller.params
    coin = _text(p, "coin", ASSET)
    client_id = _text(p, "withdrawOrderId", WITHDRAW_ORDER_ID)
    code = int_param(p, "status", None, 0, 6)
    status = None if code is None else funds.STATUS_OF_CODE.get(code)
    if code is not None and status is None:
        return []  # a status no withdrawal here takes (email sent, awaiting approval, ...)
    offset = int_param(p, "offset", 0, 0, OFFSET_MAX) or 0
    limit = int_param(p, "limit", 1000, 1, 1000) or 1000
    start, end = int_param(p, "startTime"), int_param(p, "endTime")
    if start is None and end is None:
        end = now_ms()
    if start is None:
        assert end is not None
        start = max(0, end - HISTORY_WINDOW_MS)
    if end is None:
        end = start + HISTORY_WINDOW_MS
    if end - start > HISTORY_WINDOW_MS:
        raise ApiError(errors.TIME_WINDOW_TOO_LONG, "More than 2160 hours between startTime and endTime.")
    query = funds.HistoryQuery(start, end, offset, limit, coin, client_id, status)
    return [w.as_binance() for w in await funds.history(gw.db, caller.user_id, query)]
