"""Trade rows keep money exact through Parquet, and the Glue table and Athena DDL agree with the files."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.trade_archiver.parquet import COLUMNS, HIVE_TYPES, PARTITION_KEYS, encode, rows_of, utc_date
from shared.domain import Market
from shared.messages import Trade, TradeExecution
from tests.unit.trade_archiver.flows import MARKETS, T0, execution

ROOT = Path(__file__).resolve().parents[3]
GLUE = ROOT / "infra" / "terraform" / "modules" / "glue" / "main.tf"
ATHENA = ROOT / "deploy" / "athena" / "trades.sql"
BTC = MARKETS["BTCUSDT"]


def test_amounts_are_exact_decimals_of_ticks_lots_and_atoms():
    trade = Trade(
        trade_id=7,
        price_ticks=5_012_345,  # 50123.45
        qty_lots=333,  # 0.00333
        buyer_order_id=1,
        seller_order_id=2,
        buyer_user_id=3,
        seller_user_id=4,
        buyer_is_maker=True,
        buyer_fee=12,  # 0.00000012 BTC
        seller_fee=16_691,  # 0.00016691 USDT
        ts=T0,
    )
    [row] = rows_of(TradeExecution(symbol="BTCUSDT", seq=9, trades=[trade]), BTC, partition=1, offset=42)
    assert (row.price, row.qty) == (Decimal("50123.45"), Decimal("0.00333"))
    assert row.quote_qty == row.price * row.qty == Decimal("166.9110885")
    assert (row.buyer_fee, row.seller_fee) == (Decimal("0.00000012"), Decimal("0.00016691"))
    assert (row.taker_side, row.seq, row.kafka_partition, row.kafka_offset) == ("SELL", 9, 1, 42)
    assert (row.dt, row.symbol) == ("2025-12-31", "BTCUSDT")


def test_the_date_partition_is_the_utc_day_of_the_trade():
    assert utc_date(T0) == "2025-12-31"
    assert utc_date(T0 + 999) == "2025-12-31"
    assert utc_date(T0 + 1000) == "2026-01-01"
    assert utc_date(0) == "1970-01-01"


@given(
    st.lists(
        st.tuples(st.integers(1, 100_000_000), st.integers(1, 900_000_000), st.integers(0, 10**12)),
        min_size=1,
        max_size=30,
    )
)
def test_parquet_round_trip_keeps_every_amount_exact(trades):
    execs = [execution("BTCUSDT", i, [i], T0 + ts, ticks, lots) for i, (ticks, lots, ts) in enumerate(trades)]
    rows = [r for i, e in enumerate(execs) for r in rows_of(e, BTC, 0, i)]
    back = pq.read_table(io.BytesIO(encode(rows)))
    assert back.schema.names == [name for name, _ in COLUMNS]
    assert back.column("price").to_pylist() == [r.price for r in rows]
    assert back.column("qty").to_pylist() == [r.qty for r in rows]
    assert back.column("quote_qty").to_pylist() == [r.price * r.qty for r in rows]
    assert back.column("ts").cast(pa.int64()).to_pylist() == [r.ts for r in rows]
    assert back.column("kafka_offset").to_pylist() == list(range(len(rows)))


def test_a_price_finer_than_the_column_scale_is_refused_not_rounded():
    fine = Market(
        "TINYUSDT",
        "TINY",
        "USDT",
        tick_size=Decimal("0.0000000001"),
        step_size=Decimal("100"),
        min_price=Decimal("0.0000000001"),
        max_price=Decimal("1"),
        min_qty=Decimal("100"),
        max_qty=Decimal("1000000"),
        min_notional=Decimal("0"),
    )
    with pytest.raises(ValueError, match=r"price \S+ does not fit DECIMAL\(38,8\)"):
        rows_of(execution("TINYUSDT", 1, [1], T0, price_ticks=12_345), fine, 0, 0)  # refused with its own trade


@pytest.mark.parametrize("trade_id", [2**63, -(2**63) - 1, 10**20])
def test_a_trade_id_past_int64_is_refused_with_its_trade_not_in_the_files_encoding(trade_id):
    (trade,) = execution("BTCUSDT", 1, [1], T0).trades
    largest = TradeExecution(symbol="BTCUSDT", seq=1, trades=[msgspec.structs.replace(trade, trade_id=2**63 - 1)])
    assert encode(rows_of(largest, BTC, 0, 0))  # the largest id fits
    past = TradeExecution(symbol="BTCUSDT", seq=1, trades=[msgspec.structs.replace(trade, trade_id=trade_id)])
    with pytest.raises(ValueError, match=f"trade_id {trade_id} is outside int64"):
        rows_of(past, BTC, 0, 0)


# --- the table definitions agree with the files ---------------------------------------------------------


def _file_types() -> dict[str, str]:
    return {name: HIVE_TYPES[kind] for name, kind in COLUMNS}


def glue_table() -> tuple[dict[str, str], dict[str, str]]:
    text = GLUE.read_text()
    columns = dict(re.findall(r'columns \{\s*name\s*=\s*"(\w+)"\s*type\s*=\s*"([^"]+)"', text))
    partitions = dict(re.findall(r'partition_keys \{\s*name\s*=\s*"(\w+)"\s*type\s*=\s*"(\w+)"', text))
    return columns, partitions


def athena_table() -> tuple[dict[str, str], dict[str, str]]:
    text = re.sub(r"--[^\n]*", "", ATHENA.read_text())
    body = re.search(r"CREATE EXTERNAL TABLE IF NOT EXISTS trades \((.*?)\)\s*PARTITIONED BY \((.*?)\)", text, re.S)
    assert body, "no CREATE EXTERNAL TABLE trades (...) PARTITIONED BY (...)"

    def pairs(block: str) -> dict[str, str]:
        return dict(re.findall(r"(\w+)\s+(\w+(?:\(\d+,\s*\d+\))?)", block))

    return pairs(body[1]), pairs(body[2])


def test_glue_and_athena_declare_the_same_table():
    assert glue_table() == athena_table()


@pytest.mark.parametrize("table", [glue_table, athena_table], ids=["glue", "athena"])
def test_every_declared_column_is_in_the_files_with_the_same_type(table):
    columns, partitions = table()
    files = _file_types()
    assert columns, "no columns declared"
    assert {name: files.get(name) for name in columns} == columns
    assert set(files) == set(columns), "every column of the files is declared"
    assert partitions == dict.fromkeys(PARTITION_KEYS, "string")
    assert not set(partitions) & set(files), "a partition key must not also be a column of the files"


def test_the_agreement_check_catches_a_wrong_type():
    files = _file_types()
    wrong = {"price": "double", "trade_id": "bigint"}
    assert {name: files.get(name) for name in wrong} != wrong
