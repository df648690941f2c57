"""Trade rows and their Parquet encoding. Pure: no I/O, no clock.

One row per trade (a ``TradeExecution`` carries the trades of one matched event; one Kafka record may carry
several executions, so several rows share ``kafka_offset``, told apart by ``seq`` and ``trade_id``). Money stays exact:
prices, quantities, notionals and fees are Parquet DECIMAL(38,8), converted from ticks, lots and atoms
with ``Decimal`` arithmetic, never through a float. Every amount is a whole number of atoms (``Market``
guarantees it for quantities and notionals; fees are atoms), and prices are printed with 8 decimals
across the API, so scale 8 is exact; a price finer than that is refused by pyarrow, not rounded.

``dt`` (UTC date of the trade) and ``symbol`` are the Hive partition keys: they live in the file's path
(``dt=2025-01-31/symbol=BTCUSDT/``), not in its columns, because Hive and Athena reject a name that is both
a column and a partition key. ``COLUMNS`` is the one definition of the file schema; the Glue table
(``infra/terraform/modules/glue``) and the Athena DDL (``deploy/athena/trades.sql``) declare columns of it,
and a unit test keeps them agreeing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shared.domain import Market, Side, atoms_to_decimal
from shared.messages import TradeExecution

AMOUNT: Final = pa.decimal128(38, 8)
COLUMNS: Final[tuple[tuple[str, pa.DataType], ...]] = (
    ("trade_id", pa.int64()),  # per symbol, from the matcher
    ("seq", pa.int64()),  # the matcher's per-symbol sequence of the matched event
    ("price", AMOUNT),
    ("qty", AMOUNT),
    ("quote_qty", AMOUNT),  # price * qty, exact
    ("buyer_order_id", pa.int64()),
    ("seller_order_id", pa.int64()),
    ("buyer_user_id", pa.int64()),
    ("seller_user_id", pa.int64()),
    ("buyer_is_maker", pa.bool_()),
    ("taker_side", pa.string()),  # BUY when the buyer took liquidity
    ("buyer_fee", AMOUNT),  # in the base asset, kept from what the buyer received
    ("seller_fee", AMOUNT),  # in the quote asset, kept from what the seller received
    ("ts", pa.timestamp("ms")),  # UTC; naive, as Hive and Athena read a timestamp
    ("kafka_partition", pa.int32()),  # where the trade came from: the archive's own lineage
    ("kafka_offset", pa.int64()),
)
SCHEMA: Final = pa.schema(COLUMNS)
PARTITION_KEYS: Final = ("dt", "symbol")
COMPRESSION: Final = "zstd"  # the Glue table says parquet.compression=ZSTD

# Hive / Athena spelling of each Arrow type above, for the DDL checks.
HIVE_TYPES: Final[dict[pa.DataType, str]] = {
    pa.int64(): "bigint",
    pa.int32(): "int",
    AMOUNT: "decimal(38,8)",
    pa.bool_(): "boolean",
    pa.string(): "string",
    pa.timestamp("ms"): "timestamp",
}


@dataclass(frozen=True, slots=True)
class TradeRow:
    dt: str
    symbol: str
    trade_id: int
    seq: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    buyer_order_id: int
    seller_order_id: int
    buyer_user_id: int
    seller_user_id: int
    buyer_is_maker: bool
    taker_side: str
    buyer_fee: Decimal
    seller_fee: Decimal
    ts: int  # ms since the epoch, UTC
    kafka_partition: int
    kafka_offset: int


def utc_date(ts_ms: int) -> str:
    """The UTC calendar date of a millisecond timestamp, from whole seconds (no float division)."""
    return datetime.fromtimestamp(ts_ms // 1000, UTC).date().isoformat()


INT64_MAX: Final = 2**63 - 1
AMOUNT_MAX: Final = Decimal(10) ** (38 - 8)  # DECIMAL(38,8): 30 digits before the point
_INTS: Final = tuple(name for name, kind in COLUMNS if kind == pa.int64())
_AMOUNTS: Final = tuple(name for name, kind in COLUMNS if kind == AMOUNT)


def check(row: TradeRow) -> TradeRow:
    """``row`` if every column fits the file schema, else ``ValueError`` naming the column: a number that
    would fail the whole file's encoding is refused with its own trade, where it can be dead-lettered."""
    for name in _INTS:
        value = getattr(row, name)
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError(f"trade {row.trade_id}: {name} {value} is outside int64")
    for name in _AMOUNTS:
        amount: Decimal = getattr(row, name)
        exponent = amount.as_tuple().exponent
        if not -AMOUNT_MAX < amount < AMOUNT_MAX or not isinstance(exponent, int) or exponent < -8:
            raise ValueError(f"trade {row.trade_id}: {name} {amount} does not fit DECIMAL(38,8)")
    if not 0 <= row.kafka_partition < 2**31:
        raise ValueError(f"trade {row.trade_id}: kafka_partition {row.kafka_partition} is outside int32")
    return row


def rows_of(execution: TradeExecution, market: Market, partition: int, offset: int) -> list[TradeRow]:
    """The rows of one trade execution, in trade order; ``ValueError`` (or ``OverflowError`` for a date
    past the calendar) if one cannot be stored (``check``)."""
    rows = []
    for t in execution.trades:
        rows.append(
            check(
                TradeRow(
                    dt=utc_date(t.ts),
                    symbol=execution.symbol,
                    trade_id=t.trade_id,
                    seq=execution.seq,
                    price=market.ticks_to_price(t.price_ticks),
                    qty=market.lots_to_qty(t.qty_lots),
                    quote_qty=atoms_to_decimal(t.price_ticks * t.qty_lots * market.atoms_per_nu),
                    buyer_order_id=t.buyer_order_id,
                    seller_order_id=t.seller_order_id,
                    buyer_user_id=t.buyer_user_id,
                    seller_user_id=t.seller_user_id,
                    buyer_is_maker=t.buyer_is_maker,
                    taker_side=(Side.SELL if t.buyer_is_maker else Side.BUY).value,
                    buyer_fee=atoms_to_decimal(t.buyer_fee),
                    seller_fee=atoms_to_decimal(t.seller_fee),
                    ts=t.ts,
                    kafka_partition=partition,
                    kafka_offset=offset,
                )
            )
        )
    return rows


def table(rows: list[TradeRow]) -> pa.Table:
    """Rows as an Arrow table of ``SCHEMA`` (partition keys left out: they are the file's path)."""
    return pa.Table.from_arrays(
        [pa.array([getattr(r, name) for r in rows], type=kind) for name, kind in COLUMNS], schema=SCHEMA
    )


def encode(rows: list[TradeRow]) -> bytes:
    """One Parquet file's bytes."""
    buf = io.BytesIO()
    pq.write_table(table(rows), buf, compression=COMPRESSION)
    return buf.getvalue()


def json_record(row: TradeRow) -> bytes:
    """A trade as the Kinesis record: decimals as strings, as the Binance API prints them."""
    return orjson.dumps(
        {
            "symbol": row.symbol,
            "tradeId": row.trade_id,
            "seq": row.seq,
            "price": str(row.price),
            "qty": str(row.qty),
            "quoteQty": str(row.quote_qty),
            "buyerOrderId": row.buyer_order_id,
            "sellerOrderId": row.seller_order_id,
            "buyerUserId": row.buyer_user_id,
            "sellerUserId": row.seller_user_id,
            "isBuyerMaker": row.buyer_is_maker,
            "buyerFee": str(row.buyer_fee),
            "sellerFee": str(row.seller_fee),
            "time": row.ts,
        }
    )
