"""Money in and out, and the audit's record: deposits by external reference, withdrawals that hold funds,
and the result of every ``spot admin audit``

Revision ID: 0011
Revises: 0010

- ``deposits``: one row per external reference (a chain transaction, a bank transfer id): the credit and its
  row commit together, so a deposit repeated with the same reference is credited once (``shared.funds``).
- ``withdrawals``: a request moves the amount from available to held (a ``withdraw_hold`` ledger entry);
  completing it debits the held amount to the outside world (``withdraw``), failing it releases it
  (``withdraw_release``): each exactly once, while the row is ``PENDING``.
- ``withdrawal_hold``: the request, as one function the gateway may call (``SECURITY DEFINER``): the gateway's
  role still cannot change a balance or write a ledger row (0010), only take this one hold of the caller's own
  free funds, with its ledger entry and row. The balance row is locked ``FOR UPDATE`` before it is read, as
  the order processor and settlement lock it; the function locks nothing else first, so no lock order is
  reversed.
- ``audit_runs``: what each audit found; settlement exposes the newest as ``spot_audit_ok``.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WITHDRAWAL_HOLD = """
CREATE FUNCTION withdrawal_hold(p_id text, p_user bigint, p_asset text, p_amount bigint, p_address text,
                                p_network text, p_client_id text, p_now bigint)
RETURNS TABLE (out_id text, out_outcome text, out_available bigint, out_held bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_available bigint;
  v_existing text;
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'a withdrawal must be positive, got %', p_amount USING ERRCODE = '22023';
  END IF;
  SELECT b.available INTO v_available FROM balances b
   WHERE b.user_id = p_user AND b.asset = p_asset FOR UPDATE;
  IF p_client_id IS NOT NULL THEN
    SELECT w.withdraw_id INTO v_existing FROM withdrawals w
     WHERE w.user_id = p_user AND w.withdraw_order_id = p_client_id;
    IF FOUND THEN
      RETURN QUERY SELECT v_existing, 'EXISTS'::text, NULL::bigint, NULL::bigint;
      RETURN;
    END IF;
  END IF;
  IF v_available IS NULL OR v_available < p_amount THEN
    RETURN QUERY SELECT NULL::text, 'INSUFFICIENT'::text, v_available, NULL::bigint;
    RETURN;
  END IF;
  UPDATE balances b SET available = b.available - p_amount, held = b.held + p_amount, updated_at = p_now
   WHERE b.user_id = p_user AND b.asset = p_asset;
  INSERT INTO ledger (ts, kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount)
  VALUES (p_now, 'withdraw_hold', 'withdraw:' || p_id, p_asset, p_user, 'available', p_user, 'held', p_amount);
  INSERT INTO withdrawals (withdraw_id, user_id, asset, amount, address, network, withdraw_order_id, status,
                           created_at)
  VALUES (p_id, p_user, p_asset, p_amount, p_address, p_network, p_client_id, 'PENDING', p_now);
  RETURN QUERY SELECT p_id, 'CREATED'::text, b.available, b.held FROM balances b
   WHERE b.user_id = p_user AND b.asset = p_asset;
END $$
"""
SIGNATURE = "withdrawal_hold(text, bigint, text, bigint, text, text, text, bigint)"


def _exists(role: str) -> bool:
    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def upgrade() -> None:
    op.create_table(
        "deposits",
        sa.Column("ref", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.user_id"), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name="deposit_positive"),
    )
    op.create_table(
        "withdrawals",
        sa.Column("withdraw_id", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.user_id"), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("withdraw_order_id", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("tx_id", sa.Text(), nullable=False, server_default=""),
        sa.Column("info", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.BigInteger()),
        sa.CheckConstraint("amount > 0", name="withdrawal_positive"),
        sa.CheckConstraint("status IN ('PENDING', 'COMPLETED', 'FAILED')", name="withdrawal_status_known"),
    )
    op.create_index(
        "withdrawals_client_id",
        "withdrawals",
        ["user_id", "withdraw_order_id"],
        unique=True,
        postgresql_where=sa.text("withdraw_order_id IS NOT NULL"),
    )
    op.create_index("withdrawals_user", "withdrawals", ["user_id", "created_at"])
    op.create_index("withdrawals_pending", "withdrawals", ["user_id", "asset"], postgresql_where=sa.text(
        "status = 'PENDING'"
    ))  # fmt: skip
    op.create_table(
        "audit_runs",
        sa.Column("run_id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("difference", sa.Text(), nullable=False, server_default=""),  # the first one found
        sa.Column("report", sa.Text(), nullable=False),  # the whole report, as JSON
    )
    op.execute(WITHDRAWAL_HOLD)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    if _exists("spot_gateway"):
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO spot_gateway")
        op.execute("GRANT SELECT ON withdrawals TO spot_gateway")  # the caller's own history
    if _exists("spot_settlement"):
        op.execute("GRANT SELECT ON audit_runs TO spot_settlement")  # spot_audit_ok


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.drop_table("audit_runs")
    op.drop_table("withdrawals")
    op.drop_table("deposits")
