"""Fee tiers (``spot admin fees``, ``spot admin user set-tier``): maker and taker rates for groups of users.

A user in a tier pays its rates on every market instead of the market's own. The order processor reads the
tier when it accepts an order and stamps the rates on it (``AcceptedOrder.maker_bps`` / ``taker_bps``), so the
matcher charges them in sequence and a replay charges the same: a change reaches orders accepted after it,
while the orders already open keep the rates they were accepted with.
"""

from __future__ import annotations

from shared import dbsecret
from shared.config import Settings

MAX_BPS = 1000  # 10%: fee_tiers' CHECK, as far as any market's fee goes


class FeeTierError(ValueError):
    """A tier or user that does not exist, or a rate out of bounds: the operator's mistake, said plainly."""


def _check(name: str, bps: int) -> None:
    if not 0 <= bps <= MAX_BPS:
        raise FeeTierError(f"--{name} must be 0..{MAX_BPS} basis points, got {bps}")


async def set_tier(settings: Settings, tier: str, maker_bps: int, taker_bps: int) -> dict[str, object]:
    """Create or change a tier; its users' next orders take the new rates."""
    if not tier or len(tier) > 64:
        raise FeeTierError("a tier name is 1 to 64 characters")
    _check("maker", maker_bps)
    _check("taker", taker_bps)
    conn = await dbsecret.connect(settings)
    try:
        await conn.execute(
            "INSERT INTO fee_tiers (tier, maker_fee_bps, taker_fee_bps) VALUES ($1, $2, $3) "
            "ON CONFLICT (tier) DO UPDATE SET maker_fee_bps = excluded.maker_fee_bps, "
            "taker_fee_bps = excluded.taker_fee_bps",
            tier,
            maker_bps,
            taker_bps,
        )
    finally:
        await conn.close()
    return {"tier": tier, "makerBps": maker_bps, "takerBps": taker_bps}


async def tiers(settings: Settings) -> list[dict[str, object]]:
    """Every tier with its rates and how many users it holds."""
    conn = await dbsecret.connect(settings)
    try:
        rows = await conn.fetch(
            "SELECT f.tier, f.maker_fee_bps, f.taker_fee_bps, count(u.user_id) AS users FROM fee_tiers f "
            "LEFT JOIN users u ON u.fee_tier = f.tier GROUP BY f.tier ORDER BY f.tier"
        )
    finally:
        await conn.close()
    return [
        {"tier": r["tier"], "makerBps": r["maker_fee_bps"], "takerBps": r["taker_fee_bps"], "users": r["users"]}
        for r in rows
    ]


async def set_user_tier(settings: Settings, user_id: int, tier: str | None) -> dict[str, object]:
    """Put a user in a tier (None: back to the markets' rates)."""
    conn = await dbsecret.connect(settings)
    try:
        async with conn.transaction():
            if tier is not None and not await conn.fetchval("SELECT 1 FROM fee_tiers WHERE tier = $1", tier):
                raise FeeTierError(f"no fee tier {tier!r} (spot admin fees set-tier {tier} --maker .. --taker ..)")
            done = await conn.execute("UPDATE users SET fee_tier = $2 WHERE user_id = $1", user_id, tier)
            if done != "UPDATE 1":
                raise FeeTierError(f"no user {user_id}")
    finally:
        await conn.close()
    return {"userId": user_id, "tier": tier}
