"""Each service's database role holds only what its statements need (issue 20, migration 0010), on a real
Postgres.

For every service: its connections act as ``spot_<service>`` (``shared.config.database_role``, as ``spot up``,
compose and the chart set ``DATABASE_ROLE``); the kinds of statement its code runs pass (each in a transaction
that is rolled back); and what it has no business with is refused by Postgres itself
(``InsufficientPrivilegeError``), not merely left unused by the code: the matcher and market data cannot touch
balances, only the gateway and ingestion read API keys, the order processor cannot rewrite an order or write
a trade, settlement cannot make orders or users. The whole order flow under these roles is
``tests/e2e/test_order_flow.py`` (``spot.fleet`` gives each service its role).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from services.settlement.accounts import LEDGER_COLUMNS, TRADE_COLUMNS
from shared import postgres
from shared.config import SERVICE_PORTS, Settings, database_role

FLEET = ["SELECT fleet_id, base_epoch FROM fleet", "SELECT symbol, tick_size FROM markets"]
MONEY_WRITES = [
    "UPDATE balances SET available = available + 1",
    "INSERT INTO ledger (ts, kind, ref, asset, amount) VALUES (0, 'x', 'x', 'USDT', 1)",
    "DELETE FROM balances",
]
ORDER_WRITES = ["UPDATE orders SET status = 'FILLED'", "DELETE FROM orders"]
SECRETS = ["SELECT secret_sealed FROM api_keys", "UPDATE api_keys SET permissions = '{TRADE}'"]
ADMIN = [
    "UPDATE users SET status = 'ACTIVE'",
    "UPDATE markets SET status = 'HALT'",
    "INSERT INTO users (name, created_at) VALUES ('x', 0)",
]
WITHDRAWAL_HOLD = "SELECT out_outcome FROM withdrawal_hold('roles-w', $1, 'USDT', 1, 'a', 'USDT', NULL, 0)"
NEW_ORDER = (
    "INSERT INTO orders (order_id, user_id, symbol, client_order_id, side, type, status, hold_asset, stp, created_ts, "
    "updated_ts) VALUES (nextval('order_id_blocks') * 1000, $1, 'BTCUSDT', 'roles', 'BUY', 'LIMIT', 'NEW', 'USDT', "
    "'NONE', 0, 0)"
)

# What each service's code runs (the same tables and kinds of statement), and what it must never be able to.
ALLOWED: dict[str, list[str]] = {
    "gateway": [
        *FLEET,
        "SELECT k.user_id, k.secret_sealed, k.public_key, u.status FROM api_keys k JOIN users u USING (user_id)",
        "SELECT asset, available, held FROM balances WHERE user_id = $1",
        "SELECT order_id, status FROM orders WHERE user_id = $1",
        "SELECT * FROM trades WHERE buyer_user_id = $1",
        "SELECT min(open_time) FROM klines WHERE symbol = 'BTCUSDT'",  # the klines route (migration 0012)
        "SELECT nextval('order_id_blocks')",
        WITHDRAWAL_HOLD,  # the one money change it may make (migration 0011), with the ledger entry inside
        "SELECT withdraw_id, status FROM withdrawals WHERE user_id = $1",
        "SELECT * FROM prevented_matches WHERE user_id = $1",  # myPreventedMatches (migration 0015)
        "SELECT * FROM order_lists WHERE user_id = $1",  # GET orderList, allOrderList (migration 0018)
    ],
    "ingestion": [
        *FLEET,
        "SELECT k.user_id, k.secret_sealed, k.public_key, u.status FROM api_keys k JOIN users u USING (user_id)",
        "SELECT nextval('order_id_blocks')",
    ],
    "order-processor": [
        *FLEET,
        "UPDATE fleet SET epoch = GREATEST(epoch, 0)",
        "SELECT seq FROM settlement_cursor",
        "SELECT user_id, asset, available FROM balances WHERE user_id = $1 FOR UPDATE",
        "UPDATE balances SET available = available - 1, held = held + 1 WHERE user_id = $1 RETURNING available",
        "INSERT INTO ledger (ts, kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount) "
        "VALUES (0, 'hold', 'order:1', 'USDT', $1, 'available', $1, 'held', 1)",
        "INSERT INTO open_order_counts (user_id, symbol, n) VALUES ($1, 'BTCUSDT', 1) "
        "ON CONFLICT (user_id, symbol) DO UPDATE SET n = open_order_counts.n + excluded.n",
        "SELECT count(*) FROM orders WHERE user_id = $1",
        # PERCENT_PRICE_BY_SIDE's average price (services/order_processor/averages.py, migration 0014)
        "SELECT coalesce(sum(volume_lots), 0), coalesce(sum(quote_nu), 0) FROM klines WHERE symbol = 'BTCUSDT'",
        "SELECT price_ticks FROM trades WHERE symbol = 'BTCUSDT' ORDER BY trade_id DESC LIMIT 1",
        "INSERT INTO order_lists (order_list_id, user_id, symbol, contingency_type, list_client_order_id, "
        "list_status_type, list_order_status, transaction_time, updated_ts) VALUES (1, $1, 'BTCUSDT', 'OCO', 'L', "
        "'EXEC_STARTED', 'EXECUTING', 0, 0) ON CONFLICT DO NOTHING",  # an order list (migration 0018)
    ],
    "matcher": [*FLEET, "SELECT symbol, seq FROM settlement_cursor"],
    "settlement": [
        *FLEET,
        "INSERT INTO settlement_cursor (symbol, seq) VALUES ('BTCUSDT', 0) ON CONFLICT DO NOTHING",
        "SELECT symbol, seq FROM settlement_cursor ORDER BY symbol FOR UPDATE",
        "UPDATE settlement_cursor SET seq = seq WHERE symbol = 'BTCUSDT'",
        "SELECT order_id, hold_left FROM orders WHERE user_id = $1 FOR UPDATE",
        "UPDATE orders SET status = status WHERE user_id = $1",
        "UPDATE order_lists SET list_order_status = list_order_status WHERE user_id = $1",  # listStatus (0018)
        "INSERT INTO balances (user_id, asset) VALUES ($1, 'ETH') ON CONFLICT DO NOTHING",
        "UPDATE balances SET available = available + 1 WHERE user_id = $1 RETURNING available, held",
        "UPDATE open_order_counts SET n = n WHERE user_id = $1",
        "INSERT INTO prevented_matches (symbol, prevented_match_id, user_id, taker_order_id, maker_order_id, mode, "
        "price_ticks, maker_prevented_lots, ts) VALUES ('ETHUSDT', 1, $1, 1, 2, 'EXPIRE_MAKER', 1, 1, 0)",
        "UPDATE orders SET qty_lots = qty_lots, client_order_id = client_order_id WHERE user_id = $1",  # amends
        "INSERT INTO settlement_halts (symbol, seq, topic, src_partition, src_offset, src_index, kind, reason, "
        "record, halted_at) VALUES ('ETHUSDT', 1, 't', 0, 0, 0, 'k', 'r', '{}', 0) "
        "ON CONFLICT (symbol) WHERE resolution IS NULL DO NOTHING",
        "SELECT halt_id FROM settlement_halts WHERE resolution IS NULL",
        "SELECT ok, finished_at FROM audit_runs ORDER BY run_id DESC LIMIT 1",
        "DELETE FROM klines WHERE symbol = 'BTCUSDT' AND width_ms = 1000 AND open_time < 0",  # retention (0013)
        "SELECT circuit_break('NOSUCHUSDT')",  # the breaker: TRADING -> BREAK only (migration 0014)
        "SELECT nextval('order_id_blocks')",  # the in-band market change's request id
    ],
    "market-data": list(FLEET),
    "trade-archiver": list(FLEET),
}
FORBIDDEN: dict[str, list[str]] = {
    "gateway": [
        *MONEY_WRITES,
        *ORDER_WRITES,
        SECRETS[1],
        *ADMIN,
        "SELECT count(*) FROM ledger",
        "UPDATE withdrawals SET status = 'FAILED'",
        "SELECT count(*) FROM audit_runs",
        "DELETE FROM klines",
    ],
    "ingestion": [
        *MONEY_WRITES,
        *ORDER_WRITES,
        SECRETS[1],
        *ADMIN,
        NEW_ORDER,
        "SELECT count(*) FROM balances",
        WITHDRAWAL_HOLD,
    ],
    "order-processor": [
        *ORDER_WRITES,
        *SECRETS,
        *ADMIN,
        "DELETE FROM balances",
        "UPDATE ledger SET amount = 2",
        "INSERT INTO trades (symbol, trade_id, seq, price_ticks, qty_lots, buyer_order_id, seller_order_id, "
        "buyer_user_id, seller_user_id, buyer_is_maker, buyer_fee, seller_fee, ts) "
        "VALUES ('BTCUSDT', 1, 1, 1, 1, 1, 2, 1, 1, true, 0, 0, 0)",
        "UPDATE settlement_cursor SET seq = 0",
        WITHDRAWAL_HOLD,
        "SELECT circuit_break('BTCUSDT')",
    ],
    "matcher": [
        *MONEY_WRITES,
        *ORDER_WRITES,
        *SECRETS,
        *ADMIN,
        "SELECT count(*) FROM balances",
        NEW_ORDER,
        WITHDRAWAL_HOLD,
    ],
    "settlement": [
        *SECRETS,
        *ADMIN,
        NEW_ORDER,
        "DELETE FROM orders",
        "DELETE FROM balances",
        "UPDATE ledger SET amount = 2",
        "DELETE FROM trades",
        "UPDATE fleet SET epoch = epoch",
        WITHDRAWAL_HOLD,
        "INSERT INTO audit_runs (started_at, finished_at, ok, report) VALUES (0, 0, true, '{}')",
    ],
    "market-data": [
        *MONEY_WRITES,
        *ORDER_WRITES,
        *SECRETS,
        *ADMIN,
        "SELECT count(*) FROM orders",
        "DELETE FROM klines",
    ],
    "trade-archiver": [*MONEY_WRITES, *ORDER_WRITES, *SECRETS, *ADMIN, "SELECT count(*) FROM trades"],
}


class _RolledBack(Exception):
    pass


@pytest.fixture(scope="module")
def database(module_env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A migrated database with one user holding USDT; the statements' ``$1`` is that user."""
    url = module_env["DATABASE_URL"]
    postgres.migrate(url)

    async def seed() -> int:
        conn = await asyncpg.connect(url)
        try:
            user_id = int(
                await conn.fetchval("INSERT INTO users (name, created_at) VALUES ('roles', 0) RETURNING user_id")
            )
            await conn.execute("INSERT INTO balances (user_id, asset, available) VALUES ($1, 'USDT', 100)", user_id)
            return user_id
        finally:
            await conn.close()

    yield url, asyncio.run(seed())


def _uses_user(sql: str) -> bool:
    return "$1" in sql


async def _run(db: asyncpg.Pool, sql: str, user_id: int) -> None:
    """Run ``sql`` and roll it back, whatever it did."""
    async with db.acquire() as conn:
        try:
            async with conn.transaction():
                await conn.execute(sql, *([user_id] if _uses_user(sql) else []))
                raise _RolledBack
        except _RolledBack:
            pass


def test_every_service_has_statements_to_check() -> None:
    assert set(ALLOWED) == set(FORBIDDEN) == set(SERVICE_PORTS)


@pytest.mark.parametrize("service", list(SERVICE_PORTS))
def test_a_service_role_runs_its_statements_and_is_refused_the_rest(service: str, database: tuple[str, int]) -> None:
    url, user_id = database
    role = database_role(service)

    async def check() -> None:
        async with postgres.pool(Settings(database_url=url, database_role=role), max_size=1) as db:
            assert await db.fetchval("SELECT current_user") == role
            for sql in ALLOWED[service]:
                await _run(db, sql, user_id)
            for sql in FORBIDDEN[service]:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await _run(db, sql, user_id)
                    pytest.fail(f"{role} may run: {sql}")

    asyncio.run(check())


def test_settlement_copies_ledger_and_trade_rows_as_its_code_does(database: tuple[str, int]) -> None:
    """``Accounts._write`` COPYs postings and trades: asyncpg reads the columns' types first."""
    url, user_id = database

    async def check() -> None:
        async with postgres.pool(Settings(database_url=url, database_role="spot_settlement"), max_size=1) as db:
            async with db.acquire() as conn:
                try:
                    async with conn.transaction():
                        posting = (0, "fee", "t:1", "USDT", user_id, "available", 1, "available", 1)
                        await conn.copy_records_to_table("ledger", columns=LEDGER_COLUMNS, records=[posting])
                        trade = ("BTCUSDT", 1, 1, 1, 1, 1, 2, user_id, user_id, True, 0, 0, 0)
                        await conn.copy_records_to_table("trades", columns=TRADE_COLUMNS, records=[trade])
                        assert await conn.fetchval("SELECT count(*) FROM trades WHERE trade_id = 1") == 1
                        candles = "SELECT count(*) FROM klines WHERE symbol = 'BTCUSDT' AND first_trade_id = 1"
                        assert await conn.fetchval(candles) == 4, "the trigger wrote its 1s, 1m, 15m and 1h candles"
                        raise _RolledBack
                except _RolledBack:
                    pass

    asyncio.run(check())
