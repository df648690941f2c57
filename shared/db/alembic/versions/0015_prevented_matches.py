"""Self-trade prevention's prevented matches, for GET /api/v3/myPreventedMatches

Revision ID: 0015
Revises: 0012

One row per match the matcher prevented (``preventedMatchId``, per symbol, from its sequenced output), written by
settlement in the transaction that settles the event, so exactly once; both orders of a prevented match belong
to one user. The gateway reads a user's by order or by id.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

GRANTS = {"spot_settlement": "SELECT, INSERT", "spot_gateway": "SELECT"}


def _exists(role: str) -> bool:
    from sqlalchemy import text

    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def upgrade() -> None:
    op.execute(
        """CREATE TABLE prevented_matches (
  symbol text NOT NULL,
  prevented_match_id bigint NOT NULL,
  user_id bigint NOT NULL,
  taker_order_id bigint NOT NULL,
  maker_order_id bigint NOT NULL,
  mode text NOT NULL,
  price_ticks bigint NOT NULL,
  maker_prevented_lots bigint NOT NULL,
  ts bigint NOT NULL,
  PRIMARY KEY (symbol, prevented_match_id)
)"""
    )
    op.execute("CREATE INDEX prevented_matches_taker ON prevented_matches (user_id, symbol, taker_order_id)")
    op.execute("CREATE INDEX prevented_matches_maker ON prevented_matches (user_id, symbol, maker_order_id)")
    for role, privileges in GRANTS.items():
        if _exists(role):  # made by 0010 where the migrating user may create roles
            op.execute(f"GRANT {privileges} ON prevented_matches TO {role}")


def downgrade() -> None:
    op.execute("DROP TABLE prevented_matches")
