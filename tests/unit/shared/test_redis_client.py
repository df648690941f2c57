"""The Redis client parses replies in C (hiredis): the gateway's pub/sub fan-out and market-data's
pipelines read a reply per message, and redis-py's pure-Python parser took 2.3x the CPU per message."""

from __future__ import annotations

import redis.asyncio.connection as connection
from redis.utils import HIREDIS_AVAILABLE


def test_redis_replies_are_parsed_by_hiredis() -> None:
    assert HIREDIS_AVAILABLE
    assert connection.DefaultParser is connection._AsyncHiredisParser
