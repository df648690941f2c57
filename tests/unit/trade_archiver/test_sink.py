"""The local store publishes a file only whole, lists no temp file, keeps keys inside its root; Kinesis
batches respect the PutRecords limits. (S3 and Kinesis themselves: tests/integration, against moto.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.trade_archiver.sink import KINESIS_BATCH, KINESIS_BATCH_BYTES, LocalStore, _chunks


def test_local_put_get_list_delete(tmp_path: Path):
    store = LocalStore(tmp_path / "archive")
    store.put("trades/dt=2026-01-01/symbol=BTCUSDT/p0-1-2.parquet", b"a")
    store.put("manifests/p0/1-2.json", b"m")
    store.put("manifests/p0/1-2.json", b"m2")  # an overwrite replaces, atomically
    (tmp_path / "archive" / "manifests" / "p0" / ".3-4.json.123.tmp").write_bytes(b"half")  # a killed put
    assert store.list("manifests/") == ["manifests/p0/1-2.json"]
    assert store.list("trades/") == ["trades/dt=2026-01-01/symbol=BTCUSDT/p0-1-2.parquet"]
    assert store.list("nothing/") == []
    assert store.get("manifests/p0/1-2.json") == b"m2"
    assert store.get("manifests/p0/9-9.json") is None
    store.delete("manifests/p0/1-2.json")
    store.delete("manifests/p0/1-2.json")
    assert store.list("manifests/") == []


def test_a_key_cannot_leave_the_root(tmp_path: Path):
    with pytest.raises(ValueError, match="leaves"):
        LocalStore(tmp_path / "archive").put("../outside", b"x")


def test_kinesis_batches_stay_within_500_records_and_5_mib():
    small = [{"Data": b"x" * 100, "PartitionKey": "BTCUSDT"} for _ in range(1200)]
    assert [len(c) for c in _chunks(small)] == [KINESIS_BATCH, KINESIS_BATCH, 200]
    big = [{"Data": b"x" * (1 << 20), "PartitionKey": "BTCUSDT"} for _ in range(12)]
    chunks = list(_chunks(big))
    assert sum(len(c) for c in chunks) == 12
    assert all(sum(len(r["Data"]) + len(r["PartitionKey"]) for r in c) <= KINESIS_BATCH_BYTES for c in chunks)
    assert list(_chunks([])) == []
