"""market-data: depth, trades, klines and the user stream, from the matcher's output.

Consumes ``matched-events`` (depth deltas and order updates) and ``trade-execution`` (trades). Order
updates go out at once as ``executionReport`` on the owner's channel (but the NEW of an order the processor
already confirmed, see ``confirmed_on_acceptance``); trades go out per batch with the
candle they move; depth is pushed every ``DEPTH_INTERVAL_MS`` as one gap-free diff (``@depth@100ms``) and
every ``SLOW_DEPTH_INTERVAL_MS`` as the diffs since folded into one (``@depth``), each time with the top of the
book (``@depth5/10/20``, their ``@100ms`` when it changed; every second either way). Each symbol's writes
and publications of a batch are one atomic script call (``sredis.Atomic``), and a batch's calls one
pipeline: one round trip, one reply per symbol. Input offsets are committed only after the state they
produced is in Redis. An order update or trade of a traced order
goes out with its ``traceparent`` (``tracing.wrap``), so the gateway's push continues the order's trace.

A message that decodes but cannot be applied (a number no JSON or Redis write takes) is dead-lettered to
``<topic>.dlq`` (``shared.deadletter``) and changes nothing: an event's reports are rendered before it moves
the depth, and a trade execution's half-queued writes and candle are rolled back. Its ``seq`` is not taken,
so the events after it still apply. A market added while it runs (``spot admin market add``) is read from
Postgres at its first record (``learn``), so none of its events is passed over.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import orjson
from prometheus_client import Counter

from shared import deadletter, kafka, postgres, resilience, tracing
from shared import redis as sredis
from shared.binance import confirmed_on_acceptance, execution_report
from shared.config import Settings
from shared.domain import ExecType, Market
from shared.kafka import Batch
from shared.lifecycle import Health, now_ms, run
from shared.messages import MatchedEvent, Topic, TradeExecution, encode, unpack_output

from . import resync
from .streams import (
    ALL_MINI_TICKERS,
    ALL_TICKERS,
    FAST,
    SLOW,
    MarketState,
    persist_candles,
    publish_candles,
    publish_depth,
    publish_partial,
    publish_slow_depth,
    publish_tickers,
    publish_trades,
    refresh_candles,
)

SERVICE = "market-data"
log = logging.getLogger(SERVICE)
NEW = ExecType.NEW
DEPTH_INTERVAL_MS = 100
SLOW_DEPTH_INTERVAL_MS = 1000  # Binance's ``@depth`` and ``@depth<levels>`` without ``@100ms``
TICKER_INTERVAL_MS = 1000  # Binance's update speed of the ticker streams
KLINE_REFRESH_MS = 2000  # Binance's update speed of the kline streams (but 1s's), traded or not
PUSHED = Counter("spot_market_data_events_total", "Events pushed to streams", ["kind"])


def rendered(
    state: MarketState, event: MatchedEvent, channels: sredis.Channels, tp: bytes | None
) -> list[tuple[str, bytes]]:
    """The ``executionReport`` of each order update of an event, for its owner's channel (but the NEW of an
    order the processor already confirmed). Rendered before the event changes the depth, so an event that
    cannot be shown (a number past 64 bits) changes nothing and is dead-lettered whole."""
    out = []
    for u in event.updates:
        if u.exec_type is NEW and confirmed_on_acceptance(u.type):
            continue  # the order processor told its owner when it held the funds
        report = orjson.dumps(execution_report(state.market, u, event.ts))
        out.append((channels.user(u.user_id), report if tp is None else tracing.wrap(report, tp)))
    return out


async def learn(
    db: asyncpg.Pool,
    markets: dict[str, Market],
    states: dict[str, MarketState],
    symbol: str,
    channels: sredis.Channels,
    cache: sredis.Client,
) -> MarketState | None:
    """The state of a market added while market-data runs (read from Postgres at its first record, so none of
    its events is passed over), or None if Postgres has no such market."""
    if not await postgres.learn_markets(db, markets, [symbol]):
        return None
    state = states[symbol] = MarketState(markets[symbol], channels)
    await state.load(cache)
    return state


async def serve(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    async with (
        postgres.pool(settings, max_size=1) as db,
        kafka.producer(settings) as dlq,
        sredis.client(settings) as cache,
        kafka.consumer(
            settings, [Topic.MATCHED_EVENTS, Topic.TRADE_EXECUTION], SERVICE, kafka.Envelopes(unpack_output), dlq
        ) as inbox,
    ):
        markets = await postgres.load_markets(db)
        channels = sredis.Channels(settings.topic_suffix)
        dead = deadletter.DeadLetters(dlq, SERVICE)
        states = {s: MarketState(m, channels) for s, m in markets.items()}
        for loading in states.values():
            await loading.load(cache)
        await resync.on_new_log(cache, states, settings.log_epoch, now_ms())  # after a broker lost its log
        health.watch(resilience.probes(cache=cache, outbox=dlq))
        health.up()
        unflushed: list[Batch[MatchedEvent | TradeExecution]] = []
        last_flush = last_tickers = last_klines = last_slow = time.monotonic()
        async for batch in inbox.batches(stop, timeout_ms=DEPTH_INTERVAL_MS // 2, yield_empty=True):
            now = now_ms()
            if batch.records:
                with tracing.consume(batch.records) as traced:
                    users: dict[str, list[bytes]] = {}  # channel -> its executionReports, in order
                    writes: dict[str, sredis.Atomic] = {}
                    for record in batch.records:
                        v = record.value
                        state = states.get(v.symbol)
                        if state is None:  # a market added live: its row is in Postgres before its events
                            state = await learn(db, markets, states, v.symbol, channels, cache)
                            if state is None:
                                log.warning("%s is in no market row; its record is passed over", v.symbol)
                                continue
                        try:
                            if isinstance(v, MatchedEvent):
                                if v.seq > state.depth.seq:
                                    tp = traced.traceparent(v) if traced.tracked else None
                                    shown = rendered(state, v, channels, tp)  # may raise: before any change
                                    state.depth.apply(v.seq, v.deltas)
                                    for channel, report in shown:
                                        told_user = users.get(channel)
                                        if told_user is None:
                                            users[channel] = [report]
                                        else:
                                            told_user.append(report)
                            elif v.seq > state.trade_seq:
                                tp = traced.traceparent(v) if traced.tracked else None
                                w = writes.get(v.symbol) or writes.setdefault(v.symbol, state.atomic())
                                mark, candles = w.mark(), state.candles.copy()
                                try:
                                    publish_trades(w, state, v.seq, v.trades, now, tp)
                                except Exception:
                                    w.rollback(mark)  # the trades' half-queued writes, and the candles they moved
                                    state.candles = candles
                                    raise
                                PUSHED.labels("trade").inc(len(v.trades))
                        except Exception as exc:
                            if not deadletter.unappliable(exc):
                                raise
                            await dead.send(record, encode(v), v.symbol, exc)
                    told = sredis.Publications()  # one message per user: the gateway reads one, not one per report
                    for channel, reports in users.items():
                        told.add_all(channel, reports)
                        PUSHED.labels("order").inc(len(reports))
                    pipe = cache.pipeline(transaction=False)  # one round trip: order updates, then each symbol's
                    told.queue(pipe)
                    for symbol, w in writes.items():
                        persist_candles(w, states[symbol])
                        w.queue(pipe)
                    with sredis.timed("publish"):
                        await pipe.execute()
            if batch.ends:  # a batch that only carries a segment's seal too: committed, so the consumer moves on
                unflushed.append(batch)
            if (time.monotonic() - last_flush) * 1000 >= DEPTH_INTERVAL_MS:
                last_flush = time.monotonic()
                pipe = cache.pipeline(transaction=False)
                moved = set()
                for market_state in states.values():
                    diff = market_state.depth.take_diff()
                    if diff is not None or market_state.candles_moved:
                        w = market_state.atomic()
                        if diff is not None:
                            publish_depth(w, market_state, diff, now)
                            publish_partial(w, market_state, FAST)
                            moved.add(market_state.market.symbol)
                            PUSHED.labels("depth").inc()
                        publish_candles(w, market_state, now)
                        w.queue(pipe)
                if (time.monotonic() - last_slow) * 1000 >= SLOW_DEPTH_INTERVAL_MS:
                    last_slow = time.monotonic()
                    for market_state in states.values():
                        w = market_state.atomic()
                        slow = market_state.depth.take_slow_diff()
                        if slow is not None:
                            publish_slow_depth(w, market_state, slow, now)
                        publish_partial(w, market_state, SLOW)
                        if market_state.market.symbol not in moved:  # a new subscriber hears within a second
                            publish_partial(w, market_state, FAST)
                        w.queue(pipe)
                if (time.monotonic() - last_klines) * 1000 >= KLINE_REFRESH_MS:
                    last_klines = time.monotonic()
                    for market_state in states.values():
                        w = market_state.atomic()
                        refresh_candles(w, market_state, now)
                        w.queue(pipe)
                if (time.monotonic() - last_tickers) * 1000 >= TICKER_INTERVAL_MS:
                    last_tickers = time.monotonic()
                    everyone: dict[str, list[bytes]] = {ALL_TICKERS: [], ALL_MINI_TICKERS: []}
                    for market_state in states.values():
                        w = market_state.atomic()
                        publish_tickers(w, market_state, now, everyone)
                        w.queue(pipe)
                    arrays = sredis.Publications()
                    for kind, events in everyone.items():
                        if events:
                            arrays.add(channels.stream(kind), b"[" + b",".join(events) + b"]")
                    arrays.queue(pipe)
                with sredis.timed("depth"):
                    await pipe.execute()
                for done in unflushed:
                    await inbox.commit(done)
                unflushed.clear()


def main() -> None:
    run(serve, SERVICE)


if __name__ == "__main__":
    main()
