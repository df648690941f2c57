"""Money invariants, asserted after every scenario (and every crash scenario).

The invariants themselves are ``shared/invariants.py`` (conservation, balances = ledger, no negative balance,
holds = what open orders and pending withdrawals hold, withdrawals held and ended once, open-order counts),
which ``spot admin audit`` reports too; here every difference fails the test.
"""

from __future__ import annotations

import asyncpg

from shared.invariants import REMAINING_NEED, money_report

__all__ = ["REMAINING_NEED", "check_money", "check_money_at"]


async def check_money_at(database_url: str) -> dict[str, int]:
    """``check_money`` on a connection of its own, for a scenario that holds none."""
    db = await asyncpg.connect(database_url)
    try:
        return await check_money(db)
    finally:
        await db.close()


async def check_money(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    """Assert every invariant; returns the per-asset totals."""
    report = await money_report(db)
    assert report.ok, "\n".join(report.differences)
    return report.totals
