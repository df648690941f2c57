"""The reconciler: find and repair differences between the warm book (Postgres) and the hot book (Redis).

Two callers: the operator's job (``spot admin reconcile``, ``spot/reconcile.py``) and the order processor,
which runs it on start before it serves; the audit (``spot admin audit``, ``spot/audit.py``) reads both books
and compares them the same way, repairing nothing. Built on the shared layouts only (``shared.rediskeys``,
``shared.booksnapshot``): it reads the matcher's book, never imports the matcher.

Aurora is written first. An accepted order is a row in ``orders`` before it is a hot-book entry
(``hot:{SYMBOL}:accepted``) and a ``validated-orders`` record; the matcher then moves it into its book
(``book:{SYMBOL}:orders``) and settlement folds the matched events back into Postgres. Normally a crash
in between is completed by the redelivery. The reconciler checks that it was, per symbol:

* **stale** hot entries (the order already rests in the book, has ended, or has no row): deleted;
* **missing** orders (open in Postgres, never matched, not in the book, and settlement has caught up with
  the book, so nothing is in flight; with a hot entry only if the matcher's position is past theirs, so their
  command was lost with a broker's log): re-sent to the hot book and ``validated-orders``
  with their original source position, which the matcher deduplicates by, so a re-send never doubles. One
  whose position the matcher has already passed (its record was lost with a broker's log) would be taken
  for a redelivery: it is re-sent at a free position right after the book's (``after_the_book``);
* **conflicts** (a resting order Postgres says has ended, an open order the book lost, different
  remaining quantities): reported, not guessed at; they mean a bug or lost data and need an operator.

Comparisons other than stale entries need settlement at the book's sequence (``settlement_cursor`` =
book ``seq``); a symbol in flight is reported as such and checked again on the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from shared import kafka
from shared import redis as sredis
from shared.booksnapshot import BookState, RestingOrder, decode_order, decode_state
from shared.domain import Market, OrderStatus, OrderType, Side, StpMode, TimeInForce
from shared.identity import EPOCH_STRIDE
from shared.messages import REQUEST_SLOTS, AcceptedOrder, AcceptedStop, Topic, encode, envelopes
from shared.rediskeys import hot_key, orders_key, state_key

OPEN = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value, OrderStatus.PENDING_NEW.value)
WARM_COLUMNS = (
    "order_id, user_id, symbol, client_order_id, side, type, tif, price_ticks, qty_lots, quote_nu, status, "
    "executed_lots, prevented_lots, iceberg_lots, maker_fee_bps, taker_fee_bps, hold_atoms, stp, created_ts, "
    "last_seq, src_partition, src_offset, stop_ticks, trailing_delta, order_list_id"
)


@dataclass(slots=True)
class Report:
    symbol: str
    in_sync: bool
    unjudged: int = 0  # while settlement lags: open orders of an earlier log the book does not hold
    stale: list[int] = field(default_factory=list)
    missing: list[AcceptedOrder] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.conflicts)

    def as_json(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "inSync": self.in_sync,
            "staleHotEntries": self.stale,
            "resent": [o.order_id for o in self.missing],
            "conflicts": self.conflicts,
        }


def accepted_from_row(row: Mapping[str, Any], market: Market) -> AcceptedOrder:
    """The ``AcceptedOrder`` the processor published for a row, position included."""
    side = Side(row["side"])
    unit = market.atoms_per_nu if side is Side.BUY else market.atoms_per_lot
    kind = OrderType(row["type"])
    fields: dict[str, Any] = {}
    if kind.is_stop:  # a conditional order goes as one (a row read before 0016 has neither column: 0)
        fields = {"stop_ticks": int(row.get("stop_ticks", 0)), "trailing_delta": int(row.get("trailing_delta", 0))}
    return (AcceptedStop if kind.is_stop else AcceptedOrder)(
        src_partition=int(row["src_partition"]),
        src_offset=int(row["src_offset"]),
        order_id=int(row["order_id"]),
        user_id=int(row["user_id"]),
        symbol=str(row["symbol"]),
        side=side,
        type=OrderType(row["type"]),
        tif=TimeInForce(row["tif"]),
        price_ticks=int(row["price_ticks"]),
        qty_lots=int(row["qty_lots"]),
        quote_nu=int(row["quote_nu"]),
        budget=int(row["hold_atoms"]) // unit,
        client_order_id=str(row["client_order_id"]),
        stp=StpMode(row["stp"]),
        ts=int(row["created_ts"]),
        iceberg_lots=int(row["iceberg_lots"]),
        maker_bps=int(row["maker_fee_bps"]),
        taker_bps=int(row["taker_fee_bps"]),
        **fields,
    )


def compare(
    market: Market,
    settled_seq: int,
    state: BookState,
    resting: Iterable[RestingOrder],
    hot: Iterable[int],
    warm: Mapping[int, Mapping[str, Any]],
    log_epoch: int = 0,
) -> Report:
    """Classify every difference between the two books (pure).

    ``warm`` holds the Postgres rows of every open order of the symbol and of every hot entry. ``log_epoch``:
    the epoch the broker's current log began at (``shared.identity``); an order placed at a position of an
    earlier log can no longer reach the matcher through it, wherever the matcher's position stands.
    """
    report = Report(market.symbol, in_sync=settled_seq == state.seq)
    passed: list[AcceptedOrder] = []  # never matched, and the matcher is past their positions
    book = {o.order_id: o for o in resting}
    hot_ids = set(hot)
    for order_id in sorted(hot_ids):
        row = warm.get(order_id)
        if order_id in book or row is None or row["status"] not in OPEN:
            report.stale.append(order_id)
    if not report.in_sync:  # nothing but stale entries is judged; say how many orders may be lost with a log
        report.unjudged = sum(
            1
            for order_id, row in warm.items()
            if row["status"] in OPEN
            and order_id not in book
            and row["last_seq"] == 0
            and int(row["src_partition"]) // EPOCH_STRIDE < log_epoch
        )
        return report
    for order_id, row in sorted(warm.items()):
        if row["status"] not in OPEN:
            continue
        o = book.get(order_id)
        position = (int(row["src_partition"]), int(row["src_offset"]))
        passed_by = position <= (state.src_partition, state.src_offset) or position[0] // EPOCH_STRIDE < log_epoch
        if order_id in hot_ids and (o is not None or not passed_by):
            continue  # on its way to the matcher (a hot entry of an order past the book's position was lost)
        if o is None:
            if row["last_seq"] != 0:
                report.conflicts.append(f"order {order_id} is open in Postgres but not in the book")
            elif row.get("order_list_id", -1) >= 0:  # a list's leg goes only with its list, never alone
                report.conflicts.append(f"order {order_id} of order list {row['order_list_id']} was never matched")
            elif passed_by:
                passed.append(accepted_from_row(row, market))
            else:
                report.missing.append(accepted_from_row(row, market))
            continue
        remaining = int(row["qty_lots"]) - int(row["executed_lots"]) - int(row["prevented_lots"])
        if (o.remaining + o.hidden, o.executed_lots, o.price_ticks, o.side.value) != (
            remaining,
            row["executed_lots"],
            row["price_ticks"],
            row["side"],
        ):
            report.conflicts.append(
                f"order {order_id}: book has {o.remaining} lots left of {o.qty_lots} at {o.price_ticks}, "
                f"Postgres {remaining} of {row['qty_lots']} at {row['price_ticks']}"
            )
    for order_id in sorted(book):
        row = warm.get(order_id)
        if row is None or row["status"] not in OPEN:
            status = "no row" if row is None else row["status"]
            report.conflicts.append(f"order {order_id} rests in the book but Postgres has {status}")
    passed.sort(key=lambda o: (o.src_partition, o.src_offset))  # in the order they were first sent
    positions = after_the_book(state, len(passed))
    for order, (partition, offset) in zip(passed, positions, strict=False):  # re-sent where the matcher applies it
        report.missing.append(msgspec.structs.replace(order, src_partition=partition, src_offset=offset))
    for order in passed[len(positions) :]:
        report.conflicts.append(f"order {order.order_id} was never matched and no position after the book is free")
    return report


def after_the_book(state: BookState, count: int) -> list[tuple[int, int]]:
    """Positions the matcher will apply next and no request can hold: right after its last one, inside the same
    ``order-requests`` record. The matcher commits whole records (a processor batch sends each record's requests
    in one envelope), so its position is a record's last request, and the next request it will meet sits in a
    later record, at ``source_position(offset, 0)`` of that record or beyond. At most the record's free slots."""
    index = state.src_offset % REQUEST_SLOTS
    free = REQUEST_SLOTS - 1 - index if state.src_offset >= 0 else 0
    return [(state.src_partition, state.src_offset + k) for k in range(1, min(count, free) + 1)]


async def read_book(cache: sredis.Client, symbol: str) -> tuple[BookState, list[RestingOrder]]:
    """A symbol's committed book as the matcher wrote it: counters and resting orders of the same commit (one
    MULTI). A symbol with no book yet has the initial counters and no orders."""
    pipe = cache.pipeline(transaction=True)
    pipe.get(state_key(symbol))
    pipe.hvals(orders_key(symbol))
    raw_state, raw_orders = await pipe.execute()
    return (decode_state(raw_state) if raw_state else BookState()), [decode_order(o) for o in raw_orders]


async def read_warm(db: asyncpg.Pool, symbol: str) -> tuple[int, dict[int, Mapping[str, Any]]]:
    """The warm book of ``symbol`` in one snapshot: the sequence settlement has applied, and the rows of its open
    orders by id."""
    async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        settled_seq = await conn.fetchval("SELECT seq FROM settlement_cursor WHERE symbol = $1", symbol) or 0
        rows = await conn.fetch(
            f"SELECT {WARM_COLUMNS} FROM orders WHERE symbol = $1 AND status = ANY($2::text[])",  # noqa: S608
            symbol,
            list(OPEN),
        )
    return settled_seq, {r["order_id"]: dict(r) for r in rows}


async def add_rows(db: asyncpg.Pool, warm: dict[int, Mapping[str, Any]], order_ids: Iterable[int]) -> None:
    """Add to ``warm`` the rows of ``order_ids`` it lacks (hot entries of orders that are not open, or were
    accepted after the snapshot), whatever their status."""
    unknown = [i for i in order_ids if i not in warm]
    if unknown:
        for r in await db.fetch(
            f"SELECT {WARM_COLUMNS} FROM orders WHERE order_id = ANY($1::bigint[])",  # noqa: S608
            unknown,
        ):
            warm[r["order_id"]] = dict(r)


async def reconcile_symbol(
    market: Market,
    db: asyncpg.Pool,
    cache: sredis.Client,
    outbox: kafka.Outbox | None,
    epoch: int | None = None,
    log_epoch: int = 0,
) -> Report:
    """Read both books, compare, and repair when ``outbox`` is given (without it: report only). ``epoch``: the
    log segment the re-sent orders go to (the one the processor reads on the symbol's partition);
    ``log_epoch``: where the broker's current log began (``compare``)."""
    symbol = market.symbol
    settled_seq, warm = await read_warm(db, symbol)
    state, resting = await read_book(cache, symbol)
    hot = [int(k) for k in await cache.hkeys(hot_key(symbol))]
    await add_rows(db, warm, hot)
    report = compare(market, settled_seq, state, resting, hot, warm, log_epoch)
    if outbox is not None:
        if report.stale:
            await cache.hdel(hot_key(symbol), *[str(i) for i in report.stale])
        # in position order, as the processor sent them (the matcher skips a position at or below its own),
        # in one envelope like the processor's (a matcher reads single records too)
        missing = sorted(report.missing, key=lambda o: (o.src_partition, o.src_offset))
        encoded = [encode(order) for order in missing]
        for order, value in zip(missing, encoded, strict=True):
            await cache.hset(hot_key(symbol), str(order.order_id), value)
        for record in envelopes(Topic.VALIDATED_ORDERS, symbol, encoded, {}):
            await outbox.send(Topic.VALIDATED_ORDERS.value, record, key=symbol, epoch=epoch)
        await outbox.flush()
    return report
