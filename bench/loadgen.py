"""Load generator for the fleet benchmark, run as its own process: ``python -m bench.loadgen CONFIG.json``.

Signed ``POST /api/v3/order`` (Binance's HMAC-SHA256 over the exact body, as ``tests/client.py`` signs)
over plain keep-alive HTTP/1.1 connections (``Conn``, so the generator takes as little of the cores it
shares with the fleet as it can), many users, two symbols; prices a few ticks around the mid on both
sides, so about half the orders cross. Modes:

* ``ping``: ``GET /api/v3/ping`` as fast as ``concurrency`` allows (the HTTP ceiling of client + gateway);
* ``saturate``: orders as fast as ``concurrency`` in-flight requests allow, ``newOrderRespType=ACK``
  (answered once ingestion has the order on ``order-requests``); counts accepted (HTTP 200 with orderId);
* ``paced``: orders at a fixed rate; every user holds a WS-API user stream
  (``userDataStream.subscribe.signature``), and the latency is from just before the POST is sent to the
  owner's ``executionReport`` with ``x=NEW`` for that order, matched by its ``newClientOrderId``; for an
  order that took liquidity on arrival, also to its first ``x=TRADE`` report (the taker's fill).

Writes one JSON object to the ``out`` path of the config.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import sys
import time
import urllib.parse
from collections import Counter, defaultdict
from typing import Any

import aiohttp
import orjson

NEW_REPORT, TRADE_REPORT = '"x":"NEW"', '"x":"TRADE"'
KEEP_ALIVE_S = 4.0  # below uvicorn's 5 s keep-alive timeout
WINDOW_S = 10  # latency percentiles are also given per window of this many seconds of sending
MIDS = {"BTCUSDT": (50_000, "0.00001"), "ETHUSDT": (3_000, "0.0001")}  # mid price, step size


def _body(secret: str, params: dict[str, Any]) -> str:
    query = urllib.parse.urlencode({**params, "timestamp": int(time.time() * 1000), "recvWindow": 10000})
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def _order(rng: random.Random, symbols: list[str], coid: str) -> dict[str, Any]:
    symbol = symbols[rng.randrange(len(symbols))]
    mid, step = MIDS.get(symbol, (50_000, "0.00001"))
    side = "BUY" if rng.random() < 0.5 else "SELL"
    ticks = rng.randint(-20, 20)
    price = f"{mid + ticks / 100:.2f}"
    lots = rng.randint(20, 200)
    qty = f"{lots * float(step):.8f}".rstrip("0").rstrip(".")
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": qty, "price": price,
            "newClientOrderId": coid, "newOrderRespType": "ACK"}


class Conn:
    """One keep-alive HTTP/1.1 connection: a request, then its response (Content-Length framed), in turn."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.idle_since = 0.0

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(head + body)
            raw = await self.reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            at = raw.lower().find(b"\r\ncontent-length:")
            length = int(raw[at + 17:raw.index(b"\r\n", at + 2)]) if at >= 0 else 0
            return status, await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Load:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.base = cfg["base"]
        self.users = cfg["users"]
        self.symbols = cfg["symbols"]
        self.rng = random.Random(cfg.get("seed", 5))
        self.accepted = 0
        self.errors: Counter[str] = Counter()
        self.per_second: Counter[int] = Counter()
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.acks: list[float] = []  # submit -> HTTP answer, to tell the REST hop from the rest of the path
        self.windows: defaultdict[int, list[float]] = defaultdict(list)  # latencies by when the order was sent
        self.unfilled: dict[str, float] = {}  # confirmed orders, by client id: when they were sent
        self.fills: list[float] = []  # submit -> the taker's first TRADE report, for orders that took on arrival
        url = urllib.parse.urlsplit(self.base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.idle: list[Conn] = []  # connections between requests, reused (keep-alive)
        self.t0 = 0.0

    async def _request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else Conn(self.host, self.port)
        if time.perf_counter() - conn.idle_since > KEEP_ALIVE_S:
            conn.close()  # the server may have closed it: a new connection, not a request lost on the old one
        result = await asyncio.wait_for(conn.request(head, body), 30)
        conn.idle_since = time.perf_counter()
        self.idle.append(conn)
        return result

    async def post(self, user: dict[str, Any], coid: str) -> None:
        body = _body(user["secret"], _order(self.rng, self.symbols, coid)).encode()
        head = (f"POST /api/v3/order HTTP/1.1\r\nHost: {self.host}\r\nX-MBX-APIKEY: {user['api_key']}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        sent = self.sent_at[coid] = time.perf_counter()
        try:
            status, raw = await self._request(head, body)
            self.acks.append(time.perf_counter() - sent)
            data = orjson.loads(raw)
            if status == 200 and "orderId" in data:
                self.accepted += 1
                self.per_second[int(time.perf_counter() - self.t0)] += 1
            else:
                self.errors[f"{status}:{data.get('code') if isinstance(data, dict) else '?'}"] += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.errors[type(exc).__name__] += 1

    async def ping_worker(self, end: float) -> None:
        head = f"GET /api/v3/ping HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        while time.perf_counter() < end:
            try:
                status, _ = await self._request(head)
                if status == 200:
                    self.accepted += 1
                else:
                    self.errors[str(status)] += 1
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.errors[type(exc).__name__] += 1

    async def order_worker(self, w: int, end: float) -> None:
        k = 0
        while time.perf_counter() < end:
            user = self.users[(w + k * self.cfg["concurrency"]) % len(self.users)]
            await self.post(user, f"s{w}x{k}")
            k += 1

    async def stream(
        self, http: aiohttp.ClientSession, user: dict[str, Any], ready: asyncio.Event, counter: list[int]
    ) -> None:
        """One user's stream over aiohttp's WebSocket client (its frame reader is compiled: the load
        generator's CPU per event competes with the fleet's on the same cores)."""
        ws = await http.ws_connect(self.base.replace("http://", "ws://") + "/ws-api/v3", max_msg_size=0)
        params = {"apiKey": user["api_key"], "timestamp": int(time.time() * 1000), "recvWindow": 10000}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["signature"] = hmac.new(user["secret"].encode(), payload.encode(), hashlib.sha256).hexdigest()
        await ws.send_str(json.dumps({"id": "1", "method": "userDataStream.subscribe.signature", "params": params}))
        ack = json.loads(await ws.receive_str())
        if ack.get("status") != 200:
            raise RuntimeError(f"user stream refused: {ack}")
        counter[0] += 1
        if counter[0] == len(self.users):
            ready.set()
        try:
            async for frame in ws:
                now = time.perf_counter()
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                raw = frame.data
                if NEW_REPORT not in raw and TRADE_REPORT not in raw:  # balances: not parsed (the load
                    continue  # generator's CPU competes with the fleet's on the same cores)
                msg = orjson.loads(raw)
                e = msg.get("event", msg)
                if e.get("e") != "executionReport":
                    continue
                if e.get("x") == "NEW":
                    sent = self.sent_at.pop(e.get("c"), None)
                    if sent is not None:
                        self.latencies.append(now - sent)
                        self.windows[int((sent - self.t0) // WINDOW_S)].append(now - sent)
                        self.unfilled[e.get("c")] = sent
                elif e.get("x") == "TRADE" and not e.get("m"):  # the taker's first fill, on arrival
                    sent = self.unfilled.pop(e.get("c"), None)
                    if sent is not None:
                        self.fills.append(now - sent)
        finally:
            await ws.close()

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        mode, seconds, conc = cfg["mode"], float(cfg["seconds"]), int(cfg["concurrency"])
        try:
            result: dict[str, Any] = {"mode": mode, "seconds": seconds, "concurrency": conc}
            if mode in ("ping", "saturate"):
                self.t0 = time.perf_counter()
                end = self.t0 + seconds
                worker = self.ping_worker if mode == "ping" else None
                tasks = [asyncio.create_task(worker(end) if worker else self.order_worker(w, end))
                         for w in range(conc)]
                await asyncio.gather(*tasks)
                elapsed = time.perf_counter() - self.t0
                result.update(accepted=self.accepted, elapsed=elapsed, rate=self.accepted / elapsed,
                              errors=dict(self.errors),
                              per_second=[self.per_second.get(i, 0) for i in range(int(seconds))])
                return result
            # paced, with user streams
            ready, counter = asyncio.Event(), [0]
            http = aiohttp.ClientSession()
            streams = [asyncio.create_task(self.stream(http, u, ready, counter)) for u in self.users]
            await asyncio.wait_for(ready.wait(), 60)
            rate = float(cfg["rate"])
            total = int(rate * seconds)
            inflight: set[asyncio.Task[None]] = set()
            self.t0 = time.perf_counter()
            behind = 0
            for k in range(total):
                due = self.t0 + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.05:
                    behind += 1
                if len(inflight) >= conc:  # bounded: a stalled fleet is not buried under requests
                    self.errors["skipped_inflight_cap"] += 1
                    continue
                t = asyncio.create_task(self.post(self.users[k % len(self.users)], f"{cfg.get('prefix', 'p')}{k}"))
                inflight.add(t)
                t.add_done_callback(inflight.discard)
            sent_s = time.perf_counter() - self.t0
            if inflight:
                await asyncio.wait(inflight, timeout=30)
            wait_end = time.perf_counter() + 10
            while self.sent_at and time.perf_counter() < wait_end:  # noqa: ASYNC110 - polled, bounded
                await asyncio.sleep(0.05)
            for s in streams:
                s.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            await http.close()
            lat, acks = sorted(self.latencies), sorted(self.acks)

            def p(q: float, lat: list[float] = lat) -> float | None:
                return round(1000 * lat[min(len(lat) - 1, int(q / 100 * len(lat)))], 2) if lat else None

            result.update(rate_target=rate, sent=total, send_seconds=sent_s, accepted=self.accepted,
                          rate=self.accepted / sent_s, confirmed=len(lat), unconfirmed=len(self.sent_at),
                          late_sends=behind, errors=dict(self.errors), p50_ms=p(50), p90_ms=p(90), p99_ms=p(99),
                          max_ms=round(1000 * lat[-1], 2) if lat else None,
                          ack_p50_ms=p(50, acks), ack_p99_ms=p(99, acks), fills=len(self.fills),
                          fill_p50_ms=p(50, sorted(self.fills)), fill_p99_ms=p(99, sorted(self.fills)),
                          windows=[{"from_s": w * WINDOW_S, "p50_ms": p(50, sorted(v)), "p99_ms": p(99, sorted(v))}
                                   for w, v in sorted(self.windows.items())])
            return result
        finally:
            for conn in self.idle:
                conn.close()


def main() -> None:
    cfg = json.loads(open(sys.argv[1]).read())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(Load(cfg).run())
    with open(cfg["out"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
