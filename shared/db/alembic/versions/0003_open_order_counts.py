"""open orders counted per user, for the MAX_NUM_ORDERS filter

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_order_counts",
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.user_id"), primary_key=True),
        sa.Column("n", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("n >= 0", name="open_orders_not_negative"),
    )
    # the orders already open when the counter starts: the processor and settlement keep it from here
    op.execute(
        "INSERT INTO open_order_counts (user_id, n) SELECT user_id, count(*) FROM orders "
        "WHERE status IN ('NEW', 'PARTIALLY_FILLED') GROUP BY user_id"
    )


def downgrade() -> None:
    op.drop_table("open_order_counts")
