"""Depth against a simple model: applied events give the model's levels; an event that breaks the depth
raises and changes nothing, so the events after it still apply."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.market_data.depth import ID_MAX, Depth
from shared.domain import Side
from shared.messages import LevelDelta

good = st.builds(LevelDelta, st.sampled_from(Side), st.integers(1, 50), st.integers(0, 20))
bad = st.one_of(
    st.builds(LevelDelta, st.sampled_from(Side), st.integers(-5, 0), st.integers(0, 20)),
    st.builds(LevelDelta, st.sampled_from(Side), st.integers(1, 50), st.integers(-(10**20), -1)),
    st.builds(LevelDelta, st.sampled_from(Side), st.integers(1, 50), st.integers(ID_MAX + 1, 10**30)),
)
events = st.lists(st.tuples(st.lists(good, max_size=4), st.booleans(), st.lists(bad, min_size=1, max_size=2)))


@given(events)
def test_depth_matches_the_model_and_a_broken_event_changes_nothing(steps):
    depth, model = Depth(), {Side.BUY: {}, Side.SELL: {}}
    seq = 0
    for deltas, broken, poison in steps:
        seq += 1
        if broken:  # its bad deltas after good ones: nothing of it may stick
            before = (dict(depth.bids), dict(depth.asks), depth.seq)
            try:
                depth.apply(seq, [*deltas, *poison])
            except ValueError:
                pass
            else:
                raise AssertionError("a broken event was applied")
            assert (depth.bids, depth.asks, depth.seq) == before
            continue
        assert depth.apply(seq, deltas)
        for d in deltas:
            if d.lots:
                model[d.side][d.price_ticks] = d.lots
            else:
                model[d.side].pop(d.price_ticks, None)
        assert depth.bids == model[Side.BUY] and depth.asks == model[Side.SELL]
        assert not depth.apply(seq, deltas)  # a redelivery


def test_an_update_id_past_int64_is_refused():
    depth = Depth()
    try:
        depth.apply(10**20, [])
    except ValueError as exc:
        assert "update id" in str(exc)
    else:
        raise AssertionError("applied")
    assert depth.seq == 0
