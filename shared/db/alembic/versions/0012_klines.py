"""Candles of every trade since the first, kept beside the trades they are made of

Revision ID: 0012
Revises: 0011

Klines were a Redis sorted set of one-minute rows, about 33 hours of them: no other interval, no history.
Any interval and time zone since a symbol's first trade is now a roll-up of stored candles (``klines``) at
four widths, 1s, 1m, 15m and 1h (``shared.candles.LEVELS``, aligned on UTC): a request reads at most its limit
times the interval over the level's width of rows, through the primary key (a 1d candle is 24 hourly rows, or 96 of
15 minutes in a zone such as +05:45, whatever the number of trades in it), so a chart stays fast with years of trades.

The candles are written by Postgres itself, in the transaction that inserts the trades: an AFTER INSERT
statement trigger on ``trades`` groups the new rows (its transition table) by symbol, level and open time and
upserts them. Settlement writes each trade exactly once (``COPY``, skipped on redelivery by its cursor), so
each trade is counted once, and the candles can never disagree with the trades table. Combining two parts of
a candle is order-free (open from the smaller first trade id, close from the larger last one), so trades
inserted in any order, or by hand, give the same candles; the rows are upserted in key order, so two
transactions writing one symbol's candles (a rebalance's overlap) wait for each other instead of deadlocking.
The upgrade fills the table from the trades already there.

Volumes are NUMERIC: a sum over a busy hour of lots or of ticks times lots can pass a BIGINT. Settlement's
role may write the candles (its inserts fire the trigger, which runs as the inserting role); the gateway's
reads them.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LEVELS_MS = (1_000, 60_000, 900_000, 3_600_000)  # shared.candles.LEVELS when this migration was written
GRANTS = {"spot_settlement": "SELECT, INSERT, UPDATE", "spot_gateway": "SELECT"}
UPKEEP = {  # a row per level and symbol is updated by every settlement batch: vacuum often, keep HOT room
    "fillfactor": "90",
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_analyze_scale_factor": "0.01",
    "autovacuum_analyze_threshold": "1000",
}

_LEVELS_SQL = ", ".join(f"({w})" for w in LEVELS_MS)
# The candles of a set of trades ``t``, one row per symbol, level and open time.
CANDLES_OF = f"""
SELECT t.symbol, w.width_ms, t.ts - t.ts % w.width_ms,
       (array_agg(t.price_ticks ORDER BY t.trade_id))[1],
       max(t.price_ticks), min(t.price_ticks),
       (array_agg(t.price_ticks ORDER BY t.trade_id DESC))[1],
       sum(t.qty_lots), sum(t.price_ticks::numeric * t.qty_lots), count(*),
       coalesce(sum(t.qty_lots) FILTER (WHERE NOT t.buyer_is_maker), 0),
       coalesce(sum(t.price_ticks::numeric * t.qty_lots) FILTER (WHERE NOT t.buyer_is_maker), 0),
       min(t.trade_id), max(t.trade_id)
FROM {{source}} t CROSS JOIN (VALUES {_LEVELS_SQL}) AS w(width_ms)
GROUP BY t.symbol, w.width_ms, t.ts - t.ts % w.width_ms
ORDER BY 1, 2, 3"""  # noqa: S608 - built of this file's constants, no input
COLUMNS = (
    "symbol, width_ms, open_time, open_ticks, high_ticks, low_ticks, close_ticks, volume_lots, quote_nu, trades, "
    "taker_buy_lots, taker_buy_nu, first_trade_id, last_trade_id"
)
TRIGGER_FUNCTION = f"""
CREATE FUNCTION klines_from_trades() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO klines AS k ({COLUMNS})
  {CANDLES_OF.format(source="new_trades")}
  ON CONFLICT (symbol, width_ms, open_time) DO UPDATE SET
    open_ticks = CASE WHEN excluded.first_trade_id < k.first_trade_id THEN excluded.open_ticks ELSE k.open_ticks END,
    close_ticks = CASE WHEN excluded.last_trade_id > k.last_trade_id THEN excluded.close_ticks ELSE k.close_ticks END,
    high_ticks = greatest(k.high_ticks, excluded.high_ticks),
    low_ticks = least(k.low_ticks, excluded.low_ticks),
    volume_lots = k.volume_lots + excluded.volume_lots,
    quote_nu = k.quote_nu + excluded.quote_nu,
    trades = k.trades + excluded.trades,
    taker_buy_lots = k.taker_buy_lots + excluded.taker_buy_lots,
    taker_buy_nu = k.taker_buy_nu + excluded.taker_buy_nu,
    first_trade_id = least(k.first_trade_id, excluded.first_trade_id),
    last_trade_id = greatest(k.last_trade_id, excluded.last_trade_id);
  RETURN NULL;
END $$"""


def _exists(role: str) -> bool:
    from sqlalchemy import text

    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def upgrade() -> None:
    op.execute(
        """CREATE TABLE klines (
  symbol text NOT NULL,
  width_ms integer NOT NULL,
  open_time bigint NOT NULL,
  open_ticks bigint NOT NULL,
  high_ticks bigint NOT NULL,
  low_ticks bigint NOT NULL,
  close_ticks bigint NOT NULL,
  volume_lots numeric NOT NULL,
  quote_nu numeric NOT NULL,
  trades bigint NOT NULL,
  taker_buy_lots numeric NOT NULL,
  taker_buy_nu numeric NOT NULL,
  first_trade_id bigint NOT NULL,
  last_trade_id bigint NOT NULL,
  PRIMARY KEY (symbol, width_ms, open_time)
)"""
    )
    op.execute(f"ALTER TABLE klines SET ({', '.join(f'{k} = {v}' for k, v in UPKEEP.items())})")
    op.execute(f"INSERT INTO klines ({COLUMNS}) {CANDLES_OF.format(source='trades')}")
    op.execute(TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER trades_to_klines AFTER INSERT ON trades REFERENCING NEW TABLE AS new_trades "
        "FOR EACH STATEMENT EXECUTE FUNCTION klines_from_trades()"
    )
    for role, privileges in GRANTS.items():
        if _exists(role):  # made by 0010 where the migrating user may create roles
            op.execute(f"GRANT {privileges} ON klines TO {role}")


def downgrade() -> None:
    op.execute("DROP TRIGGER trades_to_klines ON trades")
    op.execute("DROP FUNCTION klines_from_trades()")
    op.execute("DROP TABLE klines")
