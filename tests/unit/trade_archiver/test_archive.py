"""A crash at any write of any flush, any number of times, leaves every trade in the archive exactly once.

The archive protocol (``Archive`` over a ``Store``, ranges from ``OpenRange``, recovery from ``plan``) runs
over an in-memory store that dies after a chosen number of writes, as a SIGKILL would: the writes before
it stay, nothing after it happens. After each crash a new archive recovers and consumes again, with other
batch sizes, as a restarted consumer would get. At every crash, the data folder as Athena lists it holds
no trade twice; at the end it holds each trade once, the manifests tile the log, and no intent is left.
The SIGKILL of the real service is tests/integration/test_trade_archiver.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.trade_archiver.archive import Archive, committed_files, files_of
from services.trade_archiver.layout import (
    MANIFESTS,
    TRADES,
    Span,
    data_key,
    intent_key,
    manifest_prefix,
    manifest_span,
)
from services.trade_archiver.manifest import Intent, encode, gaps
from services.trade_archiver.ranges import OpenRange
from tests.unit.trade_archiver.flows import (
    PARTITION,
    Crash,
    DictStore,
    DyingStore,
    consume,
    rows,
    trade_log,
    trades_in,
    unique_trades,
)

ops = st.lists(
    st.tuples(
        st.sampled_from(["new", "new", "new", "envelope", "envelope", "dup", "poison"]),
        st.integers(0, 30),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops,
    st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=5), min_size=1, max_size=5),
    st.integers(1, 4),
    st.lists(st.integers(0, 25), max_size=5),
)
@example([("new", 0, 0), ("new", 1, 2), ("new", 2, 1), ("new", 3, 0)], [[4], [1]], 1, [2])  # data file, no manifest
@example([("new", 0, 0), ("dup", 0, 0), ("poison", 0, 0), ("new", 0, 0)], [[2]], 1, [3, 0, 1])
@example([("envelope", 0, 1), ("new", 1, 0), ("dup", 0, 0), ("envelope", 1, 2)], [[1], [2]], 1, [1, 3, 2])
def test_any_crash_at_any_write_leaves_each_trade_exactly_once(ops, size_plans, flush_every, crashes):
    log = trade_log(ops)
    expected = unique_trades(log)
    memory = DictStore()
    store = DyingStore(memory)
    for life, budget in enumerate([*crashes, None]):
        store.revive(budget)
        try:
            asyncio.run(consume(store, log, size_plans[life % len(size_plans)], flush_every))
        except Crash:
            listed = trades_in(memory, memory.list(TRADES))  # what Athena would read right now
            assert max(listed.values(), default=1) == 1, f"a trade twice in the folder after crash {life}"
            assert not (trades_in(memory, committed_files(memory)) - expected)
            continue
        assert budget is None or not store.dead
    assert trades_in(memory, memory.list(TRADES)) == expected
    assert trades_in(memory, committed_files(memory)) == expected
    assert memory.get(intent_key(PARTITION)) is None
    spans = [s for s in map(manifest_span, memory.list(manifest_prefix(PARTITION))) if s is not None]
    assert gaps(spans) == [] and min(s.first for s in spans) == 0 and max(s.last for s in spans) == len(log) - 1
    assert all(k.startswith((TRADES, MANIFESTS)) for k in memory.objects)


def test_a_file_only_the_crashed_attempt_wrote_is_removed_before_the_redo_commits():
    """Redo is deterministic, so this needs a changed outcome (new code, a fixed market): simulated here."""
    store = DictStore()
    log = trade_log([("new", 0, 0), ("new", 1, 0)])
    stray = data_key("2025-12-31", "XRPUSDT", Span(PARTITION, 0, 1))

    async def crashed_then_redone() -> None:
        archive = Archive(store)
        await archive.recover(PARTITION)
        open_range = OpenRange(PARTITION, 0, {})
        open_range.feed([(i, e) for i, entry in enumerate(log) for e in entry or ()], len(log), rows, 0.0)
        cut = open_range.cut()
        assert cut is not None
        await archive.commit(cut)
        manifest_keys = store.list(manifest_prefix(PARTITION))
        for key in manifest_keys:
            store.objects.pop(key)  # as if the crash came before the manifest ...
        store.objects[stray] = b"from the crashed attempt"  # ... and that attempt had written one more file
        intent = Intent(partition=PARTITION, first=0, last=1, files=sorted([*files_of(cut), stray]))
        store.objects[intent_key(PARTITION)] = encode(intent)
        await consume(store, log, [1], 1)

    asyncio.run(crashed_then_redone())
    assert stray not in store.objects
    assert store.get(intent_key(PARTITION)) is None
    assert trades_in(store, store.list(TRADES)) == Counter({("BTCUSDT", 1): 1, ("ETHUSDT", 1): 1})
