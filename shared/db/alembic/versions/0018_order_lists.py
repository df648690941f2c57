"""Order lists (OCO, OTO, OTOCO): the lists, and each leg's list on its order row

Revision ID: 0018
Revises: 0017

- ``order_lists``: one row per accepted list (``orderListId``), written by the order processor with its legs'
  rows and holds; settlement writes its ``listStatusType`` / ``listOrderStatus`` from the matcher's list
  statuses; the gateway reads a user's (``GET orderList``, ``allOrderList``, ``openOrderList``).
- ``orders.order_list_id``: the leg's list (-1: not a leg).
- ``orders.hold_shared``: the leg shares one hold with the other legs of its OCO pair (the larger need, held
  once, on the first leg's row; the others' ``hold_left`` is 0): settlement moves the hold to the leg that acts
  and then sizes it as any order's.
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

GRANTS = {
    "spot_order_processor": "SELECT, INSERT",
    "spot_settlement": "SELECT, UPDATE",
    "spot_gateway": "SELECT",
}


def _exists(role: str) -> bool:
    from sqlalchemy import text

    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def upgrade() -> None:
    op.execute("ALTER TABLE orders ADD COLUMN order_list_id bigint NOT NULL DEFAULT -1")
    op.execute("ALTER TABLE orders ADD COLUMN hold_shared boolean NOT NULL DEFAULT false")
    op.execute("CREATE INDEX orders_list ON orders (order_list_id) WHERE order_list_id >= 0")
    op.execute(
        """CREATE TABLE order_lists (
  order_list_id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  symbol text NOT NULL,
  contingency_type text NOT NULL,
  list_client_order_id text NOT NULL,
  list_status_type text NOT NULL,
  list_order_status text NOT NULL,
  transaction_time bigint NOT NULL,
  updated_ts bigint NOT NULL
)"""
    )
    op.execute("CREATE INDEX order_lists_user ON order_lists (user_id, order_list_id)")
    op.execute("CREATE INDEX order_lists_open ON order_lists (user_id) WHERE list_order_status = 'EXECUTING'")
    op.execute("CREATE INDEX order_lists_client_id ON order_lists (user_id, list_client_order_id)")
    for role, privileges in GRANTS.items():
        if _exists(role):  # made by 0010 where the migrating user may create roles
            op.execute(f"GRANT {privileges} ON order_lists TO {role}")


def downgrade() -> None:
    op.execute("DROP TABLE order_lists")
    op.execute("DROP INDEX orders_list")
    op.execute("ALTER TABLE orders DROP COLUMN hold_shared")
    op.execute("ALTER TABLE orders DROP COLUMN order_list_id")
