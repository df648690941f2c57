"""``level_changes``: what brings market-data's depth to the matcher's book (pure), against a model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.market_data.depth import Depth
from services.market_data.resync import level_changes
from shared.booksnapshot import RestingOrder
from shared.domain import OrderType, Side, StpMode, TimeInForce

levels = st.dictionaries(st.integers(1, 50), st.integers(1, 1000), max_size=8)
orders = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 50), st.integers(1, 100), st.booleans())
)


def _order(i: int, side: Side, price: int, remaining: int, waiting: bool) -> RestingOrder:
    """A resting order, or with ``waiting`` a stop not yet triggered (in the snapshot, not in the depth)."""
    return RestingOrder(
        order_id=i, user_id=1, client_order_id=f"c{i}", side=side, type=OrderType.LIMIT, tif=TimeInForce.GTC,
        price_ticks=price, qty_lots=remaining, remaining=remaining, executed_lots=0, cum_nu=0, created_ts=0,
        arrival=i, stp=StpMode.NONE, stop_ticks=price if waiting else 0, working_ts=-1 if waiting else 0,
    )  # fmt: skip


@given(levels, levels, orders)
def test_the_changes_turn_the_depth_into_the_books_levels(
    bids: dict[int, int], asks: dict[int, int], book: list[tuple[Side, int, int, bool]]
) -> None:
    depth = Depth(bids=dict(bids), asks=dict(asks), seq=5, pushed=5)
    resting = [_order(i, side, price, lots, waiting) for i, (side, price, lots, waiting) in enumerate(book)]
    want: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    for o in resting:
        if o.working_ts == -1:
            continue
        want[o.side][o.price_ticks] = want[o.side].get(o.price_ticks, 0) + o.remaining
    changes = level_changes(depth, resting)
    assert depth.apply(9, changes)
    assert (depth.bids, depth.asks) == (want[Side.BUY], want[Side.SELL])
    assert len(changes) == len({(d.side, d.price_ticks) for d in changes}), "each level once"
    assert level_changes(depth, resting) == [], "nothing left to change"
    diff = depth.take_diff()
    assert diff is not None and (diff.first, diff.last) == (6, 9), "the next diff continues the update ids"
