"""log segments: the fleet keeps the epoch its broker log began at beside the highest epoch used; a settlement
halt names the segment its record is in

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fleet", sa.Column("base_epoch", sa.Integer(), nullable=True))
    op.execute("UPDATE fleet SET base_epoch = epoch")
    op.alter_column("fleet", "base_epoch", nullable=False, server_default=sa.text("0"))
    op.create_check_constraint("fleet_base_not_past_epoch", "fleet", "base_epoch >= 0 AND base_epoch <= epoch")
    op.add_column("settlement_halts", sa.Column("src_epoch", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    op.drop_column("settlement_halts", "src_epoch")
    op.drop_constraint("fleet_base_not_past_epoch", "fleet")
    op.drop_column("fleet", "base_epoch")
