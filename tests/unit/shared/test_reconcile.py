"""The reconciler's classification of differences between the warm and the hot book (pure)."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.booksnapshot import BookState, RestingOrder
from shared.domain import OrderType, Side, StpMode, TimeInForce
from shared.messages import REQUEST_SLOTS, source_position
from shared.postgres import DEFAULT_MARKETS
from shared.reconcile import accepted_from_row, compare

BTC = DEFAULT_MARKETS[0]


def row(order_id: int, status: str = "NEW", executed: int = 0, last_seq: int = 0, offset: int = 50) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "user_id": 7,
        "symbol": BTC.symbol,
        "client_order_id": f"c{order_id}",
        "side": "SELL",
        "type": "LIMIT",
        "tif": "GTC",
        "price_ticks": 5_000_000,
        "qty_lots": 100,
        "quote_nu": 0,
        "status": status,
        "executed_lots": executed,
        "prevented_lots": 0,
        "iceberg_lots": 0,
        "maker_fee_bps": -1,
        "taker_fee_bps": -1,
        "hold_atoms": 100 * BTC.atoms_per_lot,
        "stp": "EXPIRE_MAKER",
        "created_ts": 1_700_000_000_000,
        "last_seq": last_seq,
        "src_partition": 1,
        "src_offset": offset,
    }


def resting(order_id: int, remaining: int = 100, executed: int = 0) -> RestingOrder:
    return RestingOrder(
        order_id=order_id,
        user_id=7,
        client_order_id=f"c{order_id}",
        side=Side.SELL,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price_ticks=5_000_000,
        qty_lots=100,
        remaining=remaining,
        executed_lots=executed,
        cum_nu=0,
        created_ts=1,
        arrival=1,
        stp=StpMode.EXPIRE_MAKER,
    )


STATE = BookState(seq=10, next_trade_id=3, src_partition=1, src_offset=40)


def test_agreeing_books_are_clean() -> None:
    warm = {1: row(1, last_seq=4), 2: row(2, "PARTIALLY_FILLED", executed=30, last_seq=9), 3: row(3, offset=45)}
    report = compare(BTC, 10, STATE, [resting(1), resting(2, 70, 30)], [3], warm)
    assert report.in_sync and report.clean, report


def test_stale_hot_entries_are_found_even_in_flight() -> None:
    warm = {1: row(1, last_seq=4), 2: row(2, "FILLED", executed=100, last_seq=9)}
    report = compare(BTC, 8, STATE, [resting(1)], [1, 2, 99], warm)
    assert not report.in_sync
    assert report.stale == [1, 2, 99]
    assert not report.missing and not report.conflicts


def test_an_accepted_order_the_matcher_never_got_is_resent_with_its_position() -> None:
    report = compare(BTC, 10, STATE, [], [], {5: row(5, offset=41)})
    assert [o.order_id for o in report.missing] == [5]
    sent = report.missing[0]
    assert (sent.src_partition, sent.src_offset, sent.budget) == (1, 41, 100)
    assert sent == accepted_from_row(row(5, offset=41), BTC)


def test_nothing_but_stale_entries_is_judged_while_settlement_lags() -> None:
    report = compare(BTC, 9, STATE, [resting(8)], [], {5: row(5, offset=41)})
    assert report.clean and not report.in_sync


def test_conflicts_are_reported_not_repaired() -> None:
    warm = {
        1: row(1, last_seq=3),  # open, matched once, lost from the book
        3: row(3, "PARTIALLY_FILLED", executed=10, last_seq=6),  # book says 20 executed
        4: row(4, "CANCELED", last_seq=7),  # ended, still resting
    }
    report = compare(BTC, 10, STATE, [resting(3, 80, 20), resting(4)], [], warm)
    assert not report.missing and not report.stale
    assert len(report.conflicts) == 3, report.conflicts
    assert any("order 4 rests in the book but Postgres has CANCELED" in c for c in report.conflicts)


def test_an_order_whose_position_the_matcher_passed_is_resent_right_after_the_book() -> None:
    """Its record was lost (a broker's log): at its own position the matcher would take it for a redelivery."""
    state = msgspec.structs.replace(STATE, src_offset=source_position(40, 2))  # record 40's last request was #2
    warm = {
        2: row(2, offset=source_position(12, 0)),
        6: row(6, offset=source_position(7, 1)),
        5: row(5, offset=source_position(41, 0)),  # not passed yet
    }
    report = compare(BTC, 10, state, [], [], warm)
    assert not report.conflicts, report.conflicts
    positions = {o.order_id: (o.src_partition, o.src_offset) for o in report.missing}
    assert positions[5] == (1, source_position(41, 0)), "one not yet passed keeps its own position"
    assert positions[6] == (1, source_position(40, 3)) and positions[2] == (1, source_position(40, 4)), positions
    by_id = {o.order_id: o for o in report.missing}
    assert by_id[2] == msgspec.structs.replace(
        accepted_from_row(warm[2], BTC), src_partition=1, src_offset=source_position(40, 4)
    )


def test_no_free_position_after_a_full_record_is_a_conflict() -> None:
    full = msgspec.structs.replace(STATE, src_offset=source_position(3, REQUEST_SLOTS - 1))
    report = compare(BTC, full.seq, full, [], [], {2: row(2, offset=12)})
    assert not report.missing
    assert report.conflicts == ["order 2 was never matched and no position after the book is free"]


def test_a_hot_order_whose_command_a_lost_log_took_is_resent_after_the_book() -> None:
    """Its hot entry says it is on its way, but the matcher is past its position (the log that carried its
    command is gone): re-sent right after the book. A hot order ahead of the book is still on its way."""
    warm = {5: row(5, offset=30), 6: row(6, offset=45)}
    report = compare(BTC, 10, STATE, [], [5, 6], warm)
    assert report.stale == [] and not report.conflicts
    assert [(o.order_id, o.src_partition, o.src_offset) for o in report.missing] == [(5, 1, 41)]


def test_an_order_of_a_lost_log_is_resent_though_the_matcher_never_reached_its_position() -> None:
    """After a broker lost its log the matcher's position is still the old log's last, below the lost order's:
    only the log epoch tells that its command can no longer come (``log_epoch``, where the current log began)."""
    warm = {7: row(7, offset=45)}  # ahead of the book's position 40, on log 0 (partition 1 of epoch 0)
    assert compare(BTC, 10, STATE, [], [7], warm).missing == []  # on the same log: still on its way
    report = compare(BTC, 10, STATE, [], [7], warm, log_epoch=1)
    assert [(o.order_id, o.src_offset) for o in report.missing] == [(7, 41)] and not report.conflicts


def test_while_settlement_lags_the_orders_a_lost_log_may_have_taken_are_counted_not_judged() -> None:
    warm = {7: row(7, offset=45), 8: row(8, last_seq=3)}  # 8 was matched: the book lost it, not the log
    assert compare(BTC, 8, STATE, [], [7], warm).unjudged == 0  # the same log: on its way
    report = compare(BTC, 8, STATE, [], [7], warm, log_epoch=1)
    assert not report.in_sync and report.unjudged == 1 and not report.missing and not report.conflicts
