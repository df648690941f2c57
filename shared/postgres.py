"""Postgres (Aurora) access: a connection pool that waits for the database, migrations, market rows.

Every statement in the project is parameterised (``$1``...); nothing is built by string formatting.
A pool is bounded (``max_size``); a service that answers requests gives it an ``acquire_wait_s``, so a
request that finds every connection busy waits that long at most and is refused with -1008
(``PostgresPoolExhausted``, ``shared.overload``) instead of queueing behind the backlog. Consumers wait
as long as it takes: their batches are sequential and hold a connection or two.
Each batch's transaction is timed with ``timed(operation)`` into ``spot_postgres_call_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import Histogram

from . import dbsecret, overload, resilience, shutdown, tracing
from .config import Settings
from .domain import Market

log = logging.getLogger(__name__)
RETRY_S, RETRY_MAX_S = 0.5, 5.0
CALL_SECONDS = Histogram(
    "spot_postgres_call_seconds",
    "Postgres call latency per batch (a whole transaction, from acquiring the connection to commit) by operation",
    ["operation"],
    buckets=tracing.CALL_BUCKETS,
)


VALUE_ERRORS = resilience.POSTGRES_VALUE_ERRORS  # what a statement raises for its values, not an outage


def timed(operation: str) -> tracing.Timed:
    """``async with timed("settle"), pool.acquire() as conn, conn.transaction():``, once per batch."""
    return tracing.Timed(CALL_SECONDS.labels(operation), f"postgres {operation}")


ALEMBIC_INI = Path(__file__).parent / "db" / "alembic.ini"


async def _end_transaction(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: no open transaction. asyncpg's default reset
    also clears session state (SET, LISTEN, advisory locks, cursors) in one more round trip per release, a
    statement per batch in every consumer; no code here leaves any such state behind."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# How long a connection keeps a prepared statement, and so its plan, before preparing it again. Postgres
# plans a prepared statement a few times, then keeps one generic plan; a plan made while a table was nearly
# empty (every fresh database, the first seconds after a deployment) scans it whole, and nothing replans it
# until an autovacuum ANALYZE, up to a minute and more later. By then ``orders`` has tens of thousands of
# rows and each key lookup a batch makes (the processor's redelivery and client-id checks, settlement's
# order updates) read them all: 14 ms a batch in the fleet bench, the largest share of Postgres' time.
# Preparing again every few seconds costs a round trip per statement and gets index plans as tables grow.
STATEMENT_REPLAN_S = 5


async def _keep_alive(conn: asyncpg.Connection) -> None:
    """TCP keepalives on each new connection: asyncpg has no option for them, so on its transport's socket."""
    resilience.keep_alive(conn._transport.get_extra_info("socket"))


CLOSE_S = 5.0  # a pool whose server went silent cannot close politely; it is terminated after this


class PostgresPoolExhausted(overload.Overloaded):
    """No pooled Postgres connection came free within the request's wait."""


class BoundedPool(asyncpg.Pool):
    """asyncpg's pool whose ``acquire`` (and so ``fetch``, ``fetchrow``, ...) waits ``acquire_wait_s`` at
    most when no timeout is given, then raises ``PostgresPoolExhausted``."""

    __slots__ = ("acquire_wait_s",)

    def __init__(self, *args: Any, acquire_wait_s: float | None = None, **kwargs: Any) -> None:
        self.acquire_wait_s = acquire_wait_s
        super().__init__(*args, **kwargs)

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_wait_s if timeout is None else timeout)

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncpg's own signature
        try:
            return await super()._acquire(timeout)
        except TimeoutError:
            raise overload.refuse("postgres connection", timeout or 0.0, PostgresPoolExhausted) from None


@asynccontextmanager
async def pool(
    settings: Settings, min_size: int = 1, max_size: int = 10, acquire_wait_s: float | None = None
) -> AsyncIterator[asyncpg.Pool]:
    """A bounded pool; an unreachable database is waited for with backoff, not a crash at start.
    ``acquire_wait_s``: how long a caller waits for a free connection (None: as long as it takes).

    Every statement and connect is bounded by ``postgres_timeout_ms`` (a TimeoutError, an outage to
    ``shared.resilience``), so a server that goes silent without closing fails the call instead of holding it.
    With ``database_role`` every connection acts as that role from its start (the gateway: ``spot_gateway``,
    which cannot write balances; migration 0009).
    """
    timeout_s = settings.postgres_timeout_ms / 1000
    delay = RETRY_S
    while True:
        try:
            async with shutdown.attempt():  # a stop abandons a connect that hangs (a blackholed server)
                p = await BoundedPool(
                    settings.database_url,
                    min_size=min_size,
                    max_size=max_size,
                    timeout=timeout_s,
                    command_timeout=timeout_s,
                    reset=_end_transaction,
                    max_cached_statement_lifetime=STATEMENT_REPLAN_S,
                    acquire_wait_s=acquire_wait_s,
                    connection_class=asyncpg.Connection,
                    record_class=asyncpg.Record,
                    max_queries=50000,
                    max_inactive_connection_lifetime=300.0,
                    connect=dbsecret.connector(settings),  # the password from Secrets Manager, when configured
                    setup=None,
                    init=_keep_alive,
                    loop=None,
                    init_size=None,
                    server_settings={"role": settings.database_role} if settings.database_role else None,
                )
            break
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("postgres not reachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            await shutdown.pause(delay)  # a stop requested meanwhile ends the wait (shared.shutdown)
            delay = min(delay * 2, RETRY_MAX_S)
    try:
        yield p
    finally:
        try:
            await asyncio.wait_for(p.close(), CLOSE_S)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            p.terminate()


def migrate(database_url: str) -> None:
    """Run the Alembic migrations up to head (synchronous; used by ``spot admin init`` and tests)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.cmd_opts = None
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(cfg, "head")


MARKET_COLUMNS = (
    "symbol, base, quote, status, tick_size, step_size, min_price, max_price, min_qty, max_qty, "
    "min_notional, maker_fee_bps, taker_fee_bps, max_notional, bid_up, bid_down, ask_up, ask_down, breaker_pct, "
    "breaker_window_s"
)


async def load_markets(conn: asyncpg.Pool | asyncpg.Connection) -> dict[str, Market]:
    rows = await conn.fetch(f"SELECT {MARKET_COLUMNS} FROM markets ORDER BY symbol")  # noqa: S608 (constant)
    return {r["symbol"]: Market(**dict(r)) for r in rows}


async def learn_markets(
    conn: asyncpg.Pool | asyncpg.Connection, markets: dict[str, Market], symbols: Iterable[str]
) -> set[str]:
    """Add to ``markets`` (in place) the rows of ``symbols`` it does not know yet: a market added while the
    fleet runs (``spot admin market add`` writes its row before any of its records exists). Returns the
    symbols learned; one still unknown is not in Postgres either."""
    missing = {s for s in symbols if s not in markets}
    if not missing:
        return set()
    rows = await conn.fetch(
        f"SELECT {MARKET_COLUMNS} FROM markets WHERE symbol = ANY($1::text[])",  # noqa: S608 (constant)
        sorted(missing),
    )
    learned = {r["symbol"]: Market(**dict(r)) for r in rows}
    markets.update(learned)
    return set(learned)


async def upsert_market(conn: asyncpg.Pool | asyncpg.Connection, m: Market) -> None:
    await conn.execute(
        f"""INSERT INTO markets ({MARKET_COLUMNS})
            VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
            ON CONFLICT (symbol) DO UPDATE SET base=$2, quote=$3, status=$4, tick_size=$5, step_size=$6,
              min_price=$7, max_price=$8, min_qty=$9, max_qty=$10, min_notional=$11, maker_fee_bps=$12,
              taker_fee_bps=$13, max_notional=$14, bid_up=$15, bid_down=$16, ask_up=$17, ask_down=$18,
              breaker_pct=$19, breaker_window_s=$20""",  # noqa: S608 (constant column list)
        m.symbol,
        m.base,
        m.quote,
        m.status,
        m.tick_size,
        m.step_size,
        m.min_price,
        m.max_price,
        m.min_qty,
        m.max_qty,
        m.min_notional,
        m.maker_fee_bps,
        m.taker_fee_bps,
        m.max_notional,
        m.bid_up,
        m.bid_down,
        m.ask_up,
        m.ask_down,
        m.breaker_pct,
        m.breaker_window_s,
    )


DEFAULT_MARKETS = (
    Market(
        "BTCUSDT",
        "BTC",
        "USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.00001"),
        min_price=Decimal("0.01"),
        max_price=Decimal("1000000"),
        min_qty=Decimal("0.00001"),
        max_qty=Decimal("9000"),
        min_notional=Decimal("5"),
    ),
    Market(
        "ETHUSDT",
        "ETH",
        "USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.0001"),
        min_price=Decimal("0.01"),
        max_price=Decimal("1000000"),
        min_qty=Decimal("0.0001"),
        max_qty=Decimal("9000"),
        min_notional=Decimal("5"),
    ),
)
