"""Market-data's depth after the broker lost its log: caught up from the matcher's committed book.

A ``kill -9`` of the local fleet loses the broker's log with the events market-data had not read yet. The
matcher's outbox gives again only what settlement had not applied (``services/matcher/retention.py``), so
market-data, which may have been further behind, would keep levels those events changed as they were,
for good. So on its first start on a new log (the fleet's log epoch past the one it last ran on, kept per
symbol in ``md:{S}:log_epoch``), market-data compares its depth with the book the matcher committed
(``shared/booksnapshot.py``, read as the reconciler reads it) and, if the book is ahead, applies the
difference as one step at the book's seq. The next diff carries it, so update ids stay continuous and a
client's local book comes right without a resync. What such a lost event told owners on their user stream
and its trades on the trade streams are not given again (the recent trades list, and the 24h ticker, miss them).

A drained stop left nothing unread (its depth is at the book's seq) and changes nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from shared import redis as sredis
from shared.booksnapshot import RestingOrder
from shared.domain import Side
from shared.messages import LevelDelta
from shared.reconcile import read_book
from shared.rediskeys import market_key

from .depth import Depth
from .streams import FAST, MarketState, publish_depth, publish_partial

log = logging.getLogger("market-data")


def level_changes(depth: Depth, resting: Iterable[RestingOrder]) -> list[LevelDelta]:
    """What turns ``depth``'s levels into the book's (pure): each level whose total differs, at the book's
    total (0 removes it). Waiting stops are in the snapshot but not in the depth."""
    book: dict[tuple[Side, int], int] = {}
    for o in resting:
        if o.working_ts == -1:  # a conditional order still waiting for its trigger: not on the book yet
            continue
        key = (o.side, o.price_ticks)
        book[key] = book.get(key, 0) + o.remaining
    ours = {(Side.BUY, p): q for p, q in depth.bids.items()} | {(Side.SELL, p): q for p, q in depth.asks.items()}
    changes = [LevelDelta(side, price, lots) for (side, price), lots in book.items() if ours.get((side, price)) != lots]
    changes += [LevelDelta(side, price, 0) for (side, price) in ours if (side, price) not in book]
    return sorted(changes, key=lambda d: (d.side.value, d.price_ticks))


async def catch_up(cache: sredis.Client, symbol: str, depth: Depth, log_epoch: int) -> bool:
    """On a new log, bring ``depth`` to the matcher's committed book when that is ahead; True if it moved
    (``on_new_log`` persists and pushes it, and marks the epoch)."""
    seen = await cache.get(market_key(symbol, "log_epoch"))
    if seen is not None and int(seen) >= log_epoch:
        return False
    state, resting = await read_book(cache, symbol)
    if state.seq <= depth.seq:
        return False
    changes = level_changes(depth, resting)
    depth.apply(state.seq, changes)
    log.warning(
        "%s: depth caught up from the matcher's book, update id %d (events lost with the broker's log; "
        "%d levels changed)",
        symbol,
        state.seq,
        len(changes),
    )
    return True


async def on_new_log(cache: sredis.Client, states: Mapping[str, MarketState], log_epoch: int, now: int) -> None:
    """``catch_up`` every market, then persist and push what moved and mark the epoch, one atomic write per
    symbol (a crash before it leaves the epoch unmarked, and the next start catches up again)."""
    pipe = cache.pipeline(transaction=False)
    for symbol, state in states.items():
        w = state.atomic()
        if await catch_up(cache, symbol, state.depth, log_epoch):
            diff = state.depth.take_diff()
            assert diff is not None  # the depth moved
            publish_depth(w, state, diff, now)
            publish_partial(w, state, FAST)
        w.call("SET", market_key(symbol, "log_epoch"), log_epoch)
        w.queue(pipe)
    await pipe.execute()
