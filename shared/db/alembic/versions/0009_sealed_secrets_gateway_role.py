"""API secrets sealed at rest, key restrictions, and the gateway's own database role

Revision ID: 0009
Revises: 0008

``api_keys.secret`` held every HMAC secret in plaintext: anyone who could read the table (a backup, a
replica, a role of any service) could sign as every user. Each secret is now sealed with its own data key
under the envelope key (``shared/envelope.py``: ``KMS_KEY_ID``, ``ENVELOPE_KEY`` or the local key file),
bound to its API key, and the plaintext column is dropped. The upgrade seals the existing rows with the
KEK this process is configured with, so run it where the services' KEK is configured.

``ip_allow``: the networks a key may be used from (NULL: any), enforced by the gateway. ``key_type``: HMAC
(a sealed secret) or ED25519 (only the client's public key is stored, raw 32 bytes: nothing secret at all).
A downgrade drops the Ed25519 keys, which the older schema cannot hold.

``spot_gateway``: a role (NOLOGIN; the gateway's connections take it with ``DATABASE_ROLE``, or an operator
gives it LOGIN) that reads what the gateway serves and takes order-id blocks, and writes nothing else:
not balances, not the ledger, not orders. Roles belong to the whole Postgres cluster, so it is created
once (concurrent migrations of two databases tolerate each other) and only where the migrating user may
create roles; its grants are per database.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

GATEWAY_ROLE = "spot_gateway"
# a constant name, no input: concurrent migrations of two databases may race to create it
CREATE_ROLE = """DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spot_gateway') THEN
    CREATE ROLE spot_gateway NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$"""
# the migrating user joins the role where it may (a role another user made may refuse it: the deploy README
# says what an operator grants then)
JOIN_ROLE = """DO $$ BEGIN
  EXECUTE format('GRANT spot_gateway TO %I', current_user);
EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'spot_gateway: membership not granted to %', current_user;
END $$"""
ROLE_EXISTS = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role").bindparams(role=GATEWAY_ROLE)


def _envelope():
    from shared import envelope
    from shared.config import Settings

    return envelope.from_settings(Settings())


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("api_keys", sa.Column("secret_sealed", sa.LargeBinary(), nullable=True))
    op.add_column("api_keys", sa.Column("ip_allow", sa.ARRAY(sa.Text()), nullable=True))
    op.add_column("api_keys", sa.Column("key_type", sa.Text(), nullable=False, server_default="HMAC"))
    op.add_column("api_keys", sa.Column("public_key", sa.LargeBinary(), nullable=True))
    rows = conn.execute(sa.text("SELECT api_key, secret FROM api_keys")).fetchall()
    if rows:
        box = _envelope()
        for api_key, secret in rows:
            conn.execute(
                sa.text("UPDATE api_keys SET secret_sealed = :s WHERE api_key = :k"),
                {"s": box.seal(secret, api_key), "k": api_key},
            )
    op.drop_column("api_keys", "secret")
    op.create_check_constraint(
        "api_key_material",
        "api_keys",
        "(key_type = 'HMAC' AND secret_sealed IS NOT NULL) OR (key_type = 'ED25519' AND public_key IS NOT NULL)",
    )
    may_create = conn.execute(
        sa.text("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if may_create:
        op.execute(CREATE_ROLE)
        # the migrating user (Aurora's master user, which the services log in as) may then take the role:
        # without membership a non-superuser is refused SET ROLE spot_gateway
        op.execute(JOIN_ROLE)
    if conn.execute(ROLE_EXISTS).scalar():
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {GATEWAY_ROLE}")
        op.execute(f"GRANT USAGE ON SCHEMA public TO {GATEWAY_ROLE}")
        op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {GATEWAY_ROLE}")
        op.execute(f"GRANT USAGE ON SEQUENCE order_id_blocks TO {GATEWAY_ROLE}")  # nextval: order-id blocks


def downgrade() -> None:
    conn = op.get_bind()
    op.execute("DELETE FROM api_keys WHERE key_type = 'ED25519'")
    op.drop_constraint("api_key_material", "api_keys")
    op.drop_column("api_keys", "public_key")
    op.drop_column("api_keys", "key_type")
    op.add_column("api_keys", sa.Column("secret", sa.Text(), nullable=True))
    rows = conn.execute(sa.text("SELECT api_key, secret_sealed FROM api_keys")).fetchall()
    if rows:
        box = _envelope()
        for api_key, sealed in rows:
            conn.execute(
                sa.text("UPDATE api_keys SET secret = :s WHERE api_key = :k"),
                {"s": box.open(bytes(sealed), api_key), "k": api_key},
            )
    op.alter_column("api_keys", "secret", nullable=False)
    op.drop_column("api_keys", "secret_sealed")
    op.drop_column("api_keys", "ip_allow")
    if conn.execute(ROLE_EXISTS).scalar():
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {GATEWAY_ROLE}")
        op.execute(f"REVOKE ALL ON SEQUENCE order_id_blocks FROM {GATEWAY_ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {GATEWAY_ROLE}")
