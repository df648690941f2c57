"""``spot admin audit``: prove that balances, ledger and books agree, or name the first difference.

**Money** (``shared.invariants``, the checks the tests assert after every scenario), on one REPEATABLE READ
snapshot of Postgres: every balance rebuilt from the ledger equals the balances table; per asset, deposits minus
withdrawals equal the sum of balances (the fee account included); no balance is negative; ``held`` is exactly
what open orders still need plus the pending withdrawals; every hold was released once (an ended order holds
nothing, a withdrawal has its hold and at most one debit or release).

**Books**, per symbol: the matcher's committed book in Redis against the warm book in Postgres, and against the
depth market data serves, through the pure matching core:

* every open order the matcher has taken rests in the book with the same side, price, executed and remaining
  lots; every resting order is open in Postgres; an accepted order not yet taken waits in the hot book
  (``shared.reconcile.compare``, the reconciler's comparison);
* the resting orders, restored into the pure core (``services.matcher.book.Book``), give a book that is not
  crossed and whose levels equal market data's depth (``md:{SYMBOL}:bids|asks``), the depth clients see.

Why the orders table, not ``matched-events``: a rebuild from the topic needs the symbol's events from its first
one, and no deployment keeps them. On the local broker each data topic is a ring of three segments of
``KAFKA_SEGMENT_S`` seconds (``shared/segments.py``: a slot is deleted and re-created once every group has left
it), so ``matched-events`` holds the last ~15 s; MSK deletes records past ``retention.ms``. A replay would have
to start from a snapshot, and the only one is the Redis book under audit. The orders table keeps every order for
good and is written from the matcher's own events by ``(symbol, seq)``: the independent record to compare with.

The stores are read apart, so a symbol is compared only when they describe the same sequence (settlement's
cursor, the book's ``seq`` and market data's ``depth_seq`` equal); under flow the read is repeated, for at most
``wait_s``. A difference counts once every read in step for ``CONFIRM_S`` has shown it, so an order in flight
between two stores is never reported. A symbol never in step within the wait is reported unverified, which is
not a difference. Every run is recorded in ``audit_runs``; settlement exposes the newest as ``spot_audit_ok``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from services.matcher.book import Book
from shared import postgres
from shared import redis as sredis
from shared.booksnapshot import BookState, RestingOrder, decode_order, decode_state
from shared.config import Settings
from shared.domain import Market, Side, fmt_amount
from shared.invariants import MoneyReport, money_report
from shared.lifecycle import now_ms
from shared.reconcile import add_rows, compare, read_warm
from shared.rediskeys import hot_key, market_key, orders_key, state_key

DEFAULT_WAIT_S = 10.0  # how long a symbol may take to be read in step under flow
CONFIRM_S = 1.0  # how long a difference must persist, across reads in step, to count
POLL_S = 0.1


@dataclass(slots=True)
class HotView:
    """What Redis holds of one symbol, read in one MULTI: the matcher's book and hot entries, market data's depth."""

    state: BookState
    resting: list[RestingOrder]
    hot: list[int]
    depth_seq: int
    bids: dict[int, int]
    asks: dict[int, int]


async def read_hot(cache: sredis.Client, symbol: str) -> HotView:
    pipe = cache.pipeline(transaction=True)  # one hash tag, {SYMBOL}: one slot on a cluster
    pipe.get(state_key(symbol))
    pipe.hvals(orders_key(symbol))
    pipe.hkeys(hot_key(symbol))
    pipe.get(market_key(symbol, "depth_seq"))
    pipe.hgetall(market_key(symbol, "bids"))
    pipe.hgetall(market_key(symbol, "asks"))
    state, orders, hot, depth_seq, bids, asks = await pipe.execute()
    return HotView(
        decode_state(state) if state else BookState(),
        [decode_order(o) for o in orders],
        [int(k) for k in hot],
        int(depth_seq or 0),
        {int(p): int(q) for p, q in bids.items()},
        {int(p): int(q) for p, q in asks.items()},
    )


def book_differences(
    market: Market, settled_seq: int, view: HotView, warm: Mapping[int, Mapping[str, Any]]
) -> list[str] | None:
    """Every difference between the warm book, the hot book and the depth shown, or None when the three are not
    at the same sequence (nothing can be compared then). Pure."""
    seq = view.state.seq
    if settled_seq != seq or view.depth_seq != seq:
        return None
    report = compare(market, settled_seq, view.state, view.resting, view.hot, warm)
    diffs = list(report.conflicts)
    diffs += [f"order {o.order_id} is open in Postgres but neither in the hot book nor in the book"
              for o in report.missing]  # fmt: skip
    diffs += [f"hot-book entry {i} is stale (the order rests in the book, has ended or has no row)"
              for i in report.stale]  # fmt: skip
    book = Book(market, view.state)
    try:
        book.restore(view.resting)
    except Exception as exc:  # a record the core cannot rest is itself the difference
        return [*diffs, f"the resting orders do not make a book ({type(exc).__name__}: {exc})"]
    bid, ask = book.best_bid(), book.best_ask()
    if bid is not None and ask is not None and bid >= ask:
        diffs.append(f"the book is crossed: best bid {market.fmt_price(bid)} >= best ask {market.fmt_price(ask)}")
    for side, shown in ((Side.BUY, view.bids), (Side.SELL, view.asks)):
        held = dict(book.depth(side))
        for price in sorted(set(held) | set(shown), reverse=side is Side.BUY):
            if held.get(price, 0) != shown.get(price, 0):
                diffs.append(
                    f"depth {side} {market.fmt_price(price)}: market data shows {market.fmt_qty(shown.get(price, 0))}, "
                    f"the book holds {market.fmt_qty(held.get(price, 0))}"
                )
    return diffs


@dataclass(slots=True)
class BookAudit:
    symbol: str
    status: str  # "ok", "differs" or "unverified"
    seq: int
    differences: list[str] = field(default_factory=list)
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {"symbol": self.symbol, "status": self.status, "seq": self.seq, "differences": self.differences,
                "note": self.note}  # fmt: skip


async def audit_book(market: Market, db: asyncpg.Pool, cache: sredis.Client, wait_s: float) -> BookAudit:
    """Read the symbol's three views until they are in step and agree, or a difference persists ``CONFIRM_S``,
    or ``wait_s`` passes."""
    symbol, deadline = market.symbol, time.monotonic() + wait_s
    first_seen: dict[str, float] = {}
    while True:
        settled_seq, warm = await read_warm(db, symbol)
        view = await read_hot(cache, symbol)
        await add_rows(db, warm, view.hot)
        diffs = book_differences(market, settled_seq, view, warm)
        now = time.monotonic()
        if diffs == []:
            return BookAudit(symbol, "ok", view.state.seq)
        if diffs is not None:
            first_seen = {d: first_seen.get(d, now) for d in diffs}  # a difference gone from a read starts over
            confirmed = [d for d in diffs if now - first_seen[d] >= CONFIRM_S]
            if confirmed:
                return BookAudit(symbol, "differs", view.state.seq, confirmed)
        if now >= deadline:
            if diffs is None:
                note = (f"not in step within {wait_s:g} s: settlement at seq {settled_seq}, the book at "
                        f"{view.state.seq}, market data at {view.depth_seq}")  # fmt: skip
            else:
                note = f"differences that did not persist {CONFIRM_S:g} s: {'; '.join(diffs)}"
            return BookAudit(symbol, "unverified", view.state.seq, note=note)
        await asyncio.sleep(POLL_S)


@dataclass(slots=True)
class Audit:
    money: MoneyReport
    books: list[BookAudit]
    started_at: int
    finished_at: int

    @property
    def differences(self) -> list[str]:
        return [*self.money.differences, *(f"{b.symbol}: {d}" for b in self.books for d in b.differences)]

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_json(self) -> dict[str, object]:
        first = self.differences[0] if self.differences else None
        return {
            "ok": self.ok,
            "firstDifference": first,
            "money": {
                "differences": self.money.differences,
                "totals": {asset: fmt_amount(total) for asset, total in sorted(self.money.totals.items())},
            },
            "books": [b.as_json() for b in self.books],
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }


RECORD = "INSERT INTO audit_runs (started_at, finished_at, ok, difference, report) VALUES ($1, $2, $3, $4, $5)"


async def run(settings: Settings, wait_s: float = DEFAULT_WAIT_S, record: bool = True) -> Audit:
    """Audit money and every book; recorded in ``audit_runs`` unless ``record`` is False."""
    async with postgres.pool(settings, max_size=4) as db, sredis.client(settings) as cache:
        started = now_ms()
        money = await money_report(db)
        markets = await postgres.load_markets(db)
        books = list(await asyncio.gather(*(audit_book(m, db, cache, wait_s) for m in markets.values())))
        audit = Audit(money, books, started, now_ms())
        if record:
            first = audit.differences[0] if audit.differences else ""
            report = orjson.dumps(audit.as_json()).decode()
            await db.execute(RECORD, audit.started_at, audit.finished_at, audit.ok, first, report)
    return audit
