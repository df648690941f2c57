"""The tables that grow with orders are vacuumed and analyzed as they grow: the local Postgres runs
autovacuum, and the migrations give ``orders``, ``ledger`` and ``trades`` proportions a hundred times
smaller than Postgres' defaults (and the per-order churn of ``balances``, ``open_order_counts`` a fixed
threshold), so a long run's plans are made from current statistics."""

from __future__ import annotations

import asyncio
import importlib

import asyncpg

from shared import postgres

MIGRATION = importlib.import_module("shared.db.alembic.versions.0007_autovacuum_per_table")
SAMPLED = importlib.import_module("shared.db.alembic.versions.0019_growing_tables_sampled_lightly")


async def _options(url: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    await asyncio.to_thread(postgres.migrate, url)
    conn = await asyncpg.connect(url)
    try:
        server = {name: await conn.fetchval(f"SHOW {name}") for name in ("autovacuum", "track_counts")}
        rows = await conn.fetch(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[]) AND relkind = 'r'",
            [*MIGRATION.GROWING, *MIGRATION.CHURNING],
        )
        tables = {r["relname"]: dict(o.split("=", 1) for o in r["reloptions"] or ()) for r in rows}
        return server, tables
    finally:
        await conn.close()


async def _statistics_targets(url: str) -> dict[str, dict[str, int | None]]:
    """Per growing table, each column's statistics target (None or -1: the server's default)."""
    await asyncio.to_thread(postgres.migrate, url)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
            list(SAMPLED.GROWING),
        )
        targets: dict[str, dict[str, int | None]] = {}
        for r in rows:
            targets.setdefault(r["relname"], {})[r["attname"]] = r["attstattarget"]
        return targets
    finally:
        await conn.close()


def test_the_local_postgres_vacuums_and_every_growing_table_has_its_settings(fresh_env: dict[str, str]) -> None:
    server, tables = asyncio.run(_options(fresh_env["DATABASE_URL"]))
    assert server == {"autovacuum": "on", "track_counts": "on"}  # the embedded server `spot up` starts
    for table in MIGRATION.GROWING:
        assert tables[table] == MIGRATION.GROWING_SETTINGS, table
        assert float(tables[table]["autovacuum_analyze_scale_factor"]) <= 0.01  # default 0.1
    for table in MIGRATION.CHURNING:
        assert tables[table] == MIGRATION.CHURNING_SETTINGS, table


def test_every_column_of_a_growing_table_is_analyzed_from_a_small_sample(fresh_env: dict[str, str]) -> None:
    targets = asyncio.run(_statistics_targets(fresh_env["DATABASE_URL"]))
    assert set(targets) == set(SAMPLED.GROWING) == set(MIGRATION.GROWING)
    for table, columns in targets.items():
        assert len(columns) > 5, table
        # a column left at the default (100) would make every ANALYZE sample 30,000 rows again
        assert set(columns.values()) == {SAMPLED.STATISTICS}, (table, columns)
