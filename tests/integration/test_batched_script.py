"""``shared.redis`` batching on a real Redis.

``BatchedScript``: concurrent calls share one pipeline, each gets its own answer (or its own error), and a
script the server lost (``SCRIPT FLUSH``, as after a restart) is reloaded. ``Publications``: a batch's
messages go out as one command, in order, alone or inside a MULTI.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.redis import BatchedScript, Publications

ADD = """
if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative') end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


async def _batched(redis_url: str) -> None:
    cache = aioredis.from_url(redis_url)
    try:
        await cache.delete("bs:a", "bs:b")
        add = BatchedScript(cache, ADD)
        await cache.script_flush()  # unknown to the server: the first pipeline gets NOSCRIPT and reloads it
        before = (await cache.info("stats"))["total_reads_processed"]
        calls = [add(["bs:a" if i % 2 else "bs:b"], [1]) for i in range(50)] + [add(["bs:a"], [-1])]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert sorted(r for r in results[:50] if isinstance(r, int)) == sorted([*range(1, 26), *range(1, 26)])
        assert isinstance(results[50], ResponseError) and "negative" in str(results[50])
        assert (await cache.get("bs:a"), await cache.get("bs:b")) == (b"25", b"25")
        reads = (await cache.info("stats"))["total_reads_processed"] - before
        # the server read the 51 calls a few times (the pipeline, SCRIPT LOAD, the pipeline again, GETs, INFO),
        # not once per call: they were one pipeline
        assert reads <= 12, reads
        with pytest.raises(ResponseError):
            await add(["bs:a"], [-5])  # a lone call: its own pipeline
        assert await add(["bs:a"], [5]) == 30
    finally:
        await cache.aclose()


def test_concurrent_calls_share_a_pipeline_and_survive_a_script_flush(fresh_env: dict[str, str]) -> None:
    asyncio.run(_batched(fresh_env["REDIS_URL"]))


async def _published(redis_url: str) -> None:
    cache, listener = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        sub = listener.pubsub()
        await sub.subscribe("pub:a", "pub:b")
        for _ in range(2):
            await sub.get_message(timeout=1)  # the subscribe confirmations
        lone, in_multi = Publications(), Publications()
        for i in range(3):
            lone.add("pub:a" if i % 2 == 0 else "pub:b", b"lone-%d" % i)
        in_multi.add("pub:b", b"multi-0")
        await lone.send(cache)
        pipe = cache.pipeline(transaction=True)
        pipe.set("pub:state", 1)
        in_multi.queue(pipe)
        Publications().queue(pipe)  # nothing to say: no command
        assert len(await pipe.execute()) == 2
        got = []
        while len(got) < 4:
            msg = await sub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert msg is not None, got
            got.append((msg["channel"], msg["data"]))
        assert got == [(b"pub:a", b"lone-0"), (b"pub:b", b"lone-1"), (b"pub:a", b"lone-2"), (b"pub:b", b"multi-0")]
        await sub.aclose()
    finally:
        await cache.aclose()
        await listener.aclose()


def test_publications_go_out_in_order_as_one_command_alone_or_in_a_multi(fresh_env: dict[str, str]) -> None:
    asyncio.run(_published(fresh_env["REDIS_URL"]))
