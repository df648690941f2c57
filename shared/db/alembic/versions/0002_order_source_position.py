"""order source position, for the reconciler

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("src_partition", sa.BigInteger(), server_default="-1", nullable=False))
    op.add_column("orders", sa.Column("src_offset", sa.BigInteger(), server_default="-1", nullable=False))


def downgrade() -> None:
    op.drop_column("orders", "src_offset")
    op.drop_column("orders", "src_partition")
