"""The Redis client parses replies and packs commands in C (hiredis): the gateway's pub/sub fan-out and
market-data's pipelines read a reply per message, and redis-py's pure-Python parser took 2.3x the CPU per
message; its asyncio packer 6x hiredis' per command. The bytes sent are redis-py's."""

from __future__ import annotations

import pytest
import redis.asyncio.connection as connection
from redis.exceptions import DataError
from redis.utils import HIREDIS_AVAILABLE

from shared.redis import _connection_options, _TcpConnection


def test_redis_replies_are_parsed_by_hiredis() -> None:
    assert HIREDIS_AVAILABLE
    assert connection.DefaultParser is connection._AsyncHiredisParser


COMMANDS = [
    ("EVALSHA", "a" * 40, 2, "{u:12}:k:key", "coid:{u:12}:x", 1, 1, 86400, b"\x00\xff msgpack"),
    ("HSET", "hot:BTCUSDT", "7", b"row", "8", b"other"),
    ("SCRIPT LOAD", "return 1"),  # two words: sent as two arguments
    (b"CONFIG GET", b"maxmemory"),
    ("SET", "ünïcode", -(10**20)),
    ("ZADD", "k", 1.5, "m"),  # a float: redis-py's own packing
    ("PUBLISH", "ch", memoryview(b"payload")),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_commands_are_packed_as_redis_py_packs_them(command: tuple[object, ...]) -> None:
    ours, theirs = _TcpConnection(), connection.Connection()
    assert b"".join(ours.pack_command(*command)) == b"".join(bytes(x) for x in theirs.pack_command(*command))


def test_what_hiredis_refuses_gets_redis_py_error() -> None:
    with pytest.raises(DataError):
        _TcpConnection().pack_command("SET", "k", None)


def test_tls_and_tcp_urls_get_the_packer_and_keep_their_transport() -> None:
    assert _connection_options("redis://h:6379/0")["connection_class"] is _TcpConnection
    assert issubclass(_connection_options("rediss://h:6379/0")["connection_class"], connection.SSLConnection)
    assert _connection_options("redis://h:6379/0")["socket_keepalive"] is True  # a silent peer is found
    assert _connection_options("unix:///tmp/redis.sock") == {}
