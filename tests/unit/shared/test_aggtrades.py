"""Aggregation against a simple model: a symbol's trades cut into runs of one taker order at one price (and one
time); read from any trade on, with the trade before it, the aggregates are the model's that start there; the
fills of every aggregate add up to the trades."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from shared.aggtrades import AggTrade, Fill, aggregate, taker_order


def _trades(steps: list[tuple[int, int, int, bool, int]]) -> list[Fill]:
    """Trades in id order: each step (taker, price, qty, buyer maker, time step)."""
    out, ts = [], 1_000
    for i, (taker, price, qty, maker, dt) in enumerate(steps, start=1):
        ts += dt
        out.append(Fill(i, price, qty, taker, maker, ts))
    return out


def _model(fills: list[Fill]) -> list[AggTrade]:
    """Runs cut wherever the taker, price, side or time changes; obviously right, slow."""
    runs: list[list[Fill]] = []
    for f in fills:
        last = runs[-1][-1] if runs else None
        key = (f.taker_order_id, f.price_ticks, f.buyer_is_maker, f.ts)
        if last is not None and key == (last.taker_order_id, last.price_ticks, last.buyer_is_maker, last.ts):
            runs[-1].append(f)
        else:
            runs.append([f])
    return [
        AggTrade(
            r[0].trade_id,
            r[0].price_ticks,
            sum(f.qty_lots for f in r),
            r[0].trade_id,
            r[-1].trade_id,
            r[0].ts,
            r[0].buyer_is_maker,
        )
        for r in runs
    ]


steps = st.lists(
    st.tuples(st.integers(1, 3), st.integers(10, 12), st.integers(1, 9), st.booleans(), st.sampled_from([0, 0, 1])),
    max_size=60,
)


@given(steps, st.integers(0, 70))
@example([(1, 10, 1, False, 0), (1, 10, 2, False, 0), (2, 10, 3, False, 0)], 1)
def test_aggregates_from_any_trade_are_the_models(walk, cut):
    fills = _trades(walk)
    want = _model(fills)
    assert aggregate(fills) == want
    assert sum(a.qty_lots for a in want) == sum(f.qty_lots for f in fills)
    assert all(a.agg_id == a.first_id <= a.last_id for a in want)
    cut = min(cut, len(fills))
    before = fills[cut - 1] if cut else None
    # from trade ``cut`` on: the aggregates starting there (one cut through is left out, it started earlier)
    assert aggregate(fills[cut:], before) == [a for a in want if a.first_id > cut]


def test_the_taker_is_the_order_that_was_not_the_maker():
    assert taker_order(buyer_order_id=7, seller_order_id=9, buyer_is_maker=True) == 9
    assert taker_order(buyer_order_id=7, seller_order_id=9, buyer_is_maker=False) == 7
