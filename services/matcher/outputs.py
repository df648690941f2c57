"""What one batch of the matcher sends, per symbol: its events and trades, each encoded once. Pure.

Per topic, one record per symbol per batch (more only past ``ENVELOPE_MAX_BYTES``: ``shared.messages.envelopes``)
carries that batch's messages in order, since the Kafka client's cost is per record; an event and its trades
continue the trace of the command that caused them.
"""

from __future__ import annotations

from shared.messages import MatchedEvent, Topic, TradeExecution, encode, envelopes

MATCHED, TRADES_OUT = Topic.MATCHED_EVENTS.value, Topic.TRADE_EXECUTION.value


class Part:
    """One symbol's part of a batch: its events, each encoded once with its trace, and the hot entries taken."""

    __slots__ = ("epoch", "events", "matched", "matched_traces", "taken", "trade_count", "trades", "trades_traces")

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch  # the log segment of its commands: its outputs go to the same one
        self.events: list[MatchedEvent] = []
        self.matched: list[bytes] = []  # encoded events, in seq order
        self.trades: list[bytes] = []  # encoded trade executions of the events that traded
        self.matched_traces: dict[int, str] = {}  # position in ``matched`` -> traceparent
        self.trades_traces: dict[int, str] = {}
        self.taken: list[int] = []  # hot-book entries the book took over (or already had)
        self.trade_count = 0

    def add(self, symbol: str, event: MatchedEvent, traceparent: bytes | None) -> None:
        """One event and its trades, encoded, with the trace it continues."""
        self.events.append(event)
        if traceparent is not None:
            self.matched_traces[len(self.matched)] = traceparent.decode()
            if event.trades:
                self.trades_traces[len(self.trades)] = traceparent.decode()
        self.matched.append(encode(event))
        if event.trades:
            self.trades.append(encode(TradeExecution(symbol=symbol, seq=event.seq, trades=event.trades)))
            self.trade_count += len(event.trades)

    def outputs(self, symbol: str) -> list[tuple[str, bytes]]:
        """The records to commit to the outbox and publish, in order: events first, then trades."""
        out = [(MATCHED, value) for value in envelopes(MATCHED, symbol, self.matched, self.matched_traces)]
        if self.trades:
            out += [(TRADES_OUT, value) for value in envelopes(TRADES_OUT, symbol, self.trades, self.trades_traces)]
        return out
