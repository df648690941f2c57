"""``spot trades query "SQL"``: the Athena SQL, run locally with DuckDB over the committed Parquet files.

The view ``trades`` reads only files a manifest commits (``layout.committed``), so a flush in progress
or one cut short by a crash is never counted. ``dt`` and ``symbol`` come from the Hive paths as strings,
as the Glue table declares them, so a query written for Athena runs here unchanged (here every column
of the files is visible; Athena sees those the table declares). Amounts come back as ``Decimal``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from .archive import committed_files
from .parquet import PARTITION_KEYS, SCHEMA
from .sink import LocalStore


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def run(sql: str, root: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql`` over the archive under ``root``."""
    import duckdb

    files = [str((root / key).resolve()) for key in committed_files(LocalStore(root))]
    con = duckdb.connect()
    try:
        if files:
            listing = ", ".join(_quoted(f) for f in files)
            hive_types = ", ".join(f"'{key}': 'VARCHAR'" for key in PARTITION_KEYS)
            con.execute(
                f"CREATE VIEW trades AS SELECT * FROM read_parquet([{listing}], "  # noqa: S608 - our own file names, quoted
                f"hive_partitioning = true, hive_types = {{{hive_types}}})"
            )
        else:  # an empty archive still has the table, so a query answers with no rows instead of failing
            empty = pa.schema([*SCHEMA, *(pa.field(key, pa.string()) for key in PARTITION_KEYS)]).empty_table()
            con.register("trades_empty", empty)
            con.execute("CREATE VIEW trades AS SELECT * FROM trades_empty")
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        return columns, cursor.fetchall()
    finally:
        con.close()


def _plain(value: Any) -> Any:
    """Decimals in positional notation (str(Decimal) can print 4E-8); everything else as it is."""
    return format(value, "f") if isinstance(value, Decimal) else value


def _cell(value: Any) -> str:
    return "NULL" if value is None else str(_plain(value))


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table; decimals printed exactly as stored."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], int | Decimal) for row in rows if row[i] is not None) for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    out = [line(columns), "  ".join("-" * w for w in widths), *(line(r) for r in cells)]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(s.rstrip() for s in out)


def as_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as JSON objects; decimals as strings, as the Binance API prints amounts."""
    return json.dumps([{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows], default=str)
