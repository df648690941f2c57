"""Depth against a simple model: applied events give the model's levels; an event that breaks the depth
raises and changes nothing, so the events after it still apply."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.market_data.depth import ID_MAX, Depth, Diff
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


Client = tuple[dict[int, int], dict[int, int], int]  # a client's local book: bids, asks, its snapshot's id


def _follow(clients: list[Client], diff: Diff) -> None:
    """Each client applies a pushed diff, unless its snapshot is already past it."""
    for bids, asks, snapshot_id in clients:
        if diff.last <= snapshot_id:
            continue
        for book, changes in ((bids, diff.bids), (asks, diff.asks)):
            for price, lots in changes.items():
                if lots:
                    book[price] = lots
                else:
                    book.pop(price, None)


@given(st.lists(st.tuples(st.lists(good, max_size=4), st.booleans(), st.booleans()), max_size=40))
def test_a_client_from_any_snapshot_plus_the_diffs_after_it_has_the_depth(steps):
    """Binance's local-book recipe: take the snapshot (``lastUpdateId``), drop diffs with ``u`` at or below it,
    apply the rest; the pushed diffs are gap-free (``U`` = previous ``u`` + 1), so the client ends where the
    depth is."""
    depth, last_u, clients = Depth(), 0, []
    for seq, (deltas, push, snapshot) in enumerate(steps, start=1):
        depth.apply(seq, deltas)
        if snapshot:  # REST depth: the levels and the id they are at, between two pushes
            clients.append((dict(depth.bids), dict(depth.asks), depth.seq))
        if push or seq == len(steps):  # the last step pushes whatever is left
            diff = depth.take_diff()
            if diff is None:
                assert depth.seq == last_u  # nothing new: nothing to push
                continue
            assert diff.first == last_u + 1 and diff.last == depth.seq
            last_u = diff.last
            _follow(clients, diff)
    assert depth.take_diff() is None
    for bids, asks, _ in clients:
        assert (bids, asks) == (depth.bids, depth.asks)


@given(st.lists(good, max_size=30), st.integers(1, 60))
def test_top_is_the_best_levels_first(deltas, limit):
    depth = Depth()
    for seq, d in enumerate(deltas, start=1):
        depth.apply(seq, [d])
    assert depth.top(Side.BUY, limit) == sorted(depth.bids.items(), key=lambda kv: -kv[0])[:limit]
    assert depth.top(Side.SELL, limit) == sorted(depth.asks.items())[:limit]
    assert all(lots > 0 for _, lots in depth.top(Side.BUY, limit) + depth.top(Side.SELL, limit))


@given(st.lists(st.tuples(st.lists(good, max_size=4), st.booleans(), st.booleans(), st.booleans()), max_size=40))
def test_the_one_second_stream_is_the_100ms_diffs_folded_and_gap_free(steps):
    """``@depth`` (1,000 ms) folds the 100 ms diffs pushed since its last push: its ids chain (``U`` = previous
    ``u`` + 1), each ``u`` is one the 100 ms stream and the snapshot had, and a client of either speed from any
    snapshot ends where the depth is."""
    depth, fast_clients, slow_clients, last_u, fast_ids = Depth(), [], [], 0, {0}
    for seq, (deltas, push, slow, snapshot) in enumerate(steps, start=1):
        depth.apply(seq, deltas)
        if push or seq == len(steps):
            diff = depth.take_diff()
            if diff is not None:
                fast_ids.add(diff.last)
                _follow(fast_clients, diff)
        if snapshot:  # REST reads what the 100 ms pushes wrote: the snapshot is at ``pushed``
            book = depth.partial(10**6)
            view = (dict(book[0]), dict(book[1]), depth.seq)
            if depth.seq == depth.pushed:
                fast_clients.append((dict(view[0]), dict(view[1]), view[2]))
                slow_clients.append(view)
        if slow or seq == len(steps):
            folded = depth.take_slow_diff()
            if folded is None:
                assert depth.pushed == last_u
                continue
            assert folded.first == last_u + 1 and folded.last in fast_ids
            last_u = folded.last
            _follow(slow_clients, folded)
    assert depth.take_slow_diff() is None
    for bids, asks, _ in fast_clients + slow_clients:
        assert (bids, asks) == (depth.bids, depth.asks)


def test_partial_is_the_top_of_each_side():
    depth = Depth()
    depth.apply(
        1, [LevelDelta(Side.BUY, p, 1) for p in range(1, 30)] + [LevelDelta(Side.SELL, p, 2) for p in range(40, 70)]
    )
    bids, asks = depth.partial(5)
    assert bids == [(29, 1), (28, 1), (27, 1), (26, 1), (25, 1)] and asks == [
        (40, 2),
        (41, 2),
        (42, 2),
        (43, 2),
        (44, 2),
    ]
