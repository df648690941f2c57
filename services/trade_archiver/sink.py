"""Where archived trades go: a local folder or S3 (the archive), and Kinesis. I/O only, synchronous.

boto3 is synchronous; the service calls every method here through ``asyncio.to_thread``. A store is a
flat key space (``layout`` names the keys) with four operations, each atomic for one key: a local put
writes a temp file beside the target, fsyncs it and renames it over the target; an S3 PUT is atomic by
itself. An endpoint that does not answer is raised as ``ConnectionError`` so the service treats it as an
outage (``shared.resilience``), not as a bug. Credentials come from boto3's own chain and are never
logged; ``describe`` names only the place.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from shared.config import Settings

from .layout import MANIFESTS, namespace

if TYPE_CHECKING:
    from .parquet import TradeRow

KINESIS_BATCH: Final = 500  # PutRecords accepts at most 500 records ...
KINESIS_BATCH_BYTES: Final = 5 << 20  # ... and 5 MiB per call
KINESIS_ATTEMPTS: Final = 6  # throttled records are retried with backoff, then the flush fails
KINESIS_BACKOFF_S: Final = 0.2
TMP_SUFFIX: Final = ".tmp"


class Store(Protocol):
    """Keys are '/'-separated; ``list`` returns the keys under a prefix (after ``start_after``), sorted."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def list(self, prefix: str, start_after: str = "") -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def check(self) -> None: ...
    def describe(self) -> str: ...


class LocalStore:
    """A folder; keys are relative paths. Hidden files (temp files of an interrupted put) are not listed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the archive root")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must not publish a file whose bytes are not on disk yet
        os.replace(tmp, path)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        root = self.root.resolve()
        keys = (str(p.relative_to(root)).replace(os.sep, "/") for p in _files(base))
        return sorted(k for k in keys if k > start_after)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(f"archive folder {self.root} is not writable")

    def describe(self) -> str:
        return str(self.root)


def _files(base: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                yield Path(dirpath) / name


def _translated(exc: Exception) -> Exception:
    """botocore's 'could not reach the endpoint' errors as ConnectionError (an outage, not a bug)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return ConnectionError(f"{type(exc).__name__}: {exc}")
    return exc


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except Exception as exc:
            raise _translated(exc) from exc

    def get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
            return body
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise _translated(exc) from exc

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        keys: list[str] = []
        after = {"StartAfter": self.prefix + start_after} if start_after else {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, **after
            ):
                keys.extend(o["Key"][len(self.prefix) :] for o in page.get("Contents", ()))
        except Exception as exc:
            raise _translated(exc) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except Exception as exc:
            raise _translated(exc) from exc

    def check(self) -> None:
        """One cheap list of the manifests: all the bucket-level access the IAM policy grants."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + MANIFESTS, MaxKeys=1)
        except Exception as exc:
            raise _translated(exc) from exc

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class Kinesis:
    """PutRecords in batches, partition key = symbol; throttled records are retried, then raised."""

    def __init__(self, client: Any, stream: str) -> None:
        self.client, self.stream = client, stream

    def put(self, rows: list[TradeRow]) -> int:
        from .parquet import json_record

        records = [{"Data": json_record(r), "PartitionKey": r.symbol} for r in rows]
        for chunk in _chunks(records):
            self._put(chunk)
        return len(records)

    def _put(self, records: list[dict[str, Any]]) -> None:
        delay = KINESIS_BACKOFF_S
        for _attempt in range(KINESIS_ATTEMPTS):
            try:
                answer = self.client.put_records(StreamName=self.stream, Records=records)
            except Exception as exc:
                raise _translated(exc) from exc
            if not answer.get("FailedRecordCount"):
                return
            records = [rec for rec, res in zip(records, answer["Records"], strict=True) if res.get("ErrorCode")]
            time.sleep(delay)
            delay *= 2
        raise ConnectionError(f"kinesis {self.stream}: {len(records)} records still refused after retries")

    def check(self) -> None:
        try:
            self.client.describe_stream_summary(StreamName=self.stream)
        except Exception as exc:
            raise _translated(exc) from exc


def _chunks(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for rec in records:
        n = len(rec["Data"]) + len(rec["PartitionKey"])
        if chunk and (len(chunk) == KINESIS_BATCH or size + n > KINESIS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(rec)
        size += n
    if chunk:
        yield chunk


def _client(settings: Settings, service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)


def open_store(settings: Settings) -> Store:
    """The archive the settings name: S3 when a bucket is set, else the local folder."""
    ns = namespace(settings.topic_suffix)
    if settings.archive_s3_bucket:
        prefix = settings.archive_s3_prefix
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        return S3Store(_client(settings, "s3"), settings.archive_s3_bucket, prefix + ns)
    return LocalStore(Path(settings.archive_dir) / ns)


def open_kinesis(settings: Settings) -> Kinesis | None:
    return Kinesis(_client(settings, "kinesis"), settings.kinesis_stream) if settings.kinesis_stream else None
