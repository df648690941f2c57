"""The WebSocket API (``/ws-api/v3``): ping, time, market data, the session's logon, trading and account
requests, and the user data stream.

Methods, with Binance's names and answers: ``ping``, ``time``; ``depth``, ``trades.recent``,
``trades.historical``, ``trades.aggregate``, ``klines``, ``uiKlines``, ``avgPrice``,
``ticker.24hr``, ``ticker``, ``ticker.tradingDay``, ``ticker.price``, ``ticker.book`` (the REST endpoints'
answers, ``marketdata``, weighed on the connection's IP as REST's); ``session.logon``, ``session.status``,
``session.logout``, ``session.cancelOnDisconnect`` (ours: ``disconnect.py``); ``userDataStream.subscribe`` (a
logged-on session's account),
``userDataStream.subscribe.signature`` (ccxt >= 4.5.6) and ``userDataStream.unsubscribe``; the trading and
account methods of ``wstrade.METHODS`` (``order.place``, ``order.test``, ``order.status``, ``order.cancel``,
``order.cancelReplace``, ``order.amend.keepPriority``, ``openOrders.status``, ``account.status``,
``account.commission``, ``myTrades``; the order lists' ``orderList.place.oco``, ``.oto``, ``.otoco``,
``orderList.place``, ``orderList.cancel``, ``orderList.status``, ``openOrderLists.status``, ``allOrderLists``), each
REST's own function with REST's permission, weight and budget.

Session authentication, as Binance has it: ``session.logon``, signed with an Ed25519 key (an HMAC key is
refused with -4056: a session stands on a key whose secret the exchange never holds), binds the key to the
connection. Afterwards a request that needs a key may leave out ``apiKey`` and ``signature`` (never
``timestamp``) and is made as the key's owner; one that carries them is made with them. ``session.logout``
forgets the key and ends the subscription the session made (``eventStreamTerminated``), not one made with a
signature. Another ``session.logon`` replaces the key.

A logged-on key is looked up again (from the replica's cache, which ``spot admin key`` changes drop at once) at
every request that uses it: revoked, its user disabled or this address no longer allowed, and the session is
revoked with Binance's unsolicited ``{"id": null, "status": 401}`` -2015, the request refused the same way. A
subscription does not wait for a request: ``access.StreamGuard`` ends it within a second of such a change.
One subscription per connection (``subscriptionId`` 0): another account's is refused with -2035.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket

from shared import apikeys, errors
from shared.apikeys import ApiKey
from shared.errors import ApiError
from shared.lifecycle import now_ms
from shared.signing import check_timestamp, ws_api_payload

from . import disconnect, marketdata, wstrade
from .access import StreamGuard, Watched
from .deps import BAD_KEY, Caller, Gateway, client_ip
from .ratelimit import public_budget, signed_budget
from .ws import WS_API_MESSAGES_PER_S, MessageRate, Session, admitted, guard_of, run_session

router = APIRouter()
USER = "user"  # the session's stream name of the user data subscription
NOT_LOGGED_ON = "You are not authorized to execute this request."
BAD_SIGNATURE = "Signature for this request is not valid."
Params = dict[str, Any]


async def _recent_trades(gw: Gateway, params: dict[str, str], spend: marketdata.Spend) -> list[Any]:
    return [orjson.Fragment(row) for row in await marketdata.recent_trades(gw, params, spend)]


MARKET_DATA: dict[str, Callable[[Gateway, dict[str, str], marketdata.Spend], Awaitable[Any]]] = {
    "depth": marketdata.depth,
    "trades.recent": _recent_trades,
    "trades.historical": marketdata.historical_trades,
    "trades.aggregate": marketdata.agg_trades,
    "klines": marketdata.klines,
    "uiKlines": marketdata.klines,
    "avgPrice": marketdata.avg_price,
    "ticker.24hr": marketdata.ticker_24hr,
    "ticker": marketdata.ticker_window,
    "ticker.tradingDay": marketdata.ticker_trading_day,
    "ticker.price": marketdata.ticker_price,
    "ticker.book": marketdata.book_ticker,
}


@dataclass(frozen=True, slots=True)
class Logon:
    """The key a session acts with, since ``since`` (ms)."""

    api_key: str
    user_id: int
    since: int


class WsApi:
    """One ``/ws-api/v3`` connection: its logon, its user data subscription, the answers to its requests."""

    def __init__(self, ws: WebSocket, gw: Gateway, session: Session, guard: StreamGuard, ip: str) -> None:
        self.ws, self.gw, self.session, self.guard, self.ip = ws, gw, session, guard, ip
        self.connected_since = now_ms()
        self.logon: Logon | None = None
        self.watched: Watched | None = None  # the user data subscription
        self.by_session = False  # made through the logon: session.logout ends it
        self.on_drop = disconnect.CancelOnDisconnect(False, 0)  # session.cancelOnDisconnect
        self.methods: dict[str, Callable[[Params], Awaitable[Any]]] = {
            "ping": self.ping,
            "time": self.time,
            "session.logon": self.session_logon,
            "session.status": self.session_status,
            "session.logout": self.session_logout,
            "session.cancelOnDisconnect": self.cancel_on_disconnect,
            "userDataStream.subscribe": self.subscribe,
            "userDataStream.subscribe.signature": self.subscribe_signature,
            "userDataStream.unsubscribe": self.unsubscribe,
        }
        for name, answer in MARKET_DATA.items():
            self.methods[name] = functools.partial(self.market_data, answer)
        for name, method in wstrade.METHODS.items():
            self.methods[name] = functools.partial(self.trade, method)

    async def send(self, body: dict[str, Any]) -> None:
        await self.ws.send_text(orjson.dumps(body).decode())

    async def handle(self, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, req_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        except (orjson.JSONDecodeError, AttributeError):
            await self.send({"id": None, "status": 400, "error": {"code": -1100, "msg": "Malformed request."}})
            return
        run = self.methods.get(method) if isinstance(method, str) else None
        try:
            if run is None:
                raise ApiError(errors.ILLEGAL_CHARS, "Unknown method.")
            if not isinstance(params, dict):
                raise ApiError(errors.ILLEGAL_CHARS, "Malformed params.")
            result = await run(params)
        except ApiError as refused:
            await self.send({"id": req_id, "status": refused.http_status, "error": refused.body()})
            return
        await self.send({"id": req_id, "status": 200, "result": result})

    # --- methods --------------------------------------------------------------------------------------------

    async def ping(self, _: Params) -> dict[str, Any]:
        return {}

    async def time(self, _: Params) -> dict[str, Any]:
        return {"serverTime": now_ms()}

    async def market_data(self, answer: Callable[..., Awaitable[Any]], params: Params) -> Any:
        return await answer(self.gw, as_text(params), self.spend)

    async def spend(self, weight: int) -> None:
        """A market data request's weight, from the connection's IP: the budget REST's public endpoints spend."""
        await self.gw.limiter.weight(public_budget(self.ip), weight)

    async def trade(self, method: wstrade.Method, params: Params) -> Any:
        """A trading or account request: made as its signer, or as the session's key when it carries neither
        ``apiKey`` nor ``signature``; then REST's function, after REST's weight."""
        caller = await self._caller(params, method.permission)
        if method.weight:
            await self.gw.limiter.spend(caller.budget, method.weight, 0)
        return await method.run(self.gw, caller)

    async def _caller(self, params: Params, permission: str) -> Caller:
        if self.logon is not None and "apiKey" not in params and "signature" not in params:
            api_key, found = await self._session_key()
            self._timestamp(params)
        else:
            api_key = _api_key(params)
            found = await self._usable(api_key)
            self._verify(found, params)
        budget = signed_budget(found.user_id, api_key)
        if permission not in found.permissions:
            await self.gw.limiter.spend(budget, 1, 0)
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
        text = as_text({k: v for k, v in params.items() if k not in wstrade.WS_ONLY_PARAMS})
        return Caller(found.user_id, api_key, text, budget)

    async def session_logon(self, params: Params) -> dict[str, Any]:
        api_key = _api_key(params)
        found = await self._usable(api_key)
        if found.public_key is None:
            raise ApiError(errors.HMAC_KEY_NOT_SUPPORTED, "HMAC_SHA256 API key is not supported.")
        self._verify(found, params)
        self.logon = Logon(api_key, found.user_id, now_ms())
        return self.status()

    async def session_status(self, _: Params) -> dict[str, Any]:
        return self.status()

    async def session_logout(self, _: Params) -> dict[str, Any]:
        if self.by_session and self.watched is not None:
            await self._terminated("session logged out")
        self.logon = None
        self.on_drop = disconnect.CancelOnDisconnect(False, 0)  # a session without a key has no orders to guard
        return self.status()

    async def cancel_on_disconnect(self, params: Params) -> dict[str, Any]:
        """Turn cancel-on-disconnect on or off for the logged-on account: TRADE, as a cancel needs."""
        asked = disconnect.CancelOnDisconnect.parse(params)
        _, found = await self._session_key()
        if "TRADE" not in found.permissions:
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
        self.on_drop = asked
        return asked.answer()

    async def dropped(self) -> None:
        """The connection is gone: cancel the logged-on account's orders if the session asked for it."""
        if self.on_drop.enabled and self.logon is not None:
            await disconnect.cancel_everything(self.gw, self.logon.user_id, self.on_drop.grace_ms)

    async def subscribe(self, _: Params) -> dict[str, Any]:
        """The logged-on account's stream (Binance: an authenticated session only)."""
        api_key, found = await self._session_key()
        return await self._subscribe(api_key, found, by_session=True)

    async def subscribe_signature(self, params: Params) -> dict[str, Any]:
        """The stream of the key that signed the request, or of the session's key when it carries none."""
        if self.logon is not None and "apiKey" not in params and "signature" not in params:
            api_key, found = await self._session_key()
            by_session = True
        else:
            api_key = _api_key(params)
            found = await self._usable(api_key)
            self._verify(found, params)
            by_session = False
        self._timestamp(params)
        return await self._subscribe(api_key, found, by_session)

    async def unsubscribe(self, _: Params) -> dict[str, Any]:
        self.unwatch()
        await self.session.remove(USER)
        return {}

    # --- the session ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Binance's session status: the logged-on key (null if none) and whether a subscription is active."""
        return {
            "apiKey": self.logon.api_key if self.logon else None,
            "authorizedSince": self.logon.since if self.logon else None,
            "connectedSince": self.connected_since,
            "returnRateLimits": False,
            "serverTime": now_ms(),
            "userDataStream": self.watched is not None,
        }

    async def _usable(self, api_key: str) -> ApiKey:
        """The active key ``api_key`` may be used from this connection's address; -2015 otherwise."""
        found = await self.gw.api_key(api_key, self.ip)
        if found is None or not found.active or not found.allows_ip(self.ip):
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
        return found

    def _verify(self, found: ApiKey, params: Params) -> None:
        """The request's own signature over its parameters (Binance's WS-API payload), then its timestamp."""
        if not found.verifies(ws_api_payload(params), str(params.get("signature", ""))):
            raise ApiError(errors.INVALID_SIGNATURE, BAD_SIGNATURE, 401)
        self._timestamp(params)

    def _timestamp(self, params: Params) -> None:
        check_timestamp({k: str(v) for k, v in params.items()}, now_ms(), self.gw.settings.recv_window_max_ms)

    async def _session_key(self) -> tuple[str, ApiKey]:
        """The logged-on key, as it is now: gone, disabled, or refused at this address, and the session is
        revoked as Binance revokes it, and the request refused."""
        logon = self.logon
        if logon is None:
            raise ApiError(errors.UNAUTHORIZED, NOT_LOGGED_ON, 401)
        try:
            found = await self._usable(logon.api_key)
            if found.user_id != logon.user_id:
                raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
        except ApiError as refused:
            if refused.code == errors.REJECTED_MBX_KEY:
                self.logon = None
                await self.send({"id": None, "status": 401, "error": refused.body()})
            raise
        return logon.api_key, found

    # --- the user data subscription -------------------------------------------------------------------------

    async def _subscribe(self, api_key: str, found: ApiKey, by_session: bool) -> dict[str, Any]:
        if not found.permissions & apikeys.STREAM_PERMISSIONS:
            raise ApiError(errors.REJECTED_MBX_KEY, BAD_KEY, 401)
        if self.watched is not None and self.watched.user_id != found.user_id:
            raise ApiError(errors.SUBSCRIPTION_ACTIVE, "User Data Stream subscription already active.")
        await self.session.add(USER, self.gw.hub.channels.user(found.user_id))
        self.unwatch()
        self.watched = Watched(api_key, found.user_id, None, self._terminated)
        self.by_session = by_session
        self.guard.watch(self.watched)
        return {"subscriptionId": 0}

    async def _terminated(self, reason: str) -> None:
        """End the subscription and tell the client (``eventStreamTerminated``); the guard's ``end`` too."""
        self.unwatch()
        await self.session.remove(USER)
        await self.send({"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": now_ms()}})

    def unwatch(self) -> None:
        if self.watched is not None:
            self.guard.unwatch(self.watched)
        self.watched, self.by_session = None, False


def as_text(params: Params) -> dict[str, str]:
    """JSON parameters as the query string would carry them: numbers and booleans as text, ``symbols`` (a list)
    as its JSON; anything else is refused with -1100 naming the parameter."""
    out = {}
    for name, value in params.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int):
            out[name] = str(value)
        elif isinstance(value, list) and name == "symbols":
            out[name] = orjson.dumps(value).decode()
        else:
            raise ApiError(errors.ILLEGAL_CHARS, f"Illegal value for parameter '{str(name)[:40]}'.")
    return out


def _api_key(params: Params) -> str:
    api_key = params.get("apiKey")
    if not isinstance(api_key, str) or not api_key:
        raise errors.mandatory("apiKey")
    if len(api_key) > 128:
        raise ApiError(errors.BAD_API_KEY_FMT, "API-key format invalid.", 401)
    return api_key


@router.websocket("/ws-api/v3")
async def ws_api(ws: WebSocket) -> None:
    gw: Gateway = ws.app.state.gateway
    if not await admitted(ws, gw):
        return
    session = Session(ws, gw.hub, user_wrap=0)
    api = WsApi(ws, gw, session, guard_of(ws), client_ip(ws, gw.settings.trusted_proxy_hops))
    try:
        await run_session(ws, session, api.handle, MessageRate(WS_API_MESSAGES_PER_S))
    finally:
        api.unwatch()
        await api.dropped()
