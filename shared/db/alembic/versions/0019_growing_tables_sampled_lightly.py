"""The tables that grow with every order are analyzed from a 3,000-row sample, not 30,000

Revision ID: 0019
Revises: 0018

0007 has ``orders``, ``ledger`` and ``trades`` analyzed at every 1% of growth, which at a few hundred orders a
second is every autovacuum round (a minute). Each ANALYZE samples 300 rows per unit of its largest column
statistics target (100 by default): 30,000 rows, read from as many pages and sorted column by column. In the
hour at 300 orders/s (``make bench ARGS="soak --rate 300 --minutes 60"``, 2026-12-07) those three analyzes took
0.9 s of CPU each minute in one 4-5 s burst, and that burst, 7.7% of the time, held 46% of the confirmations
slower than 100 ms. Every column of those tables gets a statistics target of 10: a 3,000-row sample, histograms
of 10 buckets, 10 most common values. Their queries look rows up by keys (order id, user and symbol, client order
id, trade id), which need the row counts (the planner scales them by the table's current size anyway), not a
fine histogram. A column added to them later must be given the same target in its own migration
(``tests/integration/test_table_upkeep.py`` checks every column and fails on one left at the default).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

GROWING = ("orders", "ledger", "trades")
STATISTICS = 10  # Postgres' default is 100 (default_statistics_target); the sample is 300 rows per unit


COLUMNS = "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"


def _set_every_column(table: str, target: int) -> None:
    names = op.get_bind().execute(text(COLUMNS), {"t": table}).scalars().all()
    for name in names:  # names from the catalog; the table from GROWING
        op.execute(f'ALTER TABLE {table} ALTER COLUMN "{name}" SET STATISTICS {target}')


def upgrade() -> None:
    for table in GROWING:
        _set_every_column(table, STATISTICS)


def downgrade() -> None:
    for table in GROWING:
        _set_every_column(table, -1)  # -1: the server's default_statistics_target
