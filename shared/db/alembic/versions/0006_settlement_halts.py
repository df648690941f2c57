"""settlement halts: a record settlement cannot apply stops its symbol until an operator decides

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_halts",
        sa.Column("halt_id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("src_partition", sa.Integer(), nullable=False),
        sa.Column("src_offset", sa.BigInteger(), nullable=False),
        sa.Column("src_index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("halted_at", sa.BigInteger(), nullable=False),
        sa.Column("resolution", sa.Text()),
        sa.Column("resolved_at", sa.BigInteger()),
        sa.CheckConstraint("resolution IN ('skip', 'retry')", name="halt_resolution_known"),
    )
    op.create_index(
        "settlement_halts_open",
        "settlement_halts",
        ["symbol"],
        unique=True,
        postgresql_where=sa.text("resolution IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("settlement_halts")
