"""What market-data does with one batch of the matcher's output, up to its one Redis round trip. No I/O.

``Outputs.apply`` takes the batch's records one by one, each with its symbol's state (``streams.MarketState``):

- a matched event tells its owners their orders' updates (``shared.owner_reports.market_data_reports``: all
  but the NEW the order processor already sent) and moves the depth; the depth is pushed on its own clock
  (``pushes.py``);
- a trade execution's trades, the candles they move and the recent trades join its symbol's atomic write
  (``streams.publish_trades``).

A record at or below its symbol's applied seq is a redelivery and changes nothing. A record that cannot be
shown or written (a number no JSON or Redis write takes) raises from ``apply`` having changed nothing: an event's
reports are rendered before it moves the depth, and a trade execution's half-queued writes and the candles it
moved are rolled back. The caller dead-letters it, and its ``seq`` is not taken.

``queue`` adds the batch's writes to one pipeline: the owners' reports first, one message per user channel (the
gateway reads one message, not one per report), then each symbol's atomic write with its live candles.
"""

from __future__ import annotations

from shared import redis as sredis
from shared import tracing
from shared.messages import MatchedEvent, TradeExecution
from shared.owner_reports import market_data_reports

from .streams import PUSHED, MarketState, persist_candles, publish_trades


class Outputs:
    """One batch's writes: each user channel's reports, in order, and each symbol's atomic write."""

    __slots__ = ("channels", "users", "writes")

    def __init__(self, channels: sredis.Channels) -> None:
        self.channels = channels
        self.users: dict[str, list[bytes]] = {}  # channel -> its executionReports, in order
        self.writes: dict[str, tuple[MarketState, sredis.Atomic]] = {}  # symbol -> its state and atomic write

    def apply(
        self, state: MarketState, value: MatchedEvent | TradeExecution, traced: tracing.Consumed, now: int
    ) -> None:
        """Fold one record of ``state``'s symbol into the batch's writes; raise, changing nothing, for one that
        cannot be shown or written."""
        if isinstance(value, MatchedEvent):
            if value.seq > state.depth.seq:
                tp = traced.traceparent(value) if traced.tracked else None
                shown = [  # may raise: before any change
                    (self.channels.user(owner), report if tp is None else tracing.wrap(report, tp))
                    for owner, report in market_data_reports(state.market, value)
                ]
                state.depth.apply(value.seq, value.deltas)
                for channel, report in shown:
                    self.users.setdefault(channel, []).append(report)
        elif value.seq > state.trade_seq:
            tp = traced.traceparent(value) if traced.tracked else None
            held = self.writes.get(value.symbol)
            if held is None:
                held = self.writes[value.symbol] = (state, state.atomic())
            w = held[1]
            mark, candles = w.mark(), state.candles.copy()
            try:
                publish_trades(w, state, value.seq, value.trades, now, tp)
            except Exception:
                w.rollback(mark)  # the trades' half-queued writes, and the candles they moved
                state.candles = candles
                raise
            PUSHED.labels("trade").inc(len(value.trades))

    def queue(self, pipe: sredis.Pipeline) -> None:
        """Add the batch's writes to ``pipe``: the order updates, then each symbol's write."""
        told = sredis.Publications()
        for channel, reports in self.users.items():
            told.add_all(channel, reports)
            PUSHED.labels("order").inc(len(reports))
        told.queue(pipe)
        for state, w in self.writes.values():
            persist_candles(w, state)
            w.queue(pipe)
