"""trade-archiver as a process on the real broker and Postgres: SIGKILLed mid-flush, restarted, every trade
is in the Parquet files exactly once; the same service against S3 and Kinesis (moto's server, a subprocess
on a free port) through boto3; and the archive protocol crashing at every write against that S3 endpoint.

The flow is published straight to ``trade-execution`` (the archiver's only input): twelve symbols over
three UTC days, so one flush writes dozens of files and a kill lands between them; re-published events
(the matcher's at-least-once) must be archived once. Most of it goes as the matcher publishes it, in
envelopes of several executions per record (one offset, several rows).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pyarrow.parquet as pq
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.trade_archiver.archive import committed_files
from services.trade_archiver.layout import (
    MANIFESTS,
    TRADES,
    data_span,
    intent_key,
    manifest_key,
    manifest_prefix,
    namespace,
)
from services.trade_archiver.manifest import decode_intent
from services.trade_archiver.sink import LocalStore, S3Store, Store
from shared import kafka, postgres, segment_store, segments
from shared import redis as sredis
from shared.config import SERVICE_PORTS, Settings
from shared.identity import source_partition
from shared.messages import Topic, TradeExecution, encode, envelopes
from spot import admin
from spot.fleet import Fleet
from tests.unit.trade_archiver.flows import (
    DAY_MS,
    MARKETS,
    T0,
    Crash,
    DyingStore,
    consume,
    execution,
    trade_log,
    trades_in,
    unique_trades,
)

NAME = "trade-archiver"
SYMBOLS = [f"A{i:02d}USDT" for i in range(12)]
DAYS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Flow:
    """Executions with per-symbol sequences and trade ids; ``again`` re-publishes earlier ones."""

    def __init__(self) -> None:
        self.seq = dict.fromkeys(SYMBOLS, 0)
        self.trade_id = dict.fromkeys(SYMBOLS, 0)
        self.published: list[TradeExecution] = []

    def new(self, n: int) -> list[TradeExecution]:
        out = []
        for i in range(n):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            self.seq[symbol] += 1
            ids = list(range(self.trade_id[symbol] + 1, self.trade_id[symbol] + 2 + i % 3))
            self.trade_id[symbol] = ids[-1]
            out.append(execution(symbol, self.seq[symbol], ids, T0 + (i // len(SYMBOLS) % DAYS) * DAY_MS))
        self.published += out
        return out

    def again(self, every: int) -> list[TradeExecution]:
        return self.published[::every]

    def expected(self) -> Counter[tuple[str, int]]:
        return unique_trades([[e] for e in self.published])


def _settings(env: dict[str, str]) -> Settings:
    old = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(old)


async def _prepare(settings: Settings) -> None:
    """Migrations, topics, the default markets, and twelve more so that a flush writes many files."""
    await admin.init(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        for symbol in SYMBOLS:
            await postgres.upsert_market(conn, replace(MARKETS["BTCUSDT"], symbol=symbol, base=symbol[:3]))
    finally:
        await conn.close()


async def _publish(settings: Settings, executions: list[TradeExecution], per_record: int = 1) -> None:
    """One record per execution, or as the matcher publishes: envelopes of up to ``per_record`` executions of
    one symbol, in the symbol's order."""
    async with kafka.producer(settings) as out:
        if per_record == 1:
            for e in executions:
                await out.send(Topic.TRADE_EXECUTION.value, encode(e), key=e.symbol)
        else:
            by_symbol: dict[str, list[bytes]] = {}
            for e in executions:
                by_symbol.setdefault(e.symbol, []).append(encode(e))
            for symbol, encoded in by_symbol.items():
                for i in range(0, len(encoded), per_record):
                    for value in envelopes(Topic.TRADE_EXECUTION, symbol, encoded[i : i + per_record], {}):
                        await out.send(Topic.TRADE_EXECUTION.value, value, key=symbol)
        await out.flush()


def _wait_archived(store: Store, expected: Counter[tuple[str, int]], fleet: Fleet, timeout: float = 60) -> None:
    """Until the committed files hold as many rows as the flow has trades (which ones: checked after)."""
    deadline, rows, counted = time.monotonic() + timeout, 0, {}
    while time.monotonic() < deadline:
        for key in committed_files(store):
            if key not in counted:  # a committed file never changes: count each once
                counted[key] = pq.ParquetFile(io.BytesIO(store.get(key) or b"")).metadata.num_rows
        rows = sum(counted.values())
        if rows >= sum(expected.values()):
            return
        assert fleet.procs[NAME].poll() is None, "\n".join(fleet.tails[NAME])
        time.sleep(0.3)
    raise AssertionError(f"{rows} of {sum(expected.values())} trades archived after {timeout}s")


def _metric(fleet: Fleet, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{fleet.port(NAME)}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _kill_mid_flush(fleet: Fleet, root: Path, timeout: float = 30) -> tuple[int, int]:
    """SIGKILL the archiver once a flush has written some, not all, of a range's files; (written, planned)."""
    pid = fleet.procs[NAME].pid
    deadline = time.monotonic() + timeout
    intents = [root / intent_key(p) for p in range(2)]
    while time.monotonic() < deadline:
        for path in intents:
            try:
                intent = decode_intent(path.read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            if any((root / f).exists() for f in intent.files):
                os.kill(pid, signal.SIGKILL)
                fleet.procs[NAME].wait(10)
                written = sum((root / f).exists() for f in intent.files)
                if path.exists() and not (root / manifest_key(intent.span)).exists() and written < len(intent.files):
                    return written, len(intent.files)
                return -1, len(intent.files)  # the flush finished between the look and the kill
        assert fleet.procs[NAME].poll() is None, "\n".join(fleet.tails[NAME])
    raise AssertionError("no flush in progress seen")


@pytest.fixture
def archiver_env(fresh_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **fresh_env,
        "ARCHIVE_DIR": str(tmp_path / "archive"),
        "ARCHIVE_FLUSH_MS": "200",
        "ARCHIVE_BATCH_MAX": "3000",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def fleet(archiver_env: dict[str, str]) -> Iterator[Fleet]:
    f = Fleet(archiver_env, port_offset=_free_port() - SERVICE_PORTS[NAME], log=None)
    try:
        yield f
    finally:
        f.stop()


def test_sigkill_mid_flush_then_restart_archives_every_trade_exactly_once(archiver_env, fleet):
    settings = _settings(archiver_env)
    asyncio.run(_prepare(settings))
    root = Path(archiver_env["ARCHIVE_DIR"]) / namespace(settings.topic_suffix)
    store = LocalStore(root)
    flow = Flow()

    asyncio.run(_publish(settings, flow.new(4000), per_record=5))  # a backlog: the first flushes are big
    for _attempt in range(3):
        fleet.start(NAME)
        fleet.wait_ready([NAME], 60)
        written, planned = _kill_mid_flush(fleet, root)
        if written >= 0:
            break
        asyncio.run(_publish(settings, flow.new(2000)))  # missed the window: more backlog, another try
    else:
        pytest.fail("three kills all landed between flushes")
    assert 0 < written < planned  # some files of the range on disk, no manifest: killed mid-flush

    fleet.start(NAME)
    fleet.wait_ready([NAME], 60)
    _wait_archived(store, flow.expected(), fleet)
    assert _metric(fleet, "spot_archive_redone_ranges_total") >= 1  # the killed range was cut again

    again = flow.again(every=7)
    asyncio.run(_publish(settings, again, per_record=3))  # re-published events, as envelopes ...
    asyncio.run(_publish(settings, flow.new(600)))  # ... then new ones, one record each
    _wait_archived(store, flow.expected(), fleet)
    assert _metric(fleet, "spot_archive_duplicates_total") == len(again)
    fleet.stop()

    expected = flow.expected()
    assert trades_in(store, committed_files(store)) == expected
    assert trades_in(store, store.list(TRADES)) == expected, "a data file outside every manifest was left"
    assert not [k for k in store.list(MANIFESTS) if k.endswith("intent.json")]
    assert {data_span(k).partition for k in store.list(TRADES)} == {0, 1}  # type: ignore[union-attr]

    answer = subprocess.run(
        [sys.executable, "-m", "spot.cli", "trades", "query", "--json", QUERY],
        env={**os.environ, **archiver_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [row] = json.loads(answer.stdout)
    assert row == {"trades": sum(expected.values()), "distinct_trades": len(expected), "symbols": len(SYMBOLS)}


# --- the segment ring (shared.segments) ------------------------------------------------------------------

SEGMENTS = 7  # slots re-created for segments 3 to 6: each slot holds three segments in turn
KILLED_AT = {3: "once the segment's first flush began", 5: "right after the seals"}


async def _switched(settings: Settings, epoch: int) -> bool:
    """Whether the archiver recorded its move to segment ``epoch`` on every partition."""
    async with sredis.client(settings) as cache:
        found = await segment_store.positions(cache, settings, [NAME], Topic.TRADE_EXECUTION.value)
    return all(found[NAME].get(p, -1) >= epoch for p in range(settings.kafka_partitions))


async def _write_segment(settings: Settings, epoch: int, executions: list[TradeExecution]) -> None:
    """As the matcher writes a segment: its executions, in envelopes, into the segment's slot."""
    async with kafka.producer(settings) as out:
        by_symbol: dict[str, list[bytes]] = {}
        for e in executions:
            by_symbol.setdefault(e.symbol, []).append(encode(e))
        for symbol, encoded in by_symbol.items():
            for i in range(0, len(encoded), 4):
                for value in envelopes(Topic.TRADE_EXECUTION, symbol, encoded[i : i + 4], {}):
                    await out.send(Topic.TRADE_EXECUTION.value, value, key=symbol, epoch=epoch)
        await out.flush()


async def _seal(settings: Settings, epoch: int) -> None:
    """What the keeper and the matcher do at a switch: the next segment's slot re-created when it held an
    older segment (the archiver left that one two switches ago), then segment ``epoch`` sealed everywhere."""
    nxt = epoch + 1
    if nxt >= segments.SLOTS:
        name = settings.topic(segments.slot_name(Topic.TRADE_EXECUTION.value, segments.slot_of(nxt)))
        client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await client.start()
        try:
            await client.delete_topics([name])
            await client.create_topics([NewTopic(name, settings.kafka_partitions, 1)])
        finally:
            await client.close()
    async with kafka.producer(settings) as out:
        for p in range(settings.kafka_partitions):
            await out.seal(Topic.TRADE_EXECUTION.value, p, epoch)


def _wait(check: Any, what: str, fleet: Fleet, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert fleet.procs[NAME].poll() is None, "\n".join(fleet.tails[NAME])
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_segments_every_trade_archived_once_across_switches_and_kills(archiver_env):
    """Seven segments of trade-execution (each slot re-created twice), each re-publishing some executions of
    the one before (skipped by the sequence high-water the next segment carries), the archiver SIGKILLed
    in two switches: every trade is in the archive once, segment 0 keeps today's names, every later segment
    has its own source partition, and the group reached the last segment."""
    env = {**archiver_env, "KAFKA_SEGMENT_S": "3"}
    settings = _settings(env)
    asyncio.run(_prepare(settings))
    root = Path(env["ARCHIVE_DIR"]) / namespace(settings.topic_suffix)
    store = LocalStore(root)
    flow = Flow()
    fleet = Fleet(env, port_offset=_free_port() - SERVICE_PORTS[NAME], log=None)
    try:
        fleet.start(NAME)
        fleet.wait_ready([NAME], 60)
        for epoch in range(SEGMENTS):
            again = flow.published[-60::6]  # the previous segment's, once more: already archived
            asyncio.run(_write_segment(settings, epoch, again + flow.new(300)))
            asyncio.run(_seal(settings, epoch))
            label = source_partition(epoch, 0)
            if KILLED_AT.get(epoch) == "once the segment's first flush began":  # its intent, or a manifest
                _wait(lambda at=label: bool(store.list(manifest_prefix(at))), f"no flush of segment {epoch}", fleet)
            if epoch in KILLED_AT:
                fleet.procs[NAME].send_signal(signal.SIGKILL)
                fleet.procs[NAME].wait(10)
                fleet.start(NAME)
                fleet.wait_ready([NAME], 60)
            _wait(lambda e=epoch: asyncio.run(_switched(settings, e + 1)), f"segment {epoch} never left", fleet)
        _wait_archived(store, flow.expected(), fleet)
    finally:
        fleet.stop()

    expected = flow.expected()
    assert trades_in(store, committed_files(store)) == expected
    assert trades_in(store, store.list(TRADES)) == expected, "a data file outside every manifest was left"
    assert not [k for k in store.list(MANIFESTS) if k.endswith("intent.json")]
    labels = {data_span(k).partition for k in store.list(TRADES)}  # type: ignore[union-attr]
    assert labels == {source_partition(e, p) for e in range(SEGMENTS) for p in range(settings.kafka_partitions)}
    assert {0, 1} <= labels  # segment 0: the Kafka partitions' own names, as with segments off


QUERY = (
    "SELECT count(*) AS trades, count(DISTINCT (symbol, trade_id)) AS distinct_trades, "
    "count(DISTINCT symbol) AS symbols FROM trades WHERE dt BETWEEN '2025-12-31' AND '2026-01-02'"
)


# --- S3 and Kinesis, on moto's server ------------------------------------------------------------------


# `python -m moto.server`, but answering one request at a time: moto's Kinesis numbers records without a
# lock ("not safe for concurrency"), so two PutRecords at once can lose one; real Kinesis has no such race.
MOTO_SERVER = """
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False,
           request_handler=MotoRequestHandler)
"""


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, str]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, str(port)],
        env={**os.environ, "MOTO_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",  # moto accepts any; real credentials are never needed or read
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/moto-api/", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        proc.wait(10)


def _client(moto: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto["AWS_ENDPOINT_URL"],
        region_name=moto["AWS_REGION"],
        aws_access_key_id=moto["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto["AWS_SECRET_ACCESS_KEY"],
    )


def _bucket(moto: dict[str, str]) -> str:
    name = f"spot-archive-{secrets.token_hex(4)}"
    _client(moto, "s3").create_bucket(Bucket=name)
    return name


def test_archive_protocol_crashing_at_every_write_on_s3(moto):
    """The unit property's scenario, on a real S3 API: listing, missing keys, overwrites, deletes."""
    s3 = S3Store(_client(moto, "s3"), _bucket(moto), "history/")
    log = trade_log([("new", i, i) for i in range(12)] + [("dup", 3, 0), ("poison", 0, 0)] + [("new", 5, 1)] * 6)
    store = DyingStore(s3)
    for life, budget in enumerate([2, 1, 4, 3, None]):
        store.revive(budget)
        try:
            asyncio.run(consume(store, log, [3, 5, 2][life % 3 :] or [4], flush_every=2))
        except Crash:
            assert max(trades_in(s3, s3.list(TRADES)).values(), default=1) == 1
    expected = unique_trades(log)
    assert trades_in(s3, s3.list(TRADES)) == expected
    assert trades_in(s3, committed_files(s3)) == expected
    assert all(k.startswith(("trades/", "manifests/")) for k in s3.list(""))


def test_service_archives_to_s3_and_puts_every_trade_to_kinesis(fresh_env, moto):
    bucket, stream = _bucket(moto), f"spot-trades-{secrets.token_hex(3)}"
    kinesis = _client(moto, "kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    env = {
        **fresh_env,
        **moto,
        "ARCHIVE_S3_BUCKET": bucket,
        "ARCHIVE_S3_PREFIX": "history",
        "KINESIS_STREAM": stream,
        "ARCHIVE_FLUSH_MS": "200",
    }
    settings = _settings(env)
    asyncio.run(_prepare(settings))
    flow = Flow()
    asyncio.run(_publish(settings, flow.new(300) + flow.again(every=10)))
    fleet = Fleet(env, port_offset=_free_port() - SERVICE_PORTS[NAME], log=None)
    try:
        fleet.start(NAME)
        fleet.wait_ready([NAME], 60)
        store = S3Store(_client(moto, "s3"), bucket, "history/" + namespace(settings.topic_suffix))
        _wait_archived(store, flow.expected(), fleet)
    finally:
        fleet.stop()
    assert trades_in(store, store.list(TRADES)) == flow.expected()
    assert store.get(intent_key(0)) is None and store.get(intent_key(1)) is None

    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    it, put = iterator["ShardIterator"], Counter[tuple[str, int]]()
    for _ in range(100):  # an empty page does not mean the end; caught up with nothing returned does
        answer = kinesis.get_records(ShardIterator=it, Limit=10_000)
        for record in answer["Records"]:
            trade = json.loads(record["Data"])
            put[(trade["symbol"], trade["tradeId"])] += 1
            assert record["PartitionKey"] == trade["symbol"] and isinstance(trade["price"], str)
        it = answer["NextShardIterator"]
        if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
            break
    assert put == flow.expected()  # no crash here, so at-least-once delivered exactly once
