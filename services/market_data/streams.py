"""Redis side of market data: the state REST reads and the pub/sub channels the gateway fans out.

Per symbol (hash tag ``{SYMBOL}``, so each symbol's atomic write stays in one Redis Cluster slot; the layout is
``shared.rediskeys.market_key``, a family this service owns and the gateway reads):

* ``md:{S}:bids`` / ``md:{S}:asks``: price ticks -> lots; ``md:{S}:depth_seq``: the snapshot's lastUpdateId;
  ``md:{S}:slow_bids`` / ``md:{S}:slow_asks``: the 100 ms diffs pushed since the last 1,000 ms one (a total of 0
  removes), ``md:{S}:slow_seq`` that one's ``u``: a restart continues the ``@depth`` stream without a gap;
* ``md:{S}:trades``: the last ``RECENT_TRADES`` trades, newest first, as Binance trade rows;
* ``md:{S}:klines``: the closed one-minute candles (``Candle`` as a list of integers) scored by open time, for the
  ticker streams' windows (``tickers.Minutes``); ``md:{S}:kline_cur`` the live candle of every kline stream
  (``klines.SERIES``);
* ``md:{S}:trade_seq``: the last trade-execution seq applied.

Each write of state and its stream publication happen in one atomic call (``sredis.Atomic``, a Lua
script: all or nothing like a MULTI, one reply), so the depth stream and the snapshot never disagree, and
a redelivered event (seq at or below the stored one) is skipped.
"""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import orjson
from prometheus_client import Counter

from shared import postgres, tracing
from shared import redis as sredis
from shared import tickers as shapes
from shared.aggtrades import agg_event, aggregate, fill_of
from shared.binance import kline_event, trade_event, trade_json
from shared.candles import Candle, bucket_open, next_open
from shared.domain import Market
from shared.messages import Trade
from shared.rediskeys import market_key

from .depth import Depth, Diff
from .klines import ONE_MINUTE, SERIES, LiveCandles
from .tickers import AVERAGE, WINDOWS, LastTrade, Minutes

RECENT_TRADES = 1000
CHUNK = 1000  # fields or rows per command
T = TypeVar("T")
KLINES_KEPT = 2000  # closed minutes kept in Redis: over ``tickers.KEPT_MS``
ALL_TICKERS, ALL_MINI_TICKERS = "!ticker@arr", "!miniTicker@arr"
CLOSE_GRACE_MS = 1000  # how late after a candle's close a trade stamped within it may still reach market-data
Book = tuple[int, int, int, int]
PARTIAL_LEVELS = (5, 10, 20)  # Binance's ``@depth<levels>`` streams
FAST, SLOW = "@100ms", ""  # the suffix of the 100 ms streams; the 1,000 ms ones have none
PUSHED = Counter("spot_market_data_events_total", "Events pushed to streams", ["kind"])


def stream_name(symbol: str, kind: str) -> str:
    return f"{symbol.lower()}@{kind}"


class MarketState:
    """In-memory state of one symbol, restored from Redis at start."""

    def __init__(self, market: Market, channels: sredis.Channels) -> None:
        self.market = market
        self.channels = channels
        self.depth = Depth()
        self.trade_seq = 0
        self.candles = LiveCandles()
        self.candles_moved = False  # live candles not yet published
        self.kline_channels = {x.kind: channels.stream(stream_name(market.symbol, x.kind)) for x in SERIES}
        self.minutes = Minutes()
        self.last_trade: LastTrade | None = None
        self.shown: dict[str, tuple[Any, ...]] = {}  # what the day tickers last said in the arrays, but their times
        self.book: Book | None = None  # the best bid and ask last pushed on ``@bookTicker``
        self.announced: dict[str, int] = {}  # series -> open time of the candle last pushed with ``x: true``

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
        pipe.zrange(market_key(s, "klines"), 0, -1)
        pipe.lindex(market_key(s, "trades"), 0)
        pipe.hgetall(market_key(s, "slow_bids"))
        pipe.hgetall(market_key(s, "slow_asks"))
        pipe.get(market_key(s, "slow_seq"))
        bids, asks, depth_seq, trade_seq, kline, minutes, last, slow_bids, slow_asks, slow_seq = await pipe.execute()
        self.depth.bids = {int(p): int(q) for p, q in bids.items()}
        self.depth.asks = {int(p): int(q) for p, q in asks.items()}
        self.depth.seq = self.depth.pushed = int(depth_seq or 0)
        self.depth.slow_pushed = int(slow_seq or depth_seq or 0)
        self.depth.slow_bids = {int(p): int(q) for p, q in slow_bids.items()}
        self.depth.slow_asks = {int(p): int(q) for p, q in slow_asks.items()}
        self.trade_seq = int(trade_seq or 0)
        self.candles = LiveCandles.restore(orjson.loads(kline)) if kline else LiveCandles()
        kept = (orjson.loads(row) for row in minutes)  # rows of earlier versions (decimal strings) are left out
        self.minutes = Minutes(Candle(*c) for c in kept if len(c) == 13 and all(isinstance(v, int) for v in c))
        if last:
            row, m = orjson.loads(last), self.market
            price, qty = Decimal(row["price"]) / m.tick_size, Decimal(row["qty"]) / m.step_size
            self.last_trade = LastTrade(int(price), int(qty), int(row["time"]))
        self.book = best(self.depth)


class MarketStates:
    """Every market's ``MarketState`` (``by_symbol``), restored from Redis at start. A market added while
    market-data runs (``spot admin market add`` writes its row before any of its records exists) is read from
    Postgres at its first record (``learn``), so none of its events is passed over."""

    def __init__(self, db: asyncpg.Pool, cache: sredis.Client, channels: sredis.Channels) -> None:
        self.db, self.cache, self.channels = db, cache, channels
        self.markets: dict[str, Market] = {}
        self.by_symbol: dict[str, MarketState] = {}

    async def load(self) -> None:
        self.markets = await postgres.load_markets(self.db)
        self.by_symbol = {s: MarketState(m, self.channels) for s, m in self.markets.items()}
        for state in self.by_symbol.values():
            await state.load(self.cache)

    async def learn(self, symbol: str) -> MarketState | None:
        """The state of a market not known at start, or None if Postgres has no such market either."""
        if not await postgres.learn_markets(self.db, self.markets, [symbol]):
            return None
        state = self.by_symbol[symbol] = MarketState(self.markets[symbol], self.channels)
        await state.load(self.cache)
        return state


def publish_depth(w: sredis.Atomic, state: MarketState, diff: Diff, event_ts: int) -> None:
    """Persist a 100 ms diff into the snapshot, and into the 1,000 ms diff being gathered, and push it on
    ``@depth@100ms`` as a ``depthUpdate``, in the symbol's atomic write."""
    m = state.market
    s = m.symbol
    for side, levels in (("bids", diff.bids), ("asks", diff.asks)):
        gone = [str(p) for p, q in levels.items() if q == 0]
        kept: list[str | int] = [f for p, q in levels.items() if q for f in (str(p), q)]
        for removed in _parts(gone, CHUNK):
            w.call("HDEL", market_key(s, side), *removed)
        for pairs in _parts(kept, 2 * CHUNK):
            w.call("HSET", market_key(s, side), *pairs)
        for pairs in _parts([f for p, q in levels.items() for f in (str(p), q)], 2 * CHUNK):
            w.call("HSET", market_key(s, f"slow_{side}"), *pairs)
    w.call("SET", market_key(s, "depth_seq"), diff.last)
    w.call("SET", market_key(s, "slow_seq"), state.depth.slow_pushed, "NX")  # where the gathered diff starts
    w.call(
        "PUBLISH", state.channels.stream(stream_name(s, "depth" + FAST)), orjson.dumps(depth_update(m, diff, event_ts))
    )
    book = best(state.depth)
    if book != state.book:
        channel = state.channels.stream(stream_name(s, "bookTicker"))
        w.call("PUBLISH", channel, orjson.dumps(shapes.book_event(m, diff.last, book)))
        state.book = book


def publish_slow_depth(w: sredis.Atomic, state: MarketState, diff: Diff, event_ts: int) -> None:
    """Push the 100 ms diffs since the last 1,000 ms push as one ``depthUpdate`` on ``@depth``, and forget them."""
    s = state.market.symbol
    w.call("DEL", market_key(s, "slow_bids"), market_key(s, "slow_asks"))
    w.call("SET", market_key(s, "slow_seq"), diff.last)
    event = depth_update(state.market, diff, event_ts)
    w.call("PUBLISH", state.channels.stream(stream_name(s, "depth" + SLOW)), orjson.dumps(event))


def publish_partial(w: sredis.Atomic, state: MarketState, speed: str) -> None:
    """Push the top of the book on ``@depth5``, ``@depth10`` and ``@depth20`` (``speed``: ``FAST`` or ``SLOW``):
    Binance's partial book, ``{lastUpdateId, bids, asks}``, with no event type or symbol."""
    m, depth = state.market, state.depth
    bids, asks = depth.partial(PARTIAL_LEVELS[-1])
    shown_bids = [[m.fmt_price(p), m.fmt_qty(q)] for p, q in bids]
    shown_asks = [[m.fmt_price(p), m.fmt_qty(q)] for p, q in asks]
    for levels in PARTIAL_LEVELS:
        event = {"lastUpdateId": depth.seq, "bids": shown_bids[:levels], "asks": shown_asks[:levels]}
        channel = state.channels.stream(stream_name(m.symbol, f"depth{levels}{speed}"))
        w.call("PUBLISH", channel, orjson.dumps(event))


def depth_update(m: Market, diff: Diff, event_ts: int) -> dict[str, Any]:
    """Binance's ``depthUpdate`` event of a diff: bids best first, asks best first."""
    return {
        "e": "depthUpdate",
        "E": event_ts,
        "s": m.symbol,
        "U": diff.first,
        "u": diff.last,
        "b": [[m.fmt_price(p), m.fmt_qty(q)] for p, q in sorted(diff.bids.items(), reverse=True)],
        "a": [[m.fmt_price(p), m.fmt_qty(q)] for p, q in sorted(diff.asks.items())],
    }


def best(depth: Depth) -> Book:
    """The best bid and ask with their lots (0 where a side is empty)."""
    bid = max(depth.bids) if depth.bids else 0
    ask = min(depth.asks) if depth.asks else 0
    return bid, depth.bids.get(bid, 0), ask, depth.asks.get(ask, 0)


def publish_trades(
    w: sredis.Atomic,
    state: MarketState,
    seq: int,
    trades: list[Trade],
    event_ts: int,
    tp: bytes | None = None,
) -> None:
    """Record trades, roll the live candles and push trade, aggTrade (one per aggregate: the same taker order at
    one price) and closed-kline events, in the symbol's
    atomic write; ``persist_candles`` ends the batch's write, ``publish_candles`` pushes the live candles.

    ``tp``: the traceparent of a traced order's trades, carried on its ``trade`` events to the gateway.
    """
    m = state.market
    s = m.symbol
    rows, minutes = [], []
    trade_channel, agg_channel = (state.channels.stream(stream_name(s, k)) for k in ("trade", "aggTrade"))
    for t in trades:
        rows.append(orjson.dumps(trade_json(m, t)))
        trade = orjson.dumps(trade_event(m, t, event_ts))
        w.call("PUBLISH", trade_channel, trade if tp is None else tracing.wrap(trade, tp))
        for series, closed in state.candles.fold(t):
            if series is ONE_MINUTE:
                _store_kline(w, m, closed)
                minutes.append((closed, t.ts))
            if state.announced.get(series.kind) == closed.open_time:
                continue  # its close went out when its time ran out (``refresh_candles``)
            event = kline_event(m, closed, series.interval.name, event_ts, closed=True)
            w.call("PUBLISH", state.kline_channels[series.kind], orjson.dumps(event))
    for agg in aggregate(
        fill_of(t) for t in trades
    ):  # one event's trades: its aggregates are whole (``shared.aggtrades``)
        w.call("PUBLISH", agg_channel, orjson.dumps(agg_event(m, agg, event_ts)))
    rows.reverse()  # newest first
    for part in reversed(_parts(rows[:RECENT_TRADES], CHUNK)):  # LPUSH of the oldest part first
        w.call("LPUSH", market_key(s, "trades"), *reversed(part))
    w.call("LTRIM", market_key(s, "trades"), 0, RECENT_TRADES - 1)
    w.call("SET", market_key(s, "trade_seq"), seq)
    state.trade_seq = seq
    state.candles_moved = True
    for closed, now in minutes:  # once nothing above can fail: a dead-lettered execution changes nothing
        state.minutes.add(closed, now)
    if trades:
        t = trades[-1]
        state.last_trade = LastTrade(t.price_ticks, t.qty_lots, t.ts)


def persist_candles(w: sredis.Atomic, state: MarketState) -> None:
    """Keep the live candles (and the 1m row the ticker reads) with the batch's trades, in the same atomic
    write as ``trade_seq``: a restart continues them exactly. Once per symbol and batch, not per trade."""
    live = state.candles.current.get(ONE_MINUTE.kind)
    if live is None:
        return
    _store_kline(w, state.market, live)
    w.call("SET", market_key(state.market.symbol, "kline_cur"), orjson.dumps(state.candles.state()))


def publish_candles(w: sredis.Atomic, state: MarketState, event_ts: int) -> None:
    """Push every live candle (``x: false``) once trades moved them: at most once a depth interval, so a busy
    symbol costs its kline streams a fixed rate (Binance pushes them every 1 to 2 seconds)."""
    if not state.candles_moved:
        return
    m = state.market
    for series in SERIES:
        candle = state.candles.current.get(series.kind)
        if candle is not None:
            event = kline_event(m, candle, series.interval.name, event_ts)
            w.call("PUBLISH", state.kline_channels[series.kind], orjson.dumps(event))
    state.candles_moved = False


def _store_kline(w: sredis.Atomic, m: Market, k: Candle) -> None:
    w.call("ZREMRANGEBYSCORE", market_key(m.symbol, "klines"), k.open_time, k.open_time)
    w.call("ZADD", market_key(m.symbol, "klines"), k.open_time, orjson.dumps(k.values()))
    w.call("ZREMRANGEBYRANK", market_key(m.symbol, "klines"), 0, -KLINES_KEPT - 1)


def refresh_candles(w: sredis.Atomic, state: MarketState, now: int) -> None:
    """Push every kline stream's candle whether trades moved it or not (Binance: every 2 seconds), so a new
    subscriber hears at once and a quiet market's candles still turn over: a candle whose time ran out goes out
    once with ``x: true``, then the candle of now, with no trade yet (every price the last close, ``f``/``L``
    -1), once ``CLOSE_GRACE_MS`` have passed, so a trade stamped just before the close is still in it. The live
    state is not changed: the next trade folds in as always."""
    m = state.market
    for series in SERIES:
        candle = state.candles.current.get(series.kind)
        if candle is None:
            continue  # never traded
        if now > candle.close_time + CLOSE_GRACE_MS:
            if state.announced.get(series.kind) != candle.open_time:
                closed = kline_event(m, candle, series.interval.name, now, closed=True)
                w.call("PUBLISH", state.kline_channels[series.kind], orjson.dumps(closed))
                state.announced[series.kind] = candle.open_time
            opened = bucket_open(now, series.interval, series.offset_ms)
            candle = Candle.empty(opened, next_open(opened, series.interval, series.offset_ms) - 1, candle.close)
        event = kline_event(m, candle, series.interval.name, now)
        w.call("PUBLISH", state.kline_channels[series.kind], orjson.dumps(event))


def publish_tickers(w: sredis.Atomic, state: MarketState, event_ts: int, everyone: dict[str, list[bytes]]) -> None:
    """Roll the ticker windows and push every ticker stream of a symbol that has traded (``@ticker``,
    ``@miniTicker``, ``@ticker_<window>``, ``@avgPrice``: once a ``TICKER_INTERVAL_MS``, so a new subscriber
    hears at once); the day tickers whose numbers changed go into ``everyone``, for the ``!ticker@arr`` and
    ``!miniTicker@arr`` arrays (Binance's: only the tickers that changed)."""
    if state.last_trade is None:
        return  # nothing to say before the first trade
    m, s, last = state.market, state.market.symbol, state.last_trade
    windows = state.minutes.windows(state.candles.current.get(ONE_MINUTE.kind), event_ts, WINDOWS)
    book = state.book or (0, 0, 0, 0)
    day = windows["1d"]
    events: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("ticker", (day, last, book), shapes.day_event(m, day, last.qty, book, event_ts)),
        ("miniTicker", (day,), shapes.mini_event(m, day, event_ts)),
    ]
    for name in WINDOWS:
        if name != AVERAGE:
            events.append((f"ticker_{name}", (), shapes.window_event(m, windows[name], name, event_ts)))
    avg = windows[AVERAGE]
    price = shapes.avg_price(m, avg.volume, avg.quote_volume, last.price)
    events.append(("avgPrice", (), {"e": "avgPrice", "E": event_ts, "s": s, "i": "5m", "w": price, "T": last.ts}))
    for kind, numbers, event in events:
        data = orjson.dumps(event)
        w.call("PUBLISH", state.channels.stream(stream_name(s, kind)), data)
        if kind in ("ticker", "miniTicker"):
            said = tuple(_timeless(x) for x in numbers)
            if state.shown.get(kind) != said:
                state.shown[kind] = said
                everyone[ALL_TICKERS if kind == "ticker" else ALL_MINI_TICKERS].append(data)


def _timeless(x: object) -> object:
    """A window's numbers without its open and close times, which move every second."""
    return astuple(x)[2:] if isinstance(x, shapes.Stats) else x


def _parts(items: list[T], size: int) -> list[list[T]]:
    """``items`` in runs of at most ``size``: a command's arguments within ``sredis.ATOMIC_MAX_ARGS``."""
    return [items[i : i + size] for i in range(0, len(items), size)]
