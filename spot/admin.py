"""Operator commands: create users with API keys, deposit, withdraw, show balances, initialise a database, show
and resolve settlement halts; list, show and replay dead letters. Reconciling the books is ``reconcile.py``,
auditing them ``audit.py``.

Every balance change goes through ``shared.funds``: a ledger row and a balance update in one transaction. A
deposit is credited once per external reference; a withdrawal holds its amount until it is completed or failed.
Each change is told on the owner's user stream (``balanceUpdate``, ``outboundAccountPosition``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import asyncpg

from shared import apikeys, dbsecret, deadletter, envelope, funds, identity, kafka, postgres
from shared import redis as sredis
from shared.config import Settings
from shared.domain import INT64_MAX, decimal_to_atoms, fmt_amount
from shared.lifecycle import now_ms

from . import keys

DEFAULT_PERMISSIONS = apikeys.DEFAULT_PERMISSIONS  # a user's first key trades and reads; `spot admin key` changes it


@dataclass(frozen=True)
class NewUser:
    user_id: int
    api_key: str
    secret: str

    def as_json(self) -> dict[str, object]:
        return {"userId": self.user_id, "apiKey": self.api_key, "secret": self.secret}


ASSET = re.compile(r"[A-Z0-9]{1,20}")
REF = re.compile(r"[\x21-\x7e]{1,200}")  # an external reference: printable ASCII, no spaces


def parse_asset(text: str) -> str:
    asset = text.strip().upper()
    if not ASSET.fullmatch(asset):
        raise ValueError(f"an asset is 1-20 letters or digits, got {text!r}")
    return asset


def parse_atoms(text: str, what: str = "amount") -> int:
    """A positive amount with at most 8 decimals, in atoms that the ledger's BIGINT holds."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {text!r}")
    atoms = decimal_to_atoms(value)  # ValueError past 8 decimals
    if atoms > INT64_MAX:
        raise ValueError(f"{what} {text} is past the largest amount, {fmt_amount(INT64_MAX)}")
    return atoms


def parse_deposit(text: str) -> tuple[str, int]:
    """``BTC=1.5`` -> ("BTC", atoms)."""
    asset, _, amount = text.partition("=")
    if not asset or not amount:
        raise ValueError(f"expected ASSET=AMOUNT, got {text!r}")
    return parse_asset(asset), parse_atoms(amount, f"deposit of {asset.strip()}")


async def create_user(
    settings: Settings, name: str, deposits: list[tuple[str, int]], permissions: tuple[str, ...] = DEFAULT_PERMISSIONS
) -> NewUser:
    conn = await dbsecret.connect(settings)
    try:
        now = now_ms()
        async with conn.transaction():
            user_id = await conn.fetchval(
                "INSERT INTO users (name, created_at) VALUES ($1, $2) RETURNING user_id", name, now
            )
            key = await keys.insert(conn, envelope.from_settings(settings), user_id, list(permissions))
        for asset, atoms in deposits:  # one reference per user and asset: a user's opening deposit
            await funds.deposit(conn, user_id, asset, atoms, f"create-user:{user_id}:{asset}", now)
        assert key.secret is not None  # an HMAC key
        return NewUser(user_id, key.api_key, key.secret)
    finally:
        await conn.close()


async def _tell(settings: Settings, changes: list[funds.Change]) -> None:
    """The owners' streams hear of committed changes (a Redis that does not answer delays this, never the money)."""
    if changes:
        async with sredis.client(settings) as cache:
            await funds.tell(cache, sredis.Channels(settings.topic_suffix), changes, now_ms())


async def credit(
    settings: Settings, user_id: int, deposits: list[tuple[str, int]], ref: str | None = None
) -> list[dict[str, object]]:
    """Deposit each (asset, atoms) to ``user_id``, once per external reference ``ref`` (a repeat credits
    nothing). Without ``ref`` each call is a new deposit. Raises ``funds.FundsError`` for an unknown user or a
    reference already used for another deposit."""
    if ref is not None and len(deposits) != 1:
        raise ValueError("a reference names one deposit: give exactly one --deposit with --ref")
    if ref is not None and not REF.fullmatch(ref):
        raise ValueError(f"a reference is 1-200 printable ASCII characters without spaces, got {ref!r}")
    conn = await dbsecret.connect(settings)
    done: list[dict[str, object]] = []
    changes: list[funds.Change] = []
    try:
        for asset, atoms in deposits:
            this_ref = ref if ref is not None else f"admin:{secrets.token_hex(12)}"
            try:
                change = await funds.deposit(conn, user_id, asset, atoms, this_ref, now_ms())
            except asyncpg.ForeignKeyViolationError:
                raise funds.FundsError(f"no user {user_id}") from None
            done.append({"asset": asset, "amount": fmt_amount(atoms), "ref": this_ref, "credited": change is not None})
            if change is not None:
                changes.append(change)
    finally:
        await conn.close()
    await _tell(settings, changes)
    return done


def _withdrawal_json(w: funds.Withdrawal) -> dict[str, object]:
    return {"userId": w.user_id, **w.as_binance(), "state": w.status.value}


async def withdraw_request(
    settings: Settings, user_id: int, asset: str, atoms: int, address: str, network: str | None, client_id: str | None
) -> dict[str, object]:
    """Hold ``atoms`` of the user's free ``asset`` for a withdrawal, as ``POST /sapi/v1/capital/withdraw/apply``
    does for the user."""
    for name, text in (("address", address), ("network", network), ("id", client_id)):
        if text is not None and not REF.fullmatch(text):
            raise ValueError(f"{name} is 1-200 printable ASCII characters without spaces, got {text!r}")
    conn = await dbsecret.connect(settings)
    try:
        withdrawal, change = await funds.request_withdrawal(
            conn, user_id, asset, atoms, address, network or asset, client_id, now_ms()
        )
    finally:
        await conn.close()
    await _tell(settings, [change] if change else [])
    return _withdrawal_json(withdrawal)


async def withdraw_end(
    settings: Settings, withdraw_id: str, status: funds.WithdrawalStatus, tx_id: str = "", info: str = ""
) -> dict[str, object]:
    """Complete (the held amount leaves) or fail (it returns to free) a pending withdrawal; the same decision
    repeated changes nothing."""
    conn = await dbsecret.connect(settings)
    try:
        withdrawal, change = await funds.end_withdrawal(conn, withdraw_id, status, now_ms(), tx_id, info)
    finally:
        await conn.close()
    await _tell(settings, [change] if change else [])
    return _withdrawal_json(withdrawal)


async def withdrawals(settings: Settings, user_id: int | None, pending_only: bool) -> list[dict[str, object]]:
    conn = await dbsecret.connect(settings)
    try:
        rows = await conn.fetch(
            f"SELECT {funds.WITHDRAWAL_COLUMNS} FROM withdrawals WHERE ($1::bigint IS NULL OR user_id = $1) "  # noqa: S608
            "AND (NOT $2 OR status = 'PENDING') ORDER BY created_at, withdraw_id",
            user_id,
            pending_only,
        )
    finally:
        await conn.close()
    return [_withdrawal_json(funds.Withdrawal.from_row(r)) for r in rows]


async def balances(settings: Settings, user_id: int | None) -> list[dict[str, object]]:
    conn = await dbsecret.connect(settings)
    try:
        rows = await conn.fetch(
            "SELECT user_id, asset, available, held FROM balances "
            "WHERE $1::bigint IS NULL OR user_id = $1 ORDER BY user_id, asset",
            user_id,
        )
        return [
            {
                "userId": r["user_id"],
                "asset": r["asset"],
                "free": fmt_amount(r["available"]),
                "locked": fmt_amount(r["held"]),
            }
            for r in rows
        ]
    finally:
        await conn.close()


async def init(settings: Settings) -> list[str]:
    """Migrations, topics, markets and, on an empty database, the fleet's identity (``shared.identity``):
    everything a fresh environment needs before the services start."""
    await asyncio.to_thread(postgres.migrate, await dbsecret.url(settings))
    created = await kafka.create_topics(settings)
    conn = await dbsecret.connect(settings)
    try:
        for market in postgres.DEFAULT_MARKETS:
            await postgres.upsert_market(conn, market)
    finally:
        await conn.close()
    await identity.establish(settings, now_ms())
    return created


async def continue_after_drain(settings: Settings, marker: str) -> dict[str, object] | None:
    """``reseed_positions`` when the broker's log is new and the fleet named by ``marker`` ("<fleet> <epoch>",
    written by a stop that drained every topic) is this one at that epoch: nothing was left on the old log.
    None (and nothing done) otherwise: the services then refuse, and the operator decides."""
    fleet, _, epoch = marker.strip().partition(" ")
    conn = await dbsecret.connect(settings)
    try:
        now = await identity.stored(conn)
    finally:
        await conn.close()
    if now is None or (now.fleet_id, str(now.epoch)) != (fleet, epoch) or await identity.in_broker(settings):
        return None
    return await reseed_positions(settings)


async def continue_after_crash(settings: Settings) -> dict[str, object] | None:
    """``reseed_positions`` when the broker's log is new (the local broker, which keeps it in memory, was killed
    with the fleet) and Redis is this fleet's, as Postgres says: what the lost log held that the fleet needs is
    kept there and in Postgres until it is applied (orders acknowledged but not decided, ``shared.pending``;
    accepted orders the matcher never read, ``shared.reconcile``; fills settlement had not applied, the
    matcher's outbox). None (and nothing done) otherwise: the services then refuse, and the operator decides."""
    conn = await dbsecret.connect(settings)
    try:
        now = await identity.stored(conn)
    finally:
        await conn.close()
    if now is None or await identity.in_broker(settings):
        return None
    cache = sredis.connect(settings)
    try:
        if await identity.in_redis(cache) != now.fleet_id:
            return None
    finally:
        await cache.aclose()
    return await reseed_positions(settings)


async def reseed_positions(settings: Settings) -> dict[str, object]:
    """Continue on a new broker log (a reset broker, a new MSK cluster): its topics are created, and the log
    epoch goes up so that every position on it ranks after the old log's (``shared.identity``)."""
    created = await kafka.create_topics(settings)
    before, after = await identity.reseed_positions(settings)
    return {"fleet": after.fleet_id, "epochBefore": before.epoch, "epoch": after.epoch, "topicsCreated": created}


HALT_COLUMNS = (
    "symbol, seq, topic, src_partition, src_offset, src_index, kind, reason, record, halted_at, resolution, "
    "resolved_at, src_epoch"
)

RESOLVE = (
    "UPDATE settlement_halts SET resolution = $2, resolved_at = $3 WHERE symbol = $1 AND resolution IS NULL "  # noqa: S608
    f"RETURNING {HALT_COLUMNS}"
)


ACCEPT_GAP = "accept-gap"  # recorded as a retry, with the cursor moved past the missing events
SEQUENCE_GAP = "SequenceGap"  # the halt kind of settlement's SequenceGap (services.settlement.accounts)
MOVE_CURSOR = """
INSERT INTO settlement_cursor (symbol, seq) VALUES ($1, $2)
ON CONFLICT (symbol) DO UPDATE SET seq = GREATEST(settlement_cursor.seq, EXCLUDED.seq)
"""


class NotAGap(Exception):
    """``accept-gap`` asked of a halt that is not at a sequence gap."""


def _halt_json(r: asyncpg.Record) -> dict[str, object]:
    return {
        "symbol": r["symbol"],
        "seq": r["seq"],
        "record": {"topic": r["topic"], "partition": r["src_partition"], "offset": r["src_offset"],
                   "index": r["src_index"], "epoch": r["src_epoch"], "value": r["record"]},
        "reason": f"{r['kind']}: {r['reason']}",
        "haltedAt": r["halted_at"],
        "resolution": r["resolution"],
        "resolvedAt": r["resolved_at"],
    }  # fmt: skip


async def settlement_halted(settings: Settings) -> list[dict[str, object]]:
    """The symbols whose settlement is stopped at a record it cannot apply, with the record and the reason."""
    conn = await dbsecret.connect(settings)
    try:
        rows = await conn.fetch(
            f"SELECT {HALT_COLUMNS} FROM settlement_halts WHERE resolution IS NULL ORDER BY symbol"  # noqa: S608
        )
        return [_halt_json(r) for r in rows]
    finally:
        await conn.close()


class NotHalted(LookupError):
    """``resolve`` named a symbol whose settlement is not stopped."""


async def settlement_resolve(settings: Settings, symbol: str, resolution: str) -> dict[str, object]:
    """Record the operator's decision on ``symbol``'s halt: ``retry`` (settlement applies the record again, e.g.
    after the data was fixed; a record that still fails stops the symbol again), ``skip`` (settlement moves
    past that one record without applying it; the symbol's next event follows on from it) or ``accept-gap``,
    for a halt at a sequence gap only: the events before the halted one are given up (the cursor moves to just
    before it) and it is applied. The settlement replicas notice within a second."""
    if resolution not in ("retry", "skip", ACCEPT_GAP):
        raise ValueError(f"resolution must be retry, skip or {ACCEPT_GAP}, not {resolution!r}")
    conn = await dbsecret.connect(settings)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(RESOLVE, symbol.upper(), "retry" if resolution == ACCEPT_GAP else resolution,
                                      now_ms())  # fmt: skip
            if row is None:
                raise NotHalted(f"settlement of {symbol.upper()} is not halted")
            if resolution == ACCEPT_GAP and row["kind"] != SEQUENCE_GAP:
                raise NotAGap(f"settlement of {row['symbol']} is halted by {row['kind']}, not by a sequence gap")
            if resolution == ACCEPT_GAP:  # the cursor is settlement's "done up to": just before the halted event
                await conn.execute(MOVE_CURSOR, row["symbol"], row["seq"] - 1)
        return {**_halt_json(row), "resolution": resolution}
    finally:
        await conn.close()


def _letter_json(letter: deadletter.DeadLetter) -> dict[str, object]:
    source = letter.source
    return {
        "topic": letter.topic,
        "offset": letter.offset,
        "key": letter.key,
        "reason": letter.header(deadletter.REASON),
        "source": None if source is None else {"topic": source[0], "partition": source[1], "offset": source[2]},
        "sourceIndex": int(letter.header(deadletter.INDEX) or 0),
        "consumer": letter.header(deadletter.CONSUMER),
        "timestamp": letter.timestamp,
        "headers": {k: v.decode(errors="replace") for k, v in letter.own_headers},
        "value": letter.value.decode(errors="replace"),
    }


async def dlq_list(settings: Settings) -> list[dict[str, object]]:
    """Per dead-letter topic: how many records, and the first and last offsets (None when empty)."""
    out: list[dict[str, object]] = []
    for name in deadletter.DLQ_TOPICS:
        letters = await deadletter.read(settings, name)
        out.append(
            {
                "topic": name,
                "count": len(letters),
                "firstOffset": letters[0].offset if letters else None,
                "lastOffset": letters[-1].offset if letters else None,
            }
        )
    return out


async def dlq_show(settings: Settings, topic: str, offset: int | None = None) -> list[dict[str, object]]:
    """The records of a dead-letter topic (or the one at ``offset``): each with its reason and source."""
    return [_letter_json(letter) for letter in await deadletter.read(settings, topic, offset)]


async def dlq_replay(settings: Settings, topic: str, offset: int) -> dict[str, object]:
    """Produce the dead letter at ``offset`` back to its source topic, once an operator fixed its cause."""
    letters = await deadletter.read(settings, topic, offset)
    if not letters:
        raise LookupError(f"{topic} has no record at offset {offset}")
    target, partition, landed = await deadletter.replay(settings, letters[0])
    return {"replayed": _letter_json(letters[0]), "to": {"topic": target, "partition": partition, "offset": landed}}
