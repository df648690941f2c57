"""the fleet's identity and log epoch (shared.identity)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet",
        sa.Column("singleton", sa.Boolean(), primary_key=True, server_default=sa.text("true")),
        sa.Column("fleet_id", sa.Text(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("singleton", name="fleet_one_row"),
        sa.CheckConstraint("epoch >= 0", name="fleet_epoch_not_negative"),
    )


def downgrade() -> None:
    op.drop_table("fleet")
