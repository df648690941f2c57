"""The pure parts of settling a batch (``services/settlement/batch.py``): the breaker's input.

``traded`` gives each symbol its trades of the batch, (time, price ticks), in the order they were settled, and
nothing for a symbol that did not trade: the breaker sees every trade once, in sequence, whatever the batch
interleaves. ``unappliable`` has its own file (``test_unappliable.py``); ``settle`` runs against Postgres in
``tests/integration/test_settlement_halts.py``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.settlement.batch import traded
from shared.messages import MatchedEvent, Trade

events = st.lists(
    st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT", "XRPUSDT"]), st.lists(st.integers(1, 10**6), max_size=4)),
    max_size=30,
)


@given(events)
def test_each_symbol_gets_its_trades_in_settled_order_and_a_quiet_one_nothing(
    plan: list[tuple[str, list[int]]],
) -> None:
    batch: list[MatchedEvent] = []
    want: dict[str, list[tuple[int, int]]] = {}
    ts = 0
    for seq, (symbol, prices) in enumerate(plan, start=1):
        trades = []
        for price in prices:
            ts += 1
            trades.append(Trade(ts, price, 1, 1, 2, 1, 2, True, 0, 0, ts))
            want.setdefault(symbol, []).append((ts, price))
        batch.append(MatchedEvent(symbol, seq, ts, seq, trades=trades))
    assert traded(batch) == want
