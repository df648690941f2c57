"""Money in and out of the exchange: deposits credited once per external reference, withdrawals held until an
operator completes or fails them. Every change is a double-entry ledger row in the transaction that makes it.

Postgres, plus the user-stream events a change sends (``user_events``). Callers: ``spot admin deposit`` and
``spot admin withdraw`` (the login user), and the gateway's ``/sapi/v1/capital/withdraw/*`` routes, whose
role may only call ``withdrawal_hold`` (migration 0011) and read withdrawals.

Ledger kinds (ref ``deposit:<ref>`` or ``withdraw:<id>``), each row moving ``amount`` from one bucket to another:

  deposit           outside -> available
  withdraw_hold     available -> held     the request
  withdraw          held -> outside       completed
  withdraw_release  held -> available     failed

Locking: a request locks its balance row ``FOR UPDATE`` before reading it (inside ``withdrawal_hold``);
completing or failing locks the withdrawal row, then its balance row. The order processor and settlement lock
balance rows in (user_id, asset) order and never a withdrawal row, so no two transactions wait on each other in
opposite orders, and a hold taken for an order and one taken for a withdrawal are serialized on the row: neither
can spend what the other holds.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
import orjson

from . import redis as sredis
from .binance import account_positions, balance_update
from .domain import fmt_amount

BalanceRow = Mapping[str, Any]  # user_id, asset, available, held


class FundsError(Exception):
    """A deposit or withdrawal that cannot be made as asked; the message names what and why."""


class RefReused(FundsError):
    """A deposit reference already credited a different deposit (another user, asset or amount)."""


class InsufficientBalance(FundsError):
    """A withdrawal of more than the user's free balance."""


class NoSuchWithdrawal(FundsError):
    pass


class WithdrawalEnded(FundsError):
    """Completing a withdrawal that failed, or failing one that completed."""


class WithdrawalStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


# Binance's withdraw-history status codes: 4 Processing, 5 Failure, 6 Completed
BINANCE_STATUS: Mapping[WithdrawalStatus, int] = {
    WithdrawalStatus.PENDING: 4,
    WithdrawalStatus.FAILED: 5,
    WithdrawalStatus.COMPLETED: 6,
}
STATUS_OF_CODE = {code: status for status, code in BINANCE_STATUS.items()}
WITHDRAWAL_COLUMNS = (
    "withdraw_id, user_id, asset, amount, address, network, withdraw_order_id, status, tx_id, info, created_at, "
    "completed_at"
)


@dataclass(frozen=True, slots=True)
class Change:
    """A balance one operation changed: by how much its free part moved (``balanceUpdate``'s ``d``), and the
    balance after it (``outboundAccountPosition``)."""

    user_id: int
    asset: str
    free_delta: int
    balance: BalanceRow


@dataclass(frozen=True, slots=True)
class Withdrawal:
    withdraw_id: str
    user_id: int
    asset: str
    amount: int
    address: str
    network: str
    withdraw_order_id: str | None
    status: WithdrawalStatus
    tx_id: str
    info: str
    created_at: int
    completed_at: int | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> Withdrawal:
        return cls(**{**dict(r), "status": WithdrawalStatus(r["status"])})

    def as_binance(self) -> dict[str, Any]:
        """One entry of ``GET /sapi/v1/capital/withdraw/history``, as Binance gives it (no fee is charged)."""
        entry: dict[str, Any] = {
            "id": self.withdraw_id,
            "amount": fmt_amount(self.amount),
            "transactionFee": fmt_amount(0),
            "coin": self.asset,
            "status": BINANCE_STATUS[self.status],
            "address": self.address,
            "txId": self.tx_id,
            "applyTime": _utc(self.created_at),
            "network": self.network,
            "transferType": 0,
            "info": self.info,
            "confirmNo": 0,
            "walletType": 0,
            "txKey": "",
        }
        if self.withdraw_order_id is not None:
            entry["withdrawOrderId"] = self.withdraw_order_id
        if self.completed_at is not None:
            entry["completeTime"] = _utc(self.completed_at)
        return entry


def _utc(ms: int) -> str:
    """Binance's ``applyTime``: "2019-10-12 11:12:02", UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- deposits ------------------------------------------------------------------------------------------------
async def credit(conn: asyncpg.Connection, user_id: int, asset: str, atoms: int, now: int, ref: str) -> BalanceRow:
    """Credit ``atoms`` from the outside world: one ledger row and one balance change, in one transaction. No
    reference check: ``deposit`` is the operator's way in; this is its step (and the tests' seed)."""
    if atoms <= 0:
        raise ValueError(f"a deposit must be positive, got {atoms} atoms")
    async with conn.transaction():
        balance = await conn.fetchrow(
            "INSERT INTO balances (user_id, asset, available, held, updated_at) VALUES ($1, $2, $3, 0, $4) "
            "ON CONFLICT (user_id, asset) DO UPDATE SET available = balances.available + $3, updated_at = $4 "
            "RETURNING user_id, asset, available, held",
            user_id,
            asset,
            atoms,
            now,
        )
        await conn.execute(
            "INSERT INTO ledger (ts, kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount) "
            "VALUES ($1, 'deposit', $2, $3, NULL, NULL, $4, 'available', $5)",
            now,
            ref,
            asset,
            user_id,
            atoms,
        )
    assert balance is not None
    return dict(balance)


async def deposit(conn: asyncpg.Connection, user_id: int, asset: str, atoms: int, ref: str, now: int) -> Change | None:
    """Credit ``atoms`` of ``asset`` to ``user_id`` once per external reference ``ref``. None: ``ref`` was
    credited before with the same deposit (a repeat; nothing changes). ``RefReused``: ``ref`` names another.
    Two concurrent calls with one ``ref`` are serialized by its row: the second finds the first's."""
    if atoms <= 0:
        raise ValueError(f"a deposit must be positive, got {atoms} atoms")
    async with conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO deposits (ref, user_id, asset, amount, created_at) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (ref) DO NOTHING RETURNING ref",
            ref,
            user_id,
            asset,
            atoms,
            now,
        )
        if fresh is None:
            before = await conn.fetchrow("SELECT user_id, asset, amount FROM deposits WHERE ref = $1", ref)
            if before is None or (before["user_id"], before["asset"], before["amount"]) != (user_id, asset, atoms):
                seen = "nothing" if before is None else (
                    f"{fmt_amount(before['amount'])} {before['asset']} to user {before['user_id']}"
                )  # fmt: skip
                raise RefReused(f"deposit reference {ref!r} already credited {seen}")
            return None
        balance = await credit(conn, user_id, asset, atoms, now, f"deposit:{ref}")
    return Change(user_id, asset, atoms, balance)


# --- withdrawals ---------------------------------------------------------------------------------------------
HOLD = "SELECT out_id, out_outcome, out_available, out_held FROM withdrawal_hold($1, $2, $3, $4, $5, $6, $7, $8)"
BY_ID = f"SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE withdraw_id = $1"  # noqa: S608 (constant columns)
BY_CLIENT_ID = f"SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = $1 AND withdraw_order_id = $2"  # noqa: S608


async def request_withdrawal(
    db: asyncpg.Pool | asyncpg.Connection,
    user_id: int,
    asset: str,
    atoms: int,
    address: str,
    network: str,
    client_id: str | None,
    now: int,
) -> tuple[Withdrawal, Change | None]:
    """Hold ``atoms`` of the user's free ``asset`` for a withdrawal (``withdrawal_hold``: the balance row
    locked, the hold, its ledger entry and the PENDING row, in one statement). A request repeating a
    ``client_id`` the user already used gets that withdrawal back and changes nothing (Change None)."""
    withdraw_id = secrets.token_hex(16)  # Binance's ids are 32 hex digits
    try:
        row = await db.fetchrow(HOLD, withdraw_id, user_id, asset, atoms, address, network, client_id, now)
    except asyncpg.UniqueViolationError:  # the same client id in a concurrent request, for another asset
        row = None
    if row is None or row["out_outcome"] == "EXISTS":
        existing = await db.fetchrow(BY_CLIENT_ID, user_id, client_id)
        if existing is None:
            raise FundsError(f"withdrawal {client_id!r} of user {user_id} could not be recorded")
        return Withdrawal.from_row(existing), None
    if row["out_outcome"] == "INSUFFICIENT":
        free = row["out_available"] or 0
        raise InsufficientBalance(f"withdrawing {fmt_amount(atoms)} {asset}: free balance is {fmt_amount(free)}")
    created = await db.fetchrow(BY_ID, row["out_id"])
    assert created is not None
    balance = {"user_id": user_id, "asset": asset, "available": row["out_available"], "held": row["out_held"]}
    return Withdrawal.from_row(created), Change(user_id, asset, -atoms, balance)


async def end_withdrawal(
    conn: asyncpg.Connection, withdraw_id: str, status: WithdrawalStatus, now: int, tx_id: str = "", info: str = ""
) -> tuple[Withdrawal, Change | None]:
    """Complete (the held amount leaves the exchange) or fail (it goes back to free) a PENDING withdrawal.
    Repeating the same decision changes nothing (Change None); the other decision on an ended one is refused."""
    if status is WithdrawalStatus.PENDING:
        raise ValueError("a withdrawal ends COMPLETED or FAILED")
    async with conn.transaction():
        row = await conn.fetchrow(BY_ID + " FOR UPDATE", withdraw_id)
        if row is None:
            raise NoSuchWithdrawal(f"no withdrawal {withdraw_id!r}")
        if row["status"] == status:
            return Withdrawal.from_row(row), None
        if row["status"] != WithdrawalStatus.PENDING:
            raise WithdrawalEnded(f"withdrawal {withdraw_id} is {row['status']} already; it cannot be {status}")
        user_id, asset, amount = row["user_id"], row["asset"], row["amount"]
        completed = status is WithdrawalStatus.COMPLETED
        balance = await conn.fetchrow(
            "UPDATE balances SET held = held - $3, available = available + $4, updated_at = $5 "
            "WHERE user_id = $1 AND asset = $2 RETURNING user_id, asset, available, held",
            user_id,
            asset,
            amount,
            0 if completed else amount,
            now,
        )
        if balance is None:
            raise FundsError(f"withdrawal {withdraw_id}: user {user_id} has no {asset} balance")
        await conn.execute(
            "INSERT INTO ledger (ts, kind, ref, asset, debit_user, debit_bucket, credit_user, credit_bucket, amount) "
            "VALUES ($1, $2, $3, $4, $5, 'held', $6, $7, $8)",
            now,
            "withdraw" if completed else "withdraw_release",
            f"withdraw:{withdraw_id}",
            asset,
            user_id,
            None if completed else user_id,
            None if completed else "available",
            amount,
        )
        ended = await conn.fetchrow(
            f"UPDATE withdrawals SET status = $2, tx_id = $3, info = $4, completed_at = $5 WHERE withdraw_id = $1 "  # noqa: S608
            f"RETURNING {WITHDRAWAL_COLUMNS}",
            withdraw_id,
            status.value,
            tx_id,
            info,
            now,
        )
    assert ended is not None
    return Withdrawal.from_row(ended), Change(user_id, asset, 0 if completed else amount, dict(balance))


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """``GET /sapi/v1/capital/withdraw/history``'s filters, bounded where they enter (the gateway's parsing)."""

    start_ms: int
    end_ms: int
    offset: int = 0
    limit: int = 1000
    asset: str | None = None
    client_id: str | None = None
    status: WithdrawalStatus | None = None


async def history(db: asyncpg.Pool | asyncpg.Connection, user_id: int, q: HistoryQuery) -> list[Withdrawal]:
    """The user's withdrawals, newest first, as Binance lists them."""
    rows = await db.fetch(
        f"SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = $1 AND created_at BETWEEN $2 AND $3 "  # noqa: S608
        "AND ($4::text IS NULL OR asset = $4) AND ($5::text IS NULL OR withdraw_order_id = $5) "
        "AND ($6::text IS NULL OR status = $6) ORDER BY created_at DESC, withdraw_id OFFSET $7 LIMIT $8",
        user_id,
        q.start_ms,
        q.end_ms,
        q.asset,
        q.client_id,
        None if q.status is None else q.status.value,
        q.offset,
        q.limit,
    )
    return [Withdrawal.from_row(r) for r in rows]


# --- the owner's user stream ---------------------------------------------------------------------------------
def user_events(change: Change, now: int) -> list[bytes]:
    """What the owner's stream hears of a change, as Binance sends it for deposits and withdrawals:
    ``balanceUpdate`` (the free balance's delta, which ccxt adds to ``free``) when free moved, then
    ``outboundAccountPosition`` with the balance after it."""
    events = [] if change.free_delta == 0 else [orjson.dumps(balance_update(change.asset, change.free_delta, now))]
    events += [orjson.dumps(e) for e in account_positions([change.balance], now).values()]
    return events


async def tell(cache: sredis.Client, channels: sredis.Channels, changes: Sequence[Change], now: int) -> None:
    """Publish each change on its owner's channel, in order, in one call."""
    told = sredis.Publications()
    for change in changes:
        told.add_all(channels.user(change.user_id), user_events(change, now))
    await told.send(cache)
