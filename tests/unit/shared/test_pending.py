"""What the processor does with each pending order on start (``shared.pending.sort_out``): pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.domain import OrderType, Side, TimeInForce
from shared.messages import NewListRequest, NewOrderRequest
from shared.pending import entry, field_of, parse, sort_out


def _request(order_id: int, ts: int = 1_700_000_000_000) -> NewOrderRequest:
    return NewOrderRequest(
        order_id=order_id,
        user_id=7,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price="40000",
        quantity="0.001",
        client_order_id=f"c{order_id}",
        ts=ts,
    )


def test_an_entry_reads_back_as_written() -> None:
    r = _request(12)
    assert parse(entry(r, 3)) == (3, r)


def test_a_decided_order_is_deleted_a_lost_one_sent_again_one_ahead_left() -> None:
    entries = {
        b"1": entry(_request(1), 0),  # decided: it has a row
        b"2": entry(_request(2, ts=20), 0),  # lost with log 0
        b"3": entry(_request(3, ts=10), 0),  # lost too, older
        b"4": entry(_request(4), 1),  # on the current log: still ahead of the processor
        b"5": b"not an entry",
    }
    found = sort_out(entries, stored={1}, log_epoch=1)
    assert sorted(found.decided) == ["1", "5"]
    assert [r.order_id for r in found.lost] == [3, 2]  # oldest first, as they were taken
    assert found.ahead == 1


@given(
    st.dictionaries(
        st.integers(1, 10**6),
        st.tuples(st.integers(0, 5), st.booleans(), st.integers(0, 10**13)),
        max_size=30,
    ),
    st.integers(0, 5),
)
def test_every_entry_is_sorted_once_by_the_rule(orders: dict[int, tuple[int, bool, int]], log_epoch: int) -> None:
    entries = {str(i).encode(): entry(_request(i, ts), epoch) for i, (epoch, _, ts) in orders.items()}
    stored = {i for i, (_, has_row, _) in orders.items() if has_row}
    found = sort_out(entries, stored, log_epoch)
    assert {int(f) for f in found.decided} == stored
    assert {r.order_id for r in found.lost} == {i for i, (e, row, _) in orders.items() if not row and e < log_epoch}
    assert found.ahead == sum(1 for e, row, _ in orders.values() if not row and e >= log_epoch)
    assert [(r.ts, r.order_id) for r in found.lost] == sorted((r.ts, r.order_id) for r in found.lost)


def test_an_order_list_is_kept_under_its_first_legs_id_and_decided_by_its_row() -> None:
    """An order list waits under its first leg's order id: decided once that leg has a row (the processor writes
    every leg's, accepted or refused), sent again whole when lost with an older log."""
    legs = [_request(21), _request(22)]
    listed = NewListRequest(
        list_id=20, user_id=7, symbol="BTCUSDT", contingency="OCO", list_client_id="L", working=2, legs=legs, ts=5
    )
    assert field_of(listed) == 21 and parse(entry(listed, 0)) == (0, listed)
    entries = {b"21": entry(listed, 0), b"1": entry(_request(1), 0)}
    assert sort_out(entries, stored={21}, log_epoch=1).decided == ["21"]
    lost = sort_out(entries, stored=set(), log_epoch=1).lost
    assert listed in lost and len(lost) == 2
