"""The fleet's two epochs: segments raise the highest epoch used while the broker's log keeps the one it
began at (what the identity check compares); a reseed begins the new log past every epoch ever used."""

from __future__ import annotations

import asyncio

import asyncpg

from shared import identity
from shared.config import Settings

from .markets_db import markets_db


async def _flow(settings: Settings) -> None:
    async with markets_db(settings.database_url):
        made, created = await identity.establish(settings, now_ms=1)
        assert created and made.epoch == 0
        conn = await asyncpg.connect(settings.database_url)
        try:
            for e in (3, 5, 4):  # segments started; never lowered
                await identity.raise_epoch(conn, e)
            assert await identity.highest_epoch(conn) == 5
            assert await identity.stored(conn) == made  # the log still began at 0: the broker's stamp agrees
            assert (await identity.in_broker(settings))[-1] == made
            before, after = await identity.reseed_positions(settings)
            assert (before.epoch, after.epoch) == (0, 6)  # past segment 5, not only past the old base
            assert await identity.stored(conn) == after
            assert await identity.highest_epoch(conn) == 6
            assert (await identity.in_broker(settings))[-1] == after
        finally:
            await conn.close()


def test_reseed_goes_past_every_segment(fresh_env: dict[str, str]) -> None:
    asyncio.run(_flow(Settings(**{k.lower(): v for k, v in fresh_env.items()})))  # type: ignore[arg-type]
