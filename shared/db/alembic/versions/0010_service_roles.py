"""A database role per service, each holding only what its own SQL needs

Revision ID: 0010
Revises: 0009

Every service but the gateway connected as the migrating user, which owns every table: a bug or an injected
statement in the matcher or market data could rewrite balances or read every API key. Each service now
connects acting as a role of its own (``DATABASE_ROLE``, ``shared.config.database_role``; NOLOGIN roles the
login user takes, as with ``spot_gateway`` in 0009), granted exactly what the statements in its code run
(``GRANTS``; found by reading every query of the service and the ``shared`` modules it calls):

- only settlement moves money after acceptance (balances, ledger, trades, order states); the order
  processor takes the hold with the order row (balances, a ``hold`` ledger entry, open-order counts) and
  cannot change an order once written, nor write a trade;
- the matcher, market data and the trade archiver only read the markets (and the matcher the settlement
  cursor it starts from): they write nothing in Postgres;
- ingestion reads markets and API keys (the Lambda verifies the client's signature) and takes order-id
  blocks; the gateway reads what it serves, and no longer the ledger, the halts or the cursors;
- every role reads ``fleet`` (the identity check before serving); the order processor's segment keeper
  raises its epoch.

``spot admin`` (users, keys, deposits, markets, halts, migrations) keeps the migrating user. Roles belong
to the cluster and are made once, where the migrating user may create roles; the grants are per database.
A table added later is granted in its own migration (no default privileges: a new table is nobody's until
a migration says whose).
"""

from alembic import op
from sqlalchemy import text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FLEET = {"fleet": "SELECT", "markets": "SELECT"}  # every service: the identity check, the market filters
GRANTS: dict[str, dict[str, str]] = {
    "spot_gateway": {
        **FLEET,
        "users": "SELECT",
        "api_keys": "SELECT",  # the verifying path: sealed secrets open only with the envelope key
        "balances": "SELECT",
        "orders": "SELECT",
        "trades": "SELECT",
    },
    "spot_ingestion": {**FLEET, "users": "SELECT", "api_keys": "SELECT"},
    "spot_order_processor": {
        **FLEET,
        "fleet": "SELECT, UPDATE",  # the segment keeper raises the epoch
        "settlement_cursor": "SELECT",  # the reconciler's view of what settlement applied
        "orders": "SELECT, INSERT",
        "balances": "SELECT, UPDATE",  # the hold: available -> held, rows locked FOR UPDATE
        "ledger": "INSERT",
        "open_order_counts": "SELECT, INSERT, UPDATE",
    },
    "spot_matcher": {**FLEET, "settlement_cursor": "SELECT"},
    "spot_settlement": {
        **FLEET,
        "settlement_cursor": "SELECT, INSERT, UPDATE",
        "orders": "SELECT, UPDATE",
        "balances": "SELECT, INSERT, UPDATE",
        "ledger": "SELECT, INSERT",  # COPY; asyncpg prepares a SELECT of the columns to learn their types
        "trades": "SELECT, INSERT",
        "open_order_counts": "SELECT, UPDATE",
        "settlement_halts": "SELECT, INSERT",
    },
    "spot_market_data": dict(FLEET),
    "spot_trade_archiver": dict(FLEET),
}
SEQUENCES: dict[str, tuple[str, ...]] = {
    "spot_gateway": ("order_id_blocks",),  # ingestion in the gateway's process (INGESTION_IN_GATEWAY)
    "spot_ingestion": ("order_id_blocks",),
    "spot_order_processor": ("ledger_entry_id_seq",),
    "spot_settlement": ("ledger_entry_id_seq", "settlement_halts_halt_id_seq"),
}
NEW_ROLES = tuple(r for r in GRANTS if r != "spot_gateway")  # spot_gateway is 0009's


def _create(role: str) -> tuple[str, str]:
    """Create ``role`` unless it exists (concurrent migrations of two databases may race: tolerated), and make
    the migrating user a member where it may, as 0009 does for spot_gateway."""
    create = f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
    CREATE ROLE {role} NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$"""  # noqa: S608 - role names are the constants of GRANTS, no input
    join = f"""DO $$ BEGIN
  EXECUTE format('GRANT {role} TO %I', current_user);
EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE '{role}: membership not granted to %', current_user;
END $$"""
    return create, join


def _exists(role: str) -> bool:
    return bool(op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def _revoke(role: str) -> None:
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")


def upgrade() -> None:
    conn = op.get_bind()
    may_create = conn.execute(text("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"))
    if may_create.scalar():
        for role in NEW_ROLES:
            for statement in _create(role):
                op.execute(statement)
    for role, tables in GRANTS.items():
        if not _exists(role):  # a database whose migrating user may not create roles: an operator's (README)
            continue
        _revoke(role)  # spot_gateway held SELECT on every table (0009)
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        for table, privileges in tables.items():
            op.execute(f"GRANT {privileges} ON {table} TO {role}")
        for sequence in SEQUENCES.get(role, ()):
            op.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {role}")


def downgrade() -> None:
    for role in NEW_ROLES:
        if _exists(role):
            _revoke(role)
            op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
    if _exists("spot_gateway"):  # back to 0009's grants
        _revoke("spot_gateway")
        op.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO spot_gateway")
        op.execute("GRANT USAGE ON SEQUENCE order_id_blocks TO spot_gateway")
