"""Lots an order lost to DECREMENT / TRANSFER self-trade prevention; an iceberg's slice; open orders per symbol

Revision ID: 0017
Revises: 0015

``orders.prevented_lots``: what prevented matches took from an order without a trade (Binance's
``preventedQuantity``). Settlement writes it from the order's TRADE_PREVENTION updates; an open order's hold
covers ``qty_lots - executed_lots - prevented_lots`` (``shared.invariants.REMAINING_NEED``), and the
reconciler compares that with the book's remaining lots. 0 for every existing order: the EXPIRE modes end an
order instead of shrinking it.

``orders.iceberg_lots``: an iceberg's ``icebergQty`` in lots (0: not an iceberg), written by the order processor
with the order, so a redelivered request and the reconciler's resend carry it, and order queries report it.

``open_order_counts`` per (user, symbol): Binance's MAX_NUM_ORDERS counts a user's open orders per symbol
(EXCHANGE_MAX_NUM_ORDERS, over all, is their sum). Recounted from ``orders`` here, under a lock, as 0003 did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("prevented_lots", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("orders", sa.Column("iceberg_lots", sa.BigInteger(), server_default="0", nullable=False))
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
