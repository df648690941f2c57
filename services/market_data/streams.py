"""Redis side of market data: the state REST reads and the pub/sub channels the gateway fans out.

Per symbol (hash tag ``{SYMBOL}``, so each symbol's atomic write stays in one Redis Cluster slot; the layout is
``shared.rediskeys.market_key``, a family this service owns and the gateway reads):

* ``md:{S}:bids`` / ``md:{S}:asks``: price ticks -> lots; ``md:{S}:depth_seq``: the snapshot's lastUpdateId;
* ``md:{S}:trades``: the last ``RECENT_TRADES`` trades, newest first, as Binance trade rows;
* ``md:{S}:klines``: 1m kline rows scored by open time; ``md:{S}:kline_cur`` the open candle's state;
* ``md:{S}:trade_seq``: the last trade-execution seq applied.

Each write of state and its stream publication happen in one atomic call (``sredis.Atomic``, a Lua
script: all or nothing like a MULTI, one reply), so the depth stream and the snapshot never disagree, and
a redelivered event (seq at or below the stored one) is skipped.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import TypeVar

import orjson

from shared import redis as sredis
from shared import tracing
from shared.binance import agg_trade_event, trade_event, trade_json
from shared.domain import Market
from shared.messages import Trade
from shared.rediskeys import market_key

from .depth import Depth, Diff
from .klines import Kline, fold

RECENT_TRADES = 1000
CHUNK = 1000  # fields or rows per command
T = TypeVar("T")
KLINES_KEPT = 2000  # over a day of minutes, for the 24h ticker


def stream_name(symbol: str, kind: str) -> str:
    return f"{symbol.lower()}@{kind}"


class MarketState:
    """In-memory state of one symbol, restored from Redis at start."""

    def __init__(self, market: Market, channels: sredis.Channels) -> None:
        self.market = market
        self.channels = channels
        self.depth = Depth()
        self.trade_seq = 0
        self.kline: Kline | None = None

    def atomic(self) -> sredis.Atomic:
        """An empty atomic write to this symbol's keys (routed by their hash tag)."""
        return sredis.Atomic(market_key(self.market.symbol, "trade_seq"))

    async def load(self, cache: sredis.Client) -> None:
        s = self.market.symbol
        pipe = cache.pipeline(transaction=True)
        pipe.hgetall(market_key(s, "bids"))
        pipe.hgetall(market_key(s, "asks"))
        pipe.get(market_key(s, "depth_seq"))
        pipe.get(market_key(s, "trade_seq"))
        pipe.get(market_key(s, "kline_cur"))
        bids, asks, depth_seq, trade_seq, kline = await pipe.execute()
        self.depth.bids = {int(p): int(q) for p, q in bids.items()}
        self.depth.asks = {int(p): int(q) for p, q in asks.items()}
        self.depth.seq = self.depth.pushed = int(depth_seq or 0)
        self.trade_seq = int(trade_seq or 0)
        self.kline = Kline(*orjson.loads(kline)) if kline else None


def publish_depth(w: sredis.Atomic, state: MarketState, diff: Diff, event_ts: int) -> None:
    """Persist a diff into the snapshot and push it as a ``depthUpdate``, in the symbol's atomic write."""
    m = state.market
    s = m.symbol
    for side, levels in (("bids", diff.bids), ("asks", diff.asks)):
        gone = [str(p) for p, q in levels.items() if q == 0]
        kept: list[str | int] = [f for p, q in levels.items() if q for f in (str(p), q)]
        for removed in _parts(gone, CHUNK):
            w.call("HDEL", market_key(s, side), *removed)
        for pairs in _parts(kept, 2 * CHUNK):
            w.call("HSET", market_key(s, side), *pairs)
    w.call("SET", market_key(s, "depth_seq"), diff.last)
    event = {
        "e": "depthUpdate",
        "E": event_ts,
        "s": s,
        "U": diff.first,
        "u": diff.last,
        "b": [[m.fmt_price(p), m.fmt_qty(q)] for p, q in sorted(diff.bids.items(), reverse=True)],
        "a": [[m.fmt_price(p), m.fmt_qty(q)] for p, q in sorted(diff.asks.items())],
    }
    w.call("PUBLISH", state.channels.stream(stream_name(s, "depth")), orjson.dumps(event))


def publish_trades(
    w: sredis.Atomic,
    state: MarketState,
    seq: int,
    trades: list[Trade],
    event_ts: int,
    tp: bytes | None = None,
) -> None:
    """Record trades, roll the candle and push trade, aggTrade and kline events, in the symbol's atomic write.

    ``tp``: the traceparent of a traced order's trades, carried on its ``trade`` events to the gateway.
    """
    m = state.market
    s = m.symbol
    rows = []
    trade_channel, agg_channel = (state.channels.stream(stream_name(s, k)) for k in ("trade", "aggTrade"))
    kline_channel = state.channels.stream(stream_name(s, "kline_1m"))
    for t in trades:
        rows.append(orjson.dumps(trade_json(m, t)))
        trade = orjson.dumps(trade_event(m, t, event_ts))
        w.call("PUBLISH", trade_channel, trade if tp is None else tracing.wrap(trade, tp))
        w.call("PUBLISH", agg_channel, orjson.dumps(agg_trade_event(m, t, event_ts)))
        state.kline, closed = fold(state.kline, t)
        if closed is not None:
            _store_kline(w, m, closed)
            w.call("PUBLISH", kline_channel, orjson.dumps(closed.event(m, event_ts, closed=True)))
    rows.reverse()  # newest first
    for part in reversed(_parts(rows[:RECENT_TRADES], CHUNK)):  # LPUSH of the oldest part first
        w.call("LPUSH", market_key(s, "trades"), *reversed(part))
    w.call("LTRIM", market_key(s, "trades"), 0, RECENT_TRADES - 1)
    assert state.kline is not None
    _store_kline(w, m, state.kline)
    w.call("SET", market_key(s, "kline_cur"), orjson.dumps(astuple(state.kline)))
    w.call("PUBLISH", kline_channel, orjson.dumps(state.kline.event(m, event_ts)))
    w.call("SET", market_key(s, "trade_seq"), seq)
    state.trade_seq = seq


def _store_kline(w: sredis.Atomic, m: Market, k: Kline) -> None:
    w.call("ZREMRANGEBYSCORE", market_key(m.symbol, "klines"), k.open_time, k.open_time)
    w.call("ZADD", market_key(m.symbol, "klines"), k.open_time, orjson.dumps(k.row(m)))
    w.call("ZREMRANGEBYRANK", market_key(m.symbol, "klines"), 0, -KLINES_KEPT - 1)


def _parts(items: list[T], size: int) -> list[list[T]]:
    """``items`` in runs of at most ``size``: a command's arguments within ``sredis.ATOMIC_MAX_ARGS``."""
    return [items[i : i + size] for i in range(0, len(items), size)]
