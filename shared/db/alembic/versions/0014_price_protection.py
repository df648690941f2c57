"""Price protection: PERCENT_PRICE_BY_SIDE's multipliers and the circuit breaker's threshold per market

Revision ID: 0014
Revises: 0012

- ``markets``: ``bid_up``, ``bid_down``, ``ask_up``, ``ask_down`` (a BUY's price within [avg * bid_down,
  avg * bid_up] of the 5-minute average price, a SELL's within [avg * ask_down, avg * ask_up]; a MARKET order
  stops at its side's bound), Binance's defaults 5 and 0.2; ``breaker_pct`` and ``breaker_window_s`` (BREAK
  once the last price moves more than that share within the window; 0: off).
- The order processor reads the average price where the gateway's avgPrice does (``klines``, ``trades``).
- Settlement trips the breaker through ``circuit_break``, a function (``SECURITY DEFINER``) that moves one
  market from TRADING to BREAK and nothing else, so its role still cannot write a market row (0010); it takes
  a request id for the in-band change from ``order_id_blocks``.
"""

from alembic import op
from sqlalchemy import text

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = {
    "bid_up": "numeric NOT NULL DEFAULT 5",
    "bid_down": "numeric NOT NULL DEFAULT 0.2",
    "ask_up": "numeric NOT NULL DEFAULT 5",
    "ask_down": "numeric NOT NULL DEFAULT 0.2",
    "breaker_pct": "numeric NOT NULL DEFAULT 0",
    "breaker_window_s": "integer NOT NULL DEFAULT 60",
}
CIRCUIT_BREAK = """
CREATE FUNCTION circuit_break(p_symbol text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE markets SET status = 'BREAK' WHERE symbol = p_symbol AND status = 'TRADING' AND breaker_pct > 0;
  RETURN FOUND;
END $$"""
GRANTS = (
    "GRANT SELECT ON klines, trades TO spot_order_processor",
    "GRANT EXECUTE ON FUNCTION circuit_break(text) TO spot_settlement",
    "GRANT USAGE ON SEQUENCE order_id_blocks TO spot_settlement",
)


def _exists(role: str) -> bool:
    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def upgrade() -> None:
    op.execute("ALTER TABLE markets " + ", ".join(f"ADD COLUMN {c} {t}" for c, t in COLUMNS.items()))
    op.execute(CIRCUIT_BREAK)
    op.execute("REVOKE ALL ON FUNCTION circuit_break(text) FROM PUBLIC")
    for grant in GRANTS:
        if _exists(grant.rsplit(" ", 1)[1]):  # made by 0010 where the migrating user may create roles
            op.execute(grant)


def downgrade() -> None:
    op.execute("DROP FUNCTION circuit_break(text)")
    op.execute("ALTER TABLE markets " + ", ".join(f"DROP COLUMN {c}" for c in COLUMNS))
