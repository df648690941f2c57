"""validated-orders records: the processor sends one envelope per symbol per batch, its commands in input
order with their own traces, and the matcher's decoder reads an envelope and an old single command alike."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.order_processor.batch import by_symbol
from shared import kafka, tracing
from shared.domain import OrderType, Side, TimeInForce
from shared.messages import (
    AcceptedOrder,
    CancelOrder,
    MatcherCommand,
    MatcherCommands,
    RejectedOrder,
    Topic,
    encode,
    envelopes,
    unpack_commands,
)

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def accepted(offset: int, symbol: str = "BTCUSDT") -> AcceptedOrder:
    return AcceptedOrder(
        src_partition=0,
        src_offset=offset,
        order_id=10**12 + offset,
        user_id=7,
        symbol=symbol,
        side=Side.BUY,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price_ticks=5_000_000,
        qty_lots=3,
        budget=15_000_000,
        client_order_id=f"c{offset}",
        ts=1_700_000_000_000,
    )


def cancel(offset: int, symbol: str = "BTCUSDT") -> CancelOrder:
    return CancelOrder(
        src_partition=0, src_offset=offset, request_id=offset, order_id=10**12, user_id=7, symbol=symbol, ts=1
    )


def rejected(offset: int, symbol: str = "BTCUSDT") -> RejectedOrder:
    return RejectedOrder(
        src_partition=0,
        src_offset=offset,
        order_id=10**12 + offset,
        user_id=7,
        symbol=symbol,
        side=Side.SELL,
        type=OrderType.MARKET,
        tif=None,
        client_order_id="r",
        code=-2010,
        msg="Account has insufficient balance for requested action.",
        ts=1,
    )


KINDS = (accepted, cancel, rejected)


@given(
    st.lists(st.integers(0, 2), min_size=1, max_size=40),
    st.sets(st.integers(0, 39)),
    st.sampled_from([300, 1_000, 4_000, 1 << 20]),
)
def test_envelopes_carry_every_command_once_in_order_with_its_own_trace(kinds, traced, max_bytes):
    commands = [KINDS[k](i) for i, k in enumerate(kinds)]
    traces = {i: TP for i in traced if i < len(commands)}
    records = envelopes(Topic.VALIDATED_ORDERS, "BTCUSDT", [encode(c) for c in commands], traces, max_bytes)
    got = [item for record in records for item in unpack_commands(record)]
    assert [c for c, _ in got] == commands
    assert [i for i, (_, tp) in enumerate(got) if tp is not None] == sorted(traces)
    assert all(tp == TP.encode() for _, tp in got if tp is not None)
    for record in records:  # cut between commands, at the bound (a command over it goes alone); the bound is
        inside = unpack_commands(record)  # on the commands, so the envelope's own head and traces come on top
        overhead = 200 + sum(len(TP) + 10 for _, tp in inside if tp is not None)
        assert len(record) <= max_bytes + overhead or len(inside) == 1


def test_an_envelope_is_byte_for_byte_what_encode_gives_for_it():
    commands = [accepted(1), cancel(2), rejected(3)]
    (record,) = envelopes(Topic.VALIDATED_ORDERS, "BTCUSDT", [encode(c) for c in commands], {1: TP})
    assert record == encode(MatcherCommands(symbol="BTCUSDT", commands=commands, traces={1: TP}))


@pytest.mark.parametrize("command", [accepted(5), cancel(5), rejected(5)])
def test_an_old_single_command_record_still_decodes_its_trace_from_the_record_headers(command):
    assert unpack_commands(encode(command)) == [(command, None)]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        b'{"kind":"commands-batch","v":1,"symbol":"BTCUSDT","commands":[{"kind":"matched"}]}',
        b'{"kind":"matched-batch","v":1,"symbol":"BTCUSDT","events":[]}',  # another topic's envelope
    ],
)
def test_a_malformed_record_raises_so_the_matcher_dead_letters_it(raw):
    with pytest.raises(msgspec.DecodeError):
        unpack_commands(raw)


class Traced(tracing.Consumed):
    """The traced side of ``tracing.Consumed``: a traceparent for some of the batch's requests."""

    tracked = True

    def __init__(self, traced: dict[int, bytes]) -> None:
        self.traced = traced

    def traceparent(self, value: object) -> bytes | None:
        return self.traced.get(id(value))


def test_the_processor_sends_one_envelope_per_symbol_in_input_order_with_each_request_trace():
    symbols = ["BTCUSDT", "ETHUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"]
    commands: list[MatcherCommand] = [KINDS[i % 3](i, s) for i, s in enumerate(symbols)]
    requests = [object() for _ in commands]  # the decoded requests: traces are keyed by their identity
    records = [kafka.Record("order-requests", 0, i, r) for i, r in enumerate(requests)]
    traced = Traced({id(requests[2]): TP.encode(), id(requests[4]): TP.encode()})

    parts = by_symbol(records, commands, traced)  # type: ignore[arg-type]
    assert list(parts) == ["BTCUSDT", "ETHUSDT"]
    sent = {
        s: [i for r in envelopes(Topic.VALIDATED_ORDERS, s, p.encoded, p.traces) for i in unpack_commands(r)]
        for s, p in parts.items()
    }
    assert sent["BTCUSDT"] == [(commands[0], None), (commands[2], TP.encode()), (commands[3], None)]
    assert sent["ETHUSDT"] == [(commands[1], None), (commands[4], TP.encode())]
    untraced = by_symbol(records, commands, tracing.NOT_TRACED)  # type: ignore[arg-type]
    assert all(not p.traces for p in untraced.values())
