"""autovacuum and analyze settings for the tables that grow with every order

Revision ID: 0007
Revises: 0006

Postgres' defaults vacuum a table once a fifth of it is dead and analyze it once a tenth has changed: a
tenth of a 10-million-row ``orders`` is a million changes before the planner hears of the growth, and the
insert-only ``ledger`` and ``trades`` were, before Postgres 13, never vacuumed at all, so their visibility
maps (index-only scans) fell behind. The tables that grow with orders get proportions a hundred times
smaller (vacuum at 2%, analyze at 1%, plus a floor so a fresh table is not vacuumed on every insert), and
the two small tables updated on every order (``balances``, ``open_order_counts``) are vacuumed every few
thousand updates, whatever their size, so their dead rows do not pile up in the hot path. The statements'
own plans are handled by the pool (``shared.postgres.STATEMENT_REPLAN_S``); these keep the statistics the
plans are made from current. Aurora PostgreSQL takes the same storage parameters.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GROWING = ("orders", "ledger", "trades")  # a row (or several) per order or fill, kept
GROWING_SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.02",
    "autovacuum_vacuum_insert_threshold": "10000",
    "autovacuum_analyze_scale_factor": "0.01",
    "autovacuum_analyze_threshold": "1000",
}
CHURNING = ("balances", "open_order_counts")  # a row per user or user and asset, updated on every order
CHURNING_SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "5000",
    "autovacuum_analyze_scale_factor": "0.05",
}


def _set(table: str, settings: dict[str, str]) -> None:
    op.execute(f"ALTER TABLE {table} SET ({', '.join(f'{k} = {v}' for k, v in settings.items())})")


def _reset(table: str, settings: dict[str, str]) -> None:
    op.execute(f"ALTER TABLE {table} RESET ({', '.join(settings)})")


def upgrade() -> None:
    for table in GROWING:
        _set(table, GROWING_SETTINGS)
    for table in CHURNING:
        _set(table, CHURNING_SETTINGS)


def downgrade() -> None:
    for table in CHURNING:
        _reset(table, CHURNING_SETTINGS)
    for table in GROWING:
        _reset(table, GROWING_SETTINGS)
