"""What the matcher checks before it serves: that its books in Redis are not behind what settlement applied."""

from __future__ import annotations

import asyncpg

from shared import identity


async def settled_sequences(db: asyncpg.Pool) -> dict[str, int]:
    rows = await db.fetch("SELECT symbol, seq FROM settlement_cursor")
    return {r["symbol"]: r["seq"] for r in rows}


def refuse_lost_writes(books: dict[str, int], settled: dict[str, int]) -> None:
    """A book behind what settlement applied lost writes (a Redis failover, a restored snapshot): matching on
    it would give the next seq to a second, different event. Refused, never served."""
    behind = [f"{s} at seq {seq} (settled {settled[s]})" for s, seq in books.items() if seq < settled.get(s, 0)]
    if behind:
        raise identity.ForeignState(
            f"redis books are behind what settlement committed: {', '.join(behind)}; redis lost writes, so its "
            "books belong to an earlier moment: restore it, or run `make clean` to start empty"
        )
