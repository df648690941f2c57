"""Open-loop load for the soak: ``python -m bench.soakload CONFIG.json``, a process of its own.

Every user holds a WS-API user stream (``userDataStream.subscribe.signature``). Requests are sent at a fixed
rate whatever the fleet answers (open loop: a slow fleet meets the same offered load, as real clients are),
round-robin over the users, in a mix like a market maker's day:

* resting limits (``REST_SHARE``): a BUY a few ticks below the mid, a SELL above, GTC;
* crossing limits (``CROSS_SHARE``): priced through the resting levels on the other side, GTC, so they
  take liquidity and whatever is left rests (and crosses the next resting orders of the other side);
* cancels (the rest, and always once a user has ``OPEN_CAP`` orders open): the user's oldest open order,
  ``DELETE /api/v3/order`` (which waits for its outcome, up to the gateway's ``order_result_timeout_ms``).

An order is confirmed by the first ``executionReport`` of its client order id on its owner's stream (NEW,
or a TRADE when it filled at once, or REJECTED). Counted per minute of the run, by when the event happened:
requests offered, orders ACKed, cancels answered, orders confirmed, errors by HTTP status and Binance code,
REST answer and confirmation latency (p50/p99), and how long a crossing order took to its first fill (the
first ``TRADE`` report of its client order id: the matcher's and settlement's hops, which a confirmation
does not wait for). A line per minute goes to ``progress`` (JSON) as each
minute ends; the whole result to ``out``, after waiting ``CONFIRM_WAIT_S`` for confirmations once the load
stopped: ACKed orders still unconfirmed then are ``unconfirmed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import sys
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from .loadgen import KEEP_ALIVE_S, MIDS, Conn, _body

REST_SHARE, CROSS_SHARE = 0.5, 0.3  # the rest are cancels
OPEN_CAP = 20  # a user with this many open orders cancels next (the fleet's cap is 200 per user)
REST_TICKS, CROSS_TICKS = (5, 40), 45  # resting orders this far from the mid; crossing ones this far through
REQUEST_TIMEOUT_S = 30.0
IN_FLIGHT_MAX = 5_000  # the client's own bound: past it a due request is counted as skipped, not sent
CONFIRM_WAIT_S = 5.0
SLOW_S = 0.1  # a confirmation slower than this (the p99 bound) is kept with its send time, to find why
ENDED = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)


@dataclass
class Minute:
    """What happened in one minute of the run."""

    offered: int = 0
    acked: int = 0
    cancels_ok: int = 0
    confirmed: int = 0
    rejected: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ack_s: list[float] = field(default_factory=list)
    confirm_s: list[float] = field(default_factory=list)
    fill_s: list[float] = field(default_factory=list)

    def row(self, minute: int) -> dict[str, Any]:
        return {"minute": minute, "offered": self.offered, "acked": self.acked, "cancels_ok": self.cancels_ok,
                "confirmed": self.confirmed, "rejected": self.rejected, "errors": dict(self.errors),
                "ack_p50_ms": _pct(self.ack_s, 50), "ack_p99_ms": _pct(self.ack_s, 99),
                "confirm_p50_ms": _pct(self.confirm_s, 50), "confirm_p99_ms": _pct(self.confirm_s, 99),
                "fills": len(self.fill_s), "fill_p50_ms": _pct(self.fill_s, 50), "fill_p99_ms": _pct(self.fill_s, 99)}


@dataclass
class User:
    api_key: str
    secret: str
    open: OrderedDict[int, str] = field(default_factory=OrderedDict)  # order id -> symbol, oldest first


class Soak:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.base, self.symbols = cfg["base"], cfg["symbols"]
        self.users = [User(u["api_key"], u["secret"]) for u in cfg["users"]]
        self.rng = random.Random(cfg.get("seed", 27))
        host_port = self.base.removeprefix("http://").split(":")
        self.host, self.port = host_port[0], int(host_port[1])
        self.idle: list[Conn] = []
        self.minutes: defaultdict[int, Minute] = defaultdict(Minute)
        self.sent_at: dict[str, float] = {}  # client order id -> when its POST was sent
        self.crossing: dict[str, float] = {}  # crossing orders not yet filled nor ended: id -> when sent
        self.acked: dict[str, float] = {}  # ACKed, not yet confirmed: client order id -> when sent
        self.confirmed_early: set[str] = set()  # confirmed before its ACK came back
        self.slow: list[tuple[float, float]] = []  # (wall-clock send time, seconds to confirm) over SLOW_S
        self.t0 = 0.0

    def _minute(self, at: float | None = None) -> Minute:
        return self.minutes[int(((at or time.perf_counter()) - self.t0) // 60)]

    async def _request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else Conn(self.host, self.port)
        if time.perf_counter() - conn.idle_since > KEEP_ALIVE_S:
            conn.close()  # the server may have closed it: a new connection, not a request lost on the old one
        try:
            result = await asyncio.wait_for(conn.request(head, body), REQUEST_TIMEOUT_S)
        except BaseException:
            conn.close()
            raise
        conn.idle_since = time.perf_counter()
        self.idle.append(conn)
        return result

    def _head(self, method: str, user: User, body: bytes) -> bytes:
        return (f"{method} /api/v3/order HTTP/1.1\r\nHost: {self.host}\r\nX-MBX-APIKEY: {user.api_key}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode()

    def _error(self, status: int, raw: bytes) -> str:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return f"{status}:?"
        return f"{status}:{data.get('code') if isinstance(data, dict) else '?'}"

    def _order(self, coid: str) -> tuple[dict[str, Any], bool]:
        """The order's parameters, and whether it crosses."""
        symbol = self.symbols[self.rng.randrange(len(self.symbols))]
        mid, step = MIDS.get(symbol, (50_000, "0.00001"))
        side = "BUY" if self.rng.random() < 0.5 else "SELL"
        crossing = self.rng.random() >= REST_SHARE / (REST_SHARE + CROSS_SHARE)
        if not crossing:
            ticks = self.rng.randint(*REST_TICKS) * (-1 if side == "BUY" else 1)
        else:
            ticks = CROSS_TICKS * (1 if side == "BUY" else -1)
        lots = self.rng.randint(20, 200)
        qty = f"{lots * float(step):.8f}".rstrip("0").rstrip(".")
        return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": qty,
                "price": f"{mid + ticks / 100:.2f}", "newClientOrderId": coid, "newOrderRespType": "ACK"}, crossing

    async def place(self, user: User, coid: str) -> None:
        order, crossing = self._order(coid)
        body = _body(user.secret, order).encode()
        sent = self.sent_at[coid] = time.perf_counter()
        if crossing:
            self.crossing[coid] = sent
        try:
            status, raw = await self._request(self._head("POST", user, body), body)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self._minute().errors[type(exc).__name__] += 1
            self.sent_at.pop(coid, None)
            self.crossing.pop(coid, None)
            return
        now = time.perf_counter()
        minute = self._minute(now)
        minute.ack_s.append(now - sent)
        if status == 200:
            minute.acked += 1
            if coid in self.confirmed_early:
                self.confirmed_early.discard(coid)
            else:
                self.acked[coid] = sent
        else:
            minute.errors[self._error(status, raw)] += 1
            self.sent_at.pop(coid, None)
            self.crossing.pop(coid, None)

    async def cancel(self, user: User, order_id: int, symbol: str) -> None:
        body = _body(user.secret, {"symbol": symbol, "orderId": order_id}).encode()
        try:
            status, raw = await self._request(self._head("DELETE", user, body), body)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self._minute().errors[type(exc).__name__] += 1
            return
        if status == 200:
            self._minute().cancels_ok += 1
        else:
            self._minute().errors[self._error(status, raw)] += 1

    def _report(self, user: User, e: dict[str, Any], now: float) -> None:
        coid, order_id, status = str(e.get("c") or ""), int(e.get("i", 0)), e.get("X")
        if status in ENDED:
            user.open.pop(order_id, None)
        elif e.get("x") == "NEW":
            user.open[order_id] = e.get("s", "")
        if coid in self.crossing and (e.get("x") == "TRADE" or status in ENDED):
            crossed = self.crossing.pop(coid)
            if e.get("x") == "TRADE":
                self._minute(now).fill_s.append(now - crossed)
        sent = self.sent_at.pop(coid, None) if coid else None
        if sent is None:
            return
        minute = self._minute(now)
        minute.confirmed += 1
        minute.confirm_s.append(now - sent)
        if now - sent > SLOW_S:
            self.slow.append((round(time.time() - (time.perf_counter() - sent), 3), round(now - sent, 3)))
        if status == "REJECTED":
            minute.rejected += 1
        if self.acked.pop(coid, None) is None:
            self.confirmed_early.add(coid)  # its ACK is still on its way

    async def stream(self, http: aiohttp.ClientSession, user: User, ready: list[int], all_ready: asyncio.Event) -> None:
        ws = await http.ws_connect(self.base.replace("http://", "ws://") + "/ws-api/v3", max_msg_size=0,
                                   heartbeat=20)
        params = {"apiKey": user.api_key, "timestamp": int(time.time() * 1000), "recvWindow": 10000}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["signature"] = hmac.new(user.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        await ws.send_str(json.dumps({"id": "1", "method": "userDataStream.subscribe.signature", "params": params}))
        ack = json.loads(await ws.receive_str())
        if ack.get("status") != 200:
            raise RuntimeError(f"user stream refused: {ack}")
        ready[0] += 1
        if ready[0] == len(self.users):
            all_ready.set()
        try:
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT or '"executionReport"' not in frame.data:
                    continue
                now = time.perf_counter()
                for line in frame.data.split("\n"):
                    msg = orjson.loads(line)
                    e = msg.get("event", msg)
                    if e.get("e") == "executionReport":
                        self._report(user, e, now)
        finally:
            await ws.close()

    async def _progress(self, minutes: int, path: str) -> None:
        for m in range(minutes):
            await asyncio.sleep(max(0.0, self.t0 + 60 * (m + 1) - time.perf_counter()))
            _append(path, json.dumps(self.minutes[m].row(m)))

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        rate, seconds = float(cfg["rate"]), 60.0 * float(cfg["minutes"])
        http = aiohttp.ClientSession()
        ready, all_ready = [0], asyncio.Event()
        streams = [asyncio.create_task(self.stream(http, u, ready, all_ready)) for u in self.users]
        await asyncio.wait_for(all_ready.wait(), 120)
        in_flight: set[asyncio.Task[None]] = set()
        self.t0 = time.perf_counter()
        reporter = asyncio.create_task(self._progress(int(cfg["minutes"]), cfg["progress"]))
        prefix = cfg.get("prefix", "k")
        try:
            for k in range(int(rate * seconds)):
                delay = self.t0 + k / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                minute = self._minute()
                minute.offered += 1
                if len(in_flight) >= IN_FLIGHT_MAX:
                    minute.errors["skipped (client in-flight cap)"] += 1
                    continue
                user = self.users[k % len(self.users)]
                if user.open and (len(user.open) >= OPEN_CAP or self.rng.random() >= REST_SHARE + CROSS_SHARE):
                    order_id, symbol = next(iter(user.open.items()))
                    user.open.pop(order_id)  # asked once; a cancel that fails leaves it to the next pass
                    task = asyncio.create_task(self.cancel(user, order_id, symbol))
                else:
                    task = asyncio.create_task(self.place(user, f"{prefix}{k}"))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            sent_s = time.perf_counter() - self.t0
            if in_flight:
                await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT_S + 5)
            await reporter
            waited_from = time.perf_counter()
            while self.acked and time.perf_counter() - waited_from < CONFIRM_WAIT_S:  # noqa: ASYNC110 - bounded
                await asyncio.sleep(0.05)
        finally:
            reporter.cancel()
            for s in streams:
                s.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            await http.close()
            for conn in self.idle:
                conn.close()
        total = Minute()
        for m in self.minutes.values():
            total.offered += m.offered
            total.acked += m.acked
            total.cancels_ok += m.cancels_ok
            total.confirmed += m.confirmed
            total.rejected += m.rejected
            total.errors.update(m.errors)
            total.ack_s += m.ack_s
            total.confirm_s += m.confirm_s
            total.fill_s += m.fill_s
        return {"rate": rate, "minutes": cfg["minutes"], "send_seconds": round(sent_s, 1), "users": len(self.users),
                "unconfirmed": len(self.acked), "unconfirmed_sample": sorted(self.acked)[:10],
                "slow_confirms": self.slow,
                "total": total.row(-1), "per_minute": [self.minutes[m].row(m) for m in sorted(self.minutes)]}


def _append(path: str, line: str) -> None:
    """One line, once a minute: the bench's parent prints it as a row."""
    with open(path, "a") as f:
        f.write(line + "\n")


def main() -> None:
    cfg = json.loads(open(sys.argv[1]).read())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(Soak(cfg).run())
    with open(cfg["out"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
