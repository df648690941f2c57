"""Lots an order lost to DECREMENT / TRANSFER self-trade prevention; an iceberg's slice

Revision ID: 0017
Revises: 0015

``orders.prevented_lots``: what prevented matches took from an order without a trade (Binance's
``preventedQuantity``). Settlement writes it from the order's TRADE_PREVENTION updates; an open order's hold
covers ``qty_lots - executed_lots - prevented_lots`` (``shared.invariants.REMAINING_NEED``), and the
reconciler compares that with the book's remaining lots. 0 for every existing order: the EXPIRE modes end an
order instead of shrinking it.

``orders.iceberg_lots``: an iceberg's ``icebergQty`` in lots (0: not an iceberg), written by the order processor
with the order, so a redelivered request and the reconciler's resend carry it, and order queries report it.
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


def downgrade() -> None:
    op.drop_column("orders", "iceberg_lots")
    op.drop_column("orders", "prevented_lots")
