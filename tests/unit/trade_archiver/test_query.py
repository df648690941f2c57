"""`spot trades query` sees committed files only, keeps amounts exact, and reads dt and symbol as strings."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from services.trade_archiver import query
from services.trade_archiver.archive import Archive
from services.trade_archiver.layout import Span, data_key
from services.trade_archiver.parquet import encode
from services.trade_archiver.ranges import OpenRange
from services.trade_archiver.sink import LocalStore
from tests.unit.trade_archiver.flows import DAY_MS, T0, execution, rows


def archive(root: Path) -> list[Decimal]:
    """Two days of BTCUSDT and ETHUSDT committed; returns their notionals."""
    log = [execution(("BTCUSDT", "ETHUSDT")[i % 2], i + 1, [i + 1], T0 + (i % 2) * DAY_MS) for i in range(6)]

    async def commit() -> list[Decimal]:
        a = Archive(LocalStore(root))
        await a.recover(0)
        r = OpenRange(0, 0, {})
        r.feed(list(enumerate(log)), len(log), rows, 0.0)
        cut = r.cut()
        assert cut is not None
        await a.commit(cut)
        return [row.quote_qty for row in cut.rows]

    return asyncio.run(commit())


def test_only_committed_files_are_read_and_amounts_stay_exact(tmp_path: Path):
    notionals = archive(tmp_path)
    uncommitted = rows(execution("BTCUSDT", 99, [99], T0), 6)  # a flush in progress: file written, no manifest
    LocalStore(tmp_path).put(data_key("2025-12-31", "BTCUSDT", Span(0, 6, 6)), encode(uncommitted))
    _, answer = query.run(
        "SELECT count(*), sum(quote_qty), typeof(dt), typeof(symbol) FROM trades GROUP BY 3, 4", tmp_path
    )
    assert answer == [(6, sum(notionals), "VARCHAR", "VARCHAR")]
    _, by_day = query.run("SELECT dt, symbol, count(*) FROM trades GROUP BY ALL ORDER BY ALL", tmp_path)
    assert by_day == [("2025-12-31", "BTCUSDT", 3), ("2026-01-01", "ETHUSDT", 3)]


def test_an_empty_archive_answers_with_no_rows(tmp_path: Path):
    columns, answer = query.run("SELECT symbol, trade_id, price FROM trades", tmp_path / "none")
    assert (columns, answer) == (["symbol", "trade_id", "price"], [])


def test_output_prints_decimals_positionally(tmp_path: Path):
    archive(tmp_path)
    columns, answer = query.run("SELECT trade_id, buyer_fee FROM trades ORDER BY trade_id LIMIT 1", tmp_path)
    assert json.loads(query.as_json(columns, answer)) == [{"trade_id": 1, "buyer_fee": "0.00000001"}]
    assert query.table(columns, answer).splitlines()[2].split() == ["1", "0.00000001"]
