"""Operator commands: create users with API keys, deposit, show balances, initialise a database, show and
resolve settlement halts; list, show and replay dead letters. Reconciling the books is ``reconcile.py``.

Every balance change goes through ``services.settlement.accounts.deposit``: a ledger row and a balance
update in one transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from services.settlement.accounts import deposit
from shared import apikeys, dbsecret, deadletter, envelope, identity, kafka, postgres
from shared.config import Settings
from shared.domain import decimal_to_atoms, fmt_amount
from shared.lifecycle import now_ms

from . import keys

DEFAULT_PERMISSIONS = apikeys.PERMISSIONS  # a user's first key can do everything; restrict with `spot admin key`


@dataclass(frozen=True)
class NewUser:
    user_id: int
    api_key: str
    secret: str

    def as_json(self) -> dict[str, object]:
        return {"userId": self.user_id, "apiKey": self.api_key, "secret": self.secret}


def parse_deposit(text: str) -> tuple[str, int]:
    """``BTC=1.5`` -> ("BTC", atoms)."""
    asset, _, amount = text.partition("=")
    if not asset or not amount:
        raise ValueError(f"expected ASSET=AMOUNT, got {text!r}")
    return asset.strip().upper(), decimal_to_atoms(Decimal(amount.strip()))


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
        for asset, atoms in deposits:
            await deposit(conn, user_id, asset, atoms, now, f"admin:{user_id}")
        assert key.secret is not None  # an HMAC key
        return NewUser(user_id, key.api_key, key.secret)
    finally:
        await conn.close()


async def credit(settings: Settings, user_id: int, deposits: list[tuple[str, int]]) -> None:
    conn = await dbsecret.connect(settings)
    try:
        for asset, atoms in deposits:
            await deposit(conn, user_id, asset, atoms, now_ms(), f"admin:{user_id}")
    finally:
        await conn.close()


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
    after the data was fixed; a record that still fails stops the symbol again) or ``skip`` (settlement moves
    past that one record without applying it). The settlement replicas notice within a second."""
    if resolution not in ("retry", "skip"):
        raise ValueError(f"resolution must be retry or skip, not {resolution!r}")
    conn = await dbsecret.connect(settings)
    try:
        row = await conn.fetchrow(
            RESOLVE,
            symbol.upper(),
            resolution,
            now_ms(),
        )
        if row is None:
            raise NotHalted(f"settlement of {symbol.upper()} is not halted")
        return _halt_json(row)
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
