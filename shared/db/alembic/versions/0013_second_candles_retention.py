"""Settlement may delete one-second candles past their retention

Revision ID: 0013
Revises: 0012

At a trade every second a symbol stores 86,400 one-second candles a day; they are kept for
``shared.candles.SECONDS_KEPT_MS`` and settlement, which writes them (the trigger of 0012 runs as the inserting
role), deletes older ones between batches (``services/settlement/retention.py``). Its role gets DELETE on
``klines``; no other grant or table changes.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ROLE = "spot_settlement"


def _exists(role: str) -> bool:
    from sqlalchemy import text

    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def upgrade() -> None:
    if _exists(ROLE):  # made by 0010 where the migrating user may create roles
        op.execute(f"GRANT DELETE ON klines TO {ROLE}")


def downgrade() -> None:
    if _exists(ROLE):
        op.execute(f"REVOKE DELETE ON klines FROM {ROLE}")
