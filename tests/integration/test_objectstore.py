"""``spot.objectstore`` over real HTTP, driven by boto3 as any S3 client would drive it.

What the durable broker relies on: conditional writes (a create that finds the object, an update with a stale
ETag: 412), conditional reads (304), listings in key order across pages, bulk deletes, and objects that are
still there after the store is killed and started again.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from spot import infra
from tests.faults import free_port

BUCKET = infra.BUCKET


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.infra: infra.Infra | None = None

    def start(self) -> Any:
        self.infra = infra.Infra()
        url = infra.start_object_store(self.infra, self.root, self.port)
        return boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # the store checks no signature
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def kill(self) -> None:
        assert self.infra is not None
        proc = self.infra.children[0].proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.infra = None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "objects")
    try:
        yield s
    finally:
        if s.infra is not None:
            s.infra.stop()


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_conditional_writes(store: Store) -> None:
    s3 = store.start()
    first = s3.put_object(Bucket=BUCKET, Key="w/watermark.json", Body=b'{"high":1}', IfNoneMatch="*")["ETag"]
    assert first == '"' + hashlib.md5(b'{"high":1}').hexdigest() + '"'
    with pytest.raises(ClientError) as exists:  # create, but it exists
        s3.put_object(Bucket=BUCKET, Key="w/watermark.json", Body=b'{"high":0}', IfNoneMatch="*")
    assert _error(exists) == (412, "PreconditionFailed")
    second = s3.put_object(Bucket=BUCKET, Key="w/watermark.json", Body=b'{"high":2}', IfMatch=first)["ETag"]
    with pytest.raises(ClientError) as stale:  # update from a version that is gone
        s3.put_object(Bucket=BUCKET, Key="w/watermark.json", Body=b'{"high":9}', IfMatch=first)
    assert _error(stale) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as missing:  # update of nothing: S3's answer
        s3.put_object(Bucket=BUCKET, Key="w/other.json", Body=b"{}", IfMatch=first)
    assert _error(missing) == (404, "NoSuchKey")
    body = s3.get_object(Bucket=BUCKET, Key="w/watermark.json")
    assert body["Body"].read() == b'{"high":2}' and body["ETag"] == second


def test_conditional_and_ranged_reads(store: Store) -> None:
    s3 = store.start()
    etag = s3.put_object(Bucket=BUCKET, Key="a b+c/d%e.batch", Body=b"0123456789")["ETag"]
    with pytest.raises(ClientError) as unchanged:
        s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", IfNoneMatch=etag)
    assert _error(unchanged)[0] == 304
    assert s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", IfNoneMatch='"other"')["Body"].read() == b"0123456789"
    with pytest.raises(ClientError) as changed:
        s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", IfMatch='"other"')
    assert _error(changed) == (412, "PreconditionFailed")
    part = s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", Range="bytes=2-4")
    assert part["Body"].read() == b"234" and part["ContentRange"] == "bytes 2-4/10"
    assert s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", Range="bytes=-3")["Body"].read() == b"789"
    assert s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", Range="bytes=7-")["Body"].read() == b"789"
    with pytest.raises(ClientError) as beyond:
        s3.get_object(Bucket=BUCKET, Key="a b+c/d%e.batch", Range="bytes=10-")
    assert _error(beyond) == (416, "InvalidRange")
    head = s3.head_object(Bucket=BUCKET, Key="a b+c/d%e.batch")
    assert head["ContentLength"] == 10 and head["ETag"] == etag
    with pytest.raises(ClientError) as absent:
        s3.get_object(Bucket=BUCKET, Key="nothing")
    assert _error(absent) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as no_bucket:
        s3.get_object(Bucket="elsewhere", Key="a")
    assert _error(no_bucket) == (404, "NoSuchBucket")


def _pages(s3: Any, **kwargs: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, **kwargs):
        pages += 1
        keys += [c["Key"] for c in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return keys, prefixes, pages


def test_listing_in_pages(store: Store) -> None:
    s3 = store.start()
    records = [f"t/partitions/{p:010}/records/{o:020}.batch" for p in range(2) for o in range(0, 25, 1)]
    for key in [*records, "t/partitions/0000000000/watermark.json", "u/x", "t+/y"]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    keys, _, pages = _pages(s3, Prefix="t/partitions/0000000001/records/", PaginationConfig={"PageSize": 7})
    assert keys == records[25:] and pages == 4
    keys, _, _ = _pages(s3, Prefix="t/partitions/0000000000/records/", StartAfter=records[19])
    assert keys == records[20:25]
    keys, prefixes, pages = _pages(s3, Prefix="t/partitions/", Delimiter="/", PaginationConfig={"PageSize": 1})
    assert keys == [] and prefixes == ["t/partitions/0000000000/", "t/partitions/0000000001/"] and pages == 2
    keys, prefixes, _ = _pages(s3, Delimiter="/")
    assert keys == [] and prefixes == ["t+/", "t/", "u/"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="u/")["Contents"][0]
    assert listed["Size"] == 3 and listed["ETag"] == s3.head_object(Bucket=BUCKET, Key="u/x")["ETag"]


def test_deletes(store: Store) -> None:
    s3 = store.start()
    for i in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"d/{i}", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="d/0")
    s3.delete_object(Bucket=BUCKET, Key="d/absent")  # nothing there: S3 answers 204 all the same
    deleted = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}, {"Key": "d/9"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["d/1", "d/2", "d/9"]
    assert _pages(s3, Prefix="d/")[0] == ["d/3", "d/4"]
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "d/3"}, {"Key": "d/4"}], "Quiet": True})
    assert _pages(s3)[0] == []
    assert list((store.root / BUCKET).iterdir()) == [], "the emptied folders go too"


def test_objects_and_buckets_survive_a_kill(store: Store) -> None:
    s3 = store.start()
    s3.create_bucket(Bucket="second")
    etags = {f"k/{i}": s3.put_object(Bucket=BUCKET, Key=f"k/{i}", Body=b"v%d" % i)["ETag"] for i in range(20)}
    s3.delete_object(Bucket=BUCKET, Key="k/3")
    del etags["k/3"]
    folder = store.root / BUCKET / "k"
    (folder / ".tmp-left-by-a-crash").write_bytes(b"half")  # a write under way: never acknowledged
    (folder / "5").unlink()  # a replacement killed once the old version was removed: the new one is complete
    (folder / ".new-5").write_bytes(b"v5 again")
    etags["k/5"] = '"' + hashlib.md5(b"v5 again").hexdigest() + '"'
    (folder / ".new-6").write_bytes(b"never")  # killed before the old one was removed: the old one stands
    store.kill()
    s3 = store.start()
    s3.head_bucket(Bucket="second")
    assert sorted(_pages(s3)[0]) == sorted(etags)
    for key, etag in etags.items():
        got = s3.get_object(Bucket=BUCKET, Key=key)
        expected = b"v5 again" if key == "k/5" else b"v" + key.split("/")[1].encode()
        assert got["ETag"] == etag and got["Body"].read() == expected
    with pytest.raises(ClientError) as exists:  # the conditions hold across the restart
        s3.put_object(Bucket=BUCKET, Key="k/0", Body=b"again", IfNoneMatch="*")
    assert _error(exists) == (412, "PreconditionFailed")
    assert sorted(f.name for f in folder.iterdir() if f.name.startswith(".")) == [], "no temporary file is left"


def test_each_write_is_listed_as_modified_after_every_earlier_one(store: Store) -> None:
    """Tansu answers ListOffsets(latest) with the batch listed as modified last, the first of equals in key order:
    two batches written in one millisecond (as a listing in milliseconds showed them) made the end of a partition
    one record short. Each write's time is its own, in the order of the writes (not of the keys), and a restart
    lists the same times."""
    s3 = store.start()
    written = [f"r/{(i * 37) % 200:020}.batch" for i in range(200)]  # an order that is not the keys'
    for key in written:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"batch")
    s3.put_object(Bucket=BUCKET, Key=written[0], Body=b"replaced")  # a replacement is a write too
    written = [*written[1:], written[0]]

    def listed() -> dict[str, Any]:
        return {
            c["Key"]: c["LastModified"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="r/")
            for c in page["Contents"]
        }

    times = listed()
    assert sorted(times, key=times.__getitem__) == written
    assert len(set(times.values())) == len(written), "no two writes share a time"
    store.kill()
    s3 = store.start()
    assert listed() == times
    s3.put_object(Bucket=BUCKET, Key="r/after-the-restart", Body=b"x")
    assert listed()["r/after-the-restart"] > max(times.values())
