"""markets: NOTIONAL's maxNotional, so no order's notional or hold passes what a BIGINT stores

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the value exchangeInfo advertised before it was stored: the existing markets keep what clients were told
    op.add_column("markets", sa.Column("max_notional", sa.Numeric(), server_default="9000000000", nullable=False))


def downgrade() -> None:
    op.drop_column("markets", "max_notional")
