"""The matcher's output records: envelopes carry a symbol's messages in order, each with its own trace, and
every consumer's decoder reads an envelope and a single message alike."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.matcher.outputs import Part
from shared.domain import Side
from shared.messages import (
    LevelDelta,
    MatchedEvent,
    MatchedEvents,
    Topic,
    Trade,
    TradeExecution,
    TradeExecutions,
    encode,
    envelopes,
    unpack_matched,
    unpack_output,
    unpack_trades,
)

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def event(seq: int, deltas: int = 1, symbol: str = "BTCUSDT") -> MatchedEvent:
    return MatchedEvent(
        symbol=symbol,
        seq=seq,
        ts=1_700_000_000_000,
        request_id=seq,
        deltas=[LevelDelta(Side.BUY, 5_000_000 + i, i + 1) for i in range(deltas)],
    )


def trades(seq: int) -> TradeExecution:
    trade = Trade(seq, 5_000_000, 3, 1, 2, 10, 11, True, 0, 0, 1_700_000_000_000)
    return TradeExecution(symbol="BTCUSDT", seq=seq, trades=[trade])


@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=30),
    st.sets(st.integers(0, 29)),
    st.sampled_from([150, 600, 2_000, 1 << 20]),
)
def test_envelopes_carry_every_message_once_in_order_with_its_own_trace(sizes, traced, max_bytes):
    events = [event(i + 1, n) for i, n in enumerate(sizes)]
    traces = {i: TP for i in traced if i < len(events)}
    records = envelopes(Topic.MATCHED_EVENTS, "BTCUSDT", [encode(e) for e in events], traces, max_bytes)
    got = [item for record in records for item in unpack_matched(record)]
    assert [e for e, _ in got] == events
    assert [i for i, (_, tp) in enumerate(got) if tp is not None] == sorted(traces)
    assert all(tp == TP.encode() for _, tp in got if tp is not None)
    for record in records:  # cut between messages, at the bound (a message over it goes alone)
        items = unpack_matched(record)
        trace_bytes = sum(len(TP) + 10 for _, tp in items if tp is not None)  # the bound counts messages only
        assert len(record) <= max_bytes + 200 + trace_bytes or len(items) == 1


def test_an_envelope_is_byte_for_byte_what_encode_gives_for_it():
    events, executions = [event(1, 2), event(2, 0), event(3, 1)], [trades(1), trades(3)]
    matched = envelopes(Topic.MATCHED_EVENTS, "BTCUSDT", [encode(e) for e in events], {2: TP})
    traded = envelopes(Topic.TRADE_EXECUTION, "BTCUSDT", [encode(e) for e in executions], {})
    assert matched == [encode(MatchedEvents(symbol="BTCUSDT", events=events, traces={2: TP}))]
    assert traded == [encode(TradeExecutions(symbol="BTCUSDT", executions=executions))]


def test_one_record_per_symbol_and_topic_below_the_bound():
    records = envelopes(Topic.TRADE_EXECUTION, "BTCUSDT", [encode(trades(s)) for s in (3, 5, 9)], {1: TP})
    assert len(records) == 1
    assert unpack_trades(records[0]) == [(trades(3), None), (trades(5), TP.encode()), (trades(9), None)]


def test_a_single_message_still_decodes_and_takes_its_trace_from_the_record_headers():
    assert unpack_matched(encode(event(7))) == [(event(7), None)]
    assert unpack_trades(encode(trades(7))) == [(trades(7), None)]
    assert unpack_output(encode(trades(7))) == [(trades(7), None)]
    both = envelopes(Topic.MATCHED_EVENTS, "BTCUSDT", [encode(event(1))], {}) + envelopes(
        Topic.TRADE_EXECUTION, "BTCUSDT", [encode(trades(1))], {}
    )
    assert [m for record in both for m, _ in unpack_output(record)] == [event(1), trades(1)]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"kind":"matched-batch","v":1,"symbol":"BTCUSDT","events":[{"kind":"trades"}]}', b"{}"],
)
def test_a_malformed_record_raises_so_the_consumer_dead_letters_it(raw):
    with pytest.raises(msgspec.DecodeError):
        unpack_matched(raw)
    with pytest.raises(msgspec.DecodeError):
        unpack_output(raw)


def test_the_dead_letter_topics_carry_no_envelopes():
    with pytest.raises(ValueError):
        envelopes(Topic.ORDER_REQUESTS.dlq, "BTCUSDT", [b"{}"], {})


def test_a_batch_part_publishes_its_events_then_its_trades_each_with_the_trace_of_its_command():
    part = Part()
    for seq, traded, tp in ((1, False, None), (2, True, TP), (3, True, None)):
        if tp is not None:
            part.matched_traces[len(part.matched)] = tp
            part.trades_traces[len(part.trades)] = tp
        part.matched.append(encode(event(seq)))
        if traded:
            part.trades.append(encode(trades(seq)))
    outputs = part.outputs("BTCUSDT")
    assert [topic for topic, _ in outputs] == [Topic.MATCHED_EVENTS.value, Topic.TRADE_EXECUTION.value]
    assert unpack_matched(outputs[0][1]) == [(event(1), None), (event(2), TP.encode()), (event(3), None)]
    assert unpack_trades(outputs[1][1]) == [(trades(2), TP.encode()), (trades(3), None)]
