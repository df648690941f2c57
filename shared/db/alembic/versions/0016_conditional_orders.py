"""Conditional orders (STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT): their stop on the order row

Revision ID: 0016
Revises: 0015

- ``orders.stop_ticks``: the stop price in ticks (0: none), ``orders.trailing_delta``: the trailing delta in
  BIPS (0: not trailing), written by the order processor with the row; GET order shows them (``stopPrice``,
  ``trailingDelta``) and the reconciler re-sends a conditional order with them.
- ``orders.working_ts``: when the order started working (``workingTime``): 0 for an order that works from its
  creation (every other kind), -1 for a conditional order until the matcher triggers it, then the trigger's
  time, which settlement writes from the matcher's update.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS = {
    "stop_ticks": "bigint NOT NULL DEFAULT 0",
    "trailing_delta": "bigint NOT NULL DEFAULT 0",
    "working_ts": "bigint NOT NULL DEFAULT 0",
}


def upgrade() -> None:
    for name, kind in COLUMNS.items():
        op.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")


def downgrade() -> None:
    for name in COLUMNS:
        op.execute(f"ALTER TABLE orders DROP COLUMN {name}")
