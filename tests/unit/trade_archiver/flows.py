"""Trade-execution flows and a dying store, for the archiver's unit tests and its S3 integration test."""

from __future__ import annotations

import io
import threading
from collections import Counter

import pyarrow.parquet as pq

from services.trade_archiver.archive import Archive
from services.trade_archiver.parquet import TradeRow, rows_of
from services.trade_archiver.ranges import OpenRange
from services.trade_archiver.sink import Store
from shared.domain import Market
from shared.messages import Trade, TradeExecution
from shared.postgres import DEFAULT_MARKETS

MARKETS: dict[str, Market] = {m.symbol: m for m in DEFAULT_MARKETS}
DAY_MS = 86_400_000
T0 = 1_767_225_599_000  # 2025-12-31T23:59:59Z: a flow crosses midnight early
PARTITION = 0


def execution(
    symbol: str, seq: int, trade_ids: list[int], ts: int, price_ticks: int = 5_000_000, qty_lots: int | None = None
) -> TradeExecution:
    trades = [
        Trade(
            trade_id=t,
            price_ticks=price_ticks + t % 7,
            qty_lots=qty_lots or 1 + t % 13,
            buyer_order_id=10 * t + 1,
            seller_order_id=10 * t + 2,
            buyer_user_id=2 + t % 3,
            seller_user_id=3 + t % 4,
            buyer_is_maker=t % 2 == 0,
            buyer_fee=t % 5,
            seller_fee=t % 11,
            ts=ts,
        )
        for t in trade_ids
    ]
    return TradeExecution(symbol=symbol, seq=seq, trades=trades)


Entry = list[TradeExecution] | None  # what one offset carries: one execution, an envelope of several, or poison


def trade_log(ops: list[tuple[str, int, int]]) -> list[Entry]:
    """Offsets of one partition: new executions over days and symbols, envelopes of several (the matcher's
    one record per symbol per batch), poison (None), re-published records (the matcher's outbox)."""
    log: list[Entry] = []
    seqs = {"BTCUSDT": 0, "ETHUSDT": 0}
    trade_ids = dict.fromkeys(seqs, 0)
    published: list[list[TradeExecution]] = []

    def new(symbol: str, a: int, b: int) -> TradeExecution:
        seqs[symbol] += 1 + b % 2  # trade-execution skips the seqs of events without trades
        ids = list(range(trade_ids[symbol] + 1, trade_ids[symbol] + 2 + b % 3))
        trade_ids[symbol] = ids[-1]
        return execution(symbol, seqs[symbol], ids, T0 + (a % 3) * DAY_MS)

    for kind, a, b in ops:
        if kind == "new":
            published.append([new(("BTCUSDT", "ETHUSDT")[a % 2], a, b)])
            log.append(published[-1])
        elif kind == "envelope":
            symbol = ("BTCUSDT", "ETHUSDT")[a % 2]
            published.append([new(symbol, a + i, b + i) for i in range(2 + b % 3)])
            log.append(published[-1])
        elif kind == "dup" and published:
            log.append(published[a % len(published)])
        else:
            log.append(None)
    return log


def unique_trades(log: list[Entry]) -> Counter[tuple[str, int]]:
    """Each trade of the log once: a re-published (symbol, seq) counts at its first offset only."""
    expected: Counter[tuple[str, int]] = Counter()
    seen: set[tuple[str, int]] = set()
    for entry in log:
        for e in entry or ():
            if (e.symbol, e.seq) not in seen:
                seen.add((e.symbol, e.seq))
                expected.update((e.symbol, t.trade_id) for t in e.trades)
    return expected


class Crash(Exception):
    pass


class DictStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix) and k > start_after)

    def check(self) -> None:
        pass

    def describe(self) -> str:
        return "memory"


class DyingStore:
    """Wraps a store; dies after ``budget`` writes (puts and deletes), as a SIGKILL would: every call fails after."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.budget: int | None = None
        self.dead = False
        self._lock = threading.Lock()

    def revive(self, budget: int | None) -> None:
        self.dead, self.budget = False, budget

    def _alive(self, write: bool) -> None:
        with self._lock:
            if self.dead or (write and self.budget == 0):
                self.dead = True
                raise Crash
            if write and self.budget is not None:
                self.budget -= 1

    def put(self, key: str, data: bytes) -> None:
        self._alive(True)
        self.inner.put(key, data)

    def delete(self, key: str) -> None:
        self._alive(True)
        self.inner.delete(key)

    def get(self, key: str) -> bytes | None:
        self._alive(False)
        return self.inner.get(key)

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        self._alive(False)
        return self.inner.list(prefix, start_after)

    def check(self) -> None:
        self.inner.check()

    def describe(self) -> str:
        return self.inner.describe()


def trades_in(store: Store, keys: list[str]) -> Counter[tuple[str, int]]:
    """(symbol, trade_id) of every row of the given data files, counted."""
    found: Counter[tuple[str, int]] = Counter()
    for key in keys:
        data = store.get(key)
        assert data is not None, key
        symbol = key.split("symbol=")[1].split("/")[0]
        for trade_id in pq.read_table(io.BytesIO(data)).column("trade_id").to_pylist():
            found[(symbol, trade_id)] += 1
    return found


def rows(execution: TradeExecution, offset: int) -> list[TradeRow]:
    return rows_of(execution, MARKETS[execution.symbol], PARTITION, offset)


async def consume(store: Store, log: list[Entry], sizes: list[int], flush_every: int) -> None:
    """One life of a consumer: recover, then read the log to its end in batches, flushing now and then."""
    archive = Archive(store)
    decided = await archive.recover(PARTITION)
    start = 0 if decided.start is None else decided.start  # Kafka's committed offset is never ahead of it
    open_range = OpenRange(PARTITION, start, decided.seqs, decided.redo.last if decided.redo else None)
    pos, i = start, 0
    while pos < len(log):
        end = min(pos + sizes[i % len(sizes)], len(log))
        records = [(off, e) for off in range(pos, end) for e in log[off] or ()]  # an envelope: one offset, several
        for redone in open_range.feed(records, end, rows, 0.0):
            await archive.commit(redone)
        i += 1
        if i % flush_every == 0 and (cut := open_range.cut()) is not None:
            await archive.commit(cut)
        pos = end
    if (last := open_range.cut()) is not None:
        await archive.commit(last)
