"""Lots an order lost to DECREMENT / TRANSFER self-trade prevention; an iceberg's slice; open orders per symbol;
fee tiers

Revision ID: 0017
Revises: 0016

``orders.prevented_lots``: what prevented matches took from an order without a trade (Binance's
``preventedQuantity``). Settlement writes it from the order's TRADE_PREVENTION updates; an open order's hold
covers ``qty_lots - executed_lots - prevented_lots`` (``shared.invariants.REMAINING_NEED``), and the
reconciler compares that with the book's remaining lots. 0 for every existing order: the EXPIRE modes end an
order instead of shrinking it.

``orders.iceberg_lots``: an iceberg's ``icebergQty`` in lots (0: not an iceberg), written by the order processor
with the order, so a redelivered request and the reconciler's resend carry it, and order queries report it.

``open_order_counts`` per (user, symbol): Binance's MAX_NUM_ORDERS counts a user's open orders per symbol
(EXCHANGE_MAX_NUM_ORDERS, over all, is their sum). Recounted from ``orders`` here, under a lock, as 0003 did.

``fee_tiers`` (``spot admin fees set-tier``) and ``users.fee_tier`` (``spot admin user set-tier``): a user in a
tier pays its maker and taker rates on every market instead of the market's. The order processor stamps them
on an order when it accepts it (``orders.maker_fee_bps`` / ``taker_fee_bps``, -1: the market's), so the
matcher charges them in sequence and a replay charges the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

GRANTS = {"spot_order_processor": "SELECT", "spot_gateway": "SELECT", "spot_ingestion": "SELECT"}


def _exists(role: str) -> bool:
    from sqlalchemy import text

    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("prevented_lots", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("orders", sa.Column("iceberg_lots", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(
        """CREATE TABLE fee_tiers (
  tier text PRIMARY KEY,
  maker_fee_bps integer NOT NULL CHECK (maker_fee_bps BETWEEN 0 AND 1000),
  taker_fee_bps integer NOT NULL CHECK (taker_fee_bps BETWEEN 0 AND 1000)
)"""
    )
    op.add_column("users", sa.Column("fee_tier", sa.Text(), sa.ForeignKey("fee_tiers.tier"), nullable=True))
    op.add_column("orders", sa.Column("maker_fee_bps", sa.Integer(), server_default="-1", nullable=False))
    op.add_column("orders", sa.Column("taker_fee_bps", sa.Integer(), server_default="-1", nullable=False))
    for role, privileges in GRANTS.items():
        if _exists(role):  # made by 0010 where the migrating user may create roles
            op.execute(f"GRANT {privileges} ON fee_tiers TO {role}")
    if _exists("spot_order_processor"):
        op.execute("GRANT SELECT ON users TO spot_order_processor")  # a user's fee tier, read with the batch
    op.execute("LOCK TABLE open_order_counts IN ACCESS EXCLUSIVE MODE")
    op.add_column("open_order_counts", sa.Column("symbol", sa.Text(), server_default="", nullable=False))
    op.execute("ALTER TABLE open_order_counts DROP CONSTRAINT open_order_counts_pkey")
    op.execute("DELETE FROM open_order_counts")
    op.execute("ALTER TABLE open_order_counts ADD PRIMARY KEY (user_id, symbol)")
    op.execute(
        "INSERT INTO open_order_counts (user_id, symbol, n) SELECT user_id, symbol, count(*) FROM orders "
        "WHERE status IN ('NEW', 'PARTIALLY_FILLED') GROUP BY user_id, symbol"
    )


def downgrade() -> None:
    op.drop_column("orders", "taker_fee_bps")
    op.drop_column("orders", "maker_fee_bps")
    op.drop_column("users", "fee_tier")
    op.execute("DROP TABLE fee_tiers")
    op.execute("LOCK TABLE open_order_counts IN ACCESS EXCLUSIVE MODE")
    op.execute("DELETE FROM open_order_counts")
    op.execute("ALTER TABLE open_order_counts DROP CONSTRAINT open_order_counts_pkey")
    op.drop_column("open_order_counts", "symbol")
    op.execute("ALTER TABLE open_order_counts ADD PRIMARY KEY (user_id)")
    op.execute(
        "INSERT INTO open_order_counts (user_id, n) SELECT user_id, count(*) FROM orders "
        "WHERE status IN ('NEW', 'PARTIALLY_FILLED') GROUP BY user_id"
    )
    op.drop_column("orders", "iceberg_lots")
    op.drop_column("orders", "prevented_lots")
