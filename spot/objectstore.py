"""A small S3-compatible object store on local disk: what the local broker keeps its log in when it is durable.

The broker (Tansu) has one durable storage engine in the build we ship, ``s3://``, and it relies on S3's
conditional writes: its per-partition watermark (the next offset) is replaced with ``If-Match: <etag>``, and
after a restart, with nothing cached, created with ``If-None-Match: *``, expecting ``412`` when it exists. A
store that ignores those headers (s3rver) lets a restarted broker write offsets from 0 again over the old
records. moto honours them but keeps nothing on disk. So this store does what the broker uses, and no more:

* path-style requests on ``127.0.0.1`` only: ``PUT``/``GET``/``HEAD``/``DELETE`` of an object, ``PUT``/``HEAD``/
  ``DELETE`` of a bucket, ListObjectsV2 (prefix, delimiter, start-after, continuation, ``encoding-type=url``)
  and bulk delete (``POST ?delete``);
* ``PUT`` with ``If-None-Match: *`` or ``If-Match``; ``GET``/``HEAD`` with ``If-None-Match`` (304),
  ``If-Match`` (412) and ``Range`` (206); errors as S3's XML;
* the ETag is the quoted MD5 of the content, as S3's for a single-part upload.

Not here: request signatures (it binds 127.0.0.1 and holds a development broker's log; whoever can reach the
port can read the files too), multipart uploads, copies, versions, object metadata (Content-Type is not kept).

Each object is a file under ``<root>/<bucket>/``, its key's segments as folders (percent-encoded, never
starting with a dot). A write goes to a temporary file in the same folder, renamed into place: a process killed at
any point leaves the old object or the new one. An object replaced is not renamed over (ext4 then writes the
new file's blocks out at once, 0.4 ms or more per watermark update here), but renamed aside to
``.new-<name>``, the old one removed, and renamed into place; the start finishes what a kill interrupted. No
fsync: the kernel keeps what was written when a process dies; a power cut may lose or garble the last writes.
A key that would need a file where a folder is (``a`` beside ``a/b``) is refused with 409; the broker never
writes one.

Modification times are the store's own clock, not the file system's: each write gets one strictly later than
every earlier write's (microseconds, what a listing shows), kept as the file's mtime so a restart lists the same
times. Tansu answers ListOffsets(latest) with the batch whose LastModified is the greatest (and earliest with
the least), keeping the first of equals in key order: with two batches written in one millisecond (what the
listing's precision was), the end of a partition was answered one record short of what was acknowledged.

The index (key -> ETag, size, modification time) is in memory, rebuilt from the files at start (each file
read once for its MD5); listings come from it, in key order. Requests are served one at a time between
awaits, and each conditional check and its write happen with no await between them, so two conditional
writes of one key can never both succeed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiohttp import web
from sortedcontainers import SortedList

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000  # S3's page size, and its ceiling
MAX_BODY = 256 * 1024 * 1024  # the largest object accepted in one PUT
TMP_PREFIX = ".tmp-"  # a file being written: removed at start (encoded names never start with a dot)
NEW_PREFIX = ".new-"  # ``.new-<name>``: the complete new content of <name>, moved into place at start if <name> is gone
SEGMENT_MAX = 240  # bytes in one file name: 255 (ext4, xfs, tmpfs) less a temporary name's prefix


class S3Error(Exception):
    """An error answered as S3's XML document."""

    def __init__(self, status: int, code: str, message: str, key: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.key = status, code, message, key

    def response(self, method: str) -> web.Response:
        if method == "HEAD":  # a HEAD answer has no body
            return web.Response(status=self.status)
        body = f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>"
        if self.key:
            body += f"<Key>{escape(self.key)}</Key>"
        return _xml(body + "</Error>", self.status)


def _xml(body: str, status: int = 200) -> web.Response:
    return web.Response(
        body=f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode(), status=status, content_type="application/xml"
    )


def no_such_key(key: str) -> S3Error:
    return S3Error(404, "NoSuchKey", "The specified key does not exist.", key)


def precondition_failed() -> S3Error:
    return S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")


@dataclass(frozen=True, slots=True)
class Meta:
    etag: str  # quoted, as in the ETag header
    size: int
    mtime_ns: int  # the store's clock (``Clock``), as the file's mtime
    listed: str  # what a listing says of it after its key: made once, as the broker lists a partition per fetch
    entry: str  # the whole entry, its key as is

    @classmethod
    def of(cls, key: str, data: bytes, mtime_ns: int) -> Meta:
        etag = etag_of(data)
        listed = (f"<LastModified>{_iso(mtime_ns)}</LastModified><ETag>{escape(etag)}</ETag><Size>{len(data)}</Size>"
                  "<StorageClass>STANDARD</StorageClass>")  # fmt: skip
        return cls(etag, len(data), mtime_ns, listed, f"<Contents><Key>{escape(key)}</Key>{listed}</Contents>")


class Clock:
    """Modification times unique and increasing in the order of the writes, in whole microseconds.

    The wall clock's time when it is later than the last one given, else the last one plus a microsecond: two
    writes never share a time (a listing shows microseconds), and a wall clock stepped back never reorders them.
    """

    STEP_NS = 1000

    def __init__(self) -> None:
        self.last_ns = 0

    def saw(self, mtime_ns: int) -> None:
        """A time already given (a file's, at start): every later write comes after it."""
        self.last_ns = max(self.last_ns, mtime_ns)

    def next(self) -> int:
        now = time.time_ns() // self.STEP_NS * self.STEP_NS
        self.last_ns = max(now, self.last_ns + self.STEP_NS)
        return self.last_ns


def etag_of(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _encode_segment(segment: str) -> str:
    """A key segment as a file name: percent-encoded, never empty, never starting with a dot."""
    name = quote(segment, safe="-_.~=+,;@") or "%"
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name


def _decode_segment(name: str) -> str:
    return "" if name == "%" else unquote(name)


class Bucket:
    """One bucket: a folder of files and the index of its keys."""

    def __init__(self, folder: Path, clock: Clock) -> None:
        self.folder = folder
        self.clock = clock
        self.meta: dict[str, Meta] = {}
        self.keys: SortedList[str] = SortedList()

    def path(self, key: str) -> Path:
        names = [_encode_segment(s) for s in key.split("/")]
        if any(len(n.encode()) > SEGMENT_MAX for n in names):
            raise S3Error(400, "KeyTooLongError", "A segment of the key is too long for a file name.", key)
        return self.folder.joinpath(*names)

    def load(self) -> None:
        """Rebuild the index from the files; remove temporary files a killed process left behind."""
        for path in self._walk(self.folder):
            if path.name.startswith(TMP_PREFIX):
                path.unlink(missing_ok=True)
                continue
            if path.name.startswith(NEW_PREFIX):  # a replacement killed after its content was complete
                placed = self._finish_replace(path)
                if placed is None:
                    continue
                path = placed
            key = "/".join(_decode_segment(part) for part in path.relative_to(self.folder).parts)
            data = path.read_bytes()
            mtime_ns = path.stat().st_mtime_ns
            self.clock.saw(mtime_ns)
            self._index(key, Meta.of(key, data, mtime_ns))

    @staticmethod
    def _finish_replace(new: Path) -> Path | None:
        """The old object, if it is still there (the new one was never acknowledged), else the new one in place."""
        target = new.with_name(new.name[len(NEW_PREFIX) :])
        if target.exists():
            new.unlink()
            return None  # the walk meets the target itself
        os.rename(new, target)
        return target

    @staticmethod
    def _walk(folder: Path) -> Iterator[Path]:
        for entry in list(os.scandir(folder)):  # listed first: the walk renames files in it
            if entry.is_dir(follow_symlinks=False):
                yield from Bucket._walk(Path(entry.path))
            else:
                yield Path(entry.path)

    def _index(self, key: str, meta: Meta) -> None:
        if key not in self.meta:
            self.keys.add(key)
        self.meta[key] = meta

    def put(self, key: str, data: bytes, if_match: str | None, if_none_match: str | None) -> Meta:
        """Write ``key`` if its preconditions hold. Synchronous on purpose: nothing runs between check and write."""
        found = self.meta.get(key)
        if if_none_match is not None and found is not None and (if_none_match == "*" or found.etag == if_none_match):
            raise precondition_failed()
        if if_match is not None:
            if found is None:
                raise no_such_key(key)  # as S3 does; a client sees it as a failed precondition
            if if_match not in ("*", found.etag):
                raise precondition_failed()
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise S3Error(409, "KeyConflict", "A prefix of this key is itself a key.", key) from None
        if path.is_dir():
            raise S3Error(409, "KeyConflict", "This key is a prefix of other keys.", key)
        tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}")
        mtime_ns = self.clock.next()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.utime(fd, ns=(mtime_ns, mtime_ns))  # after the last write, which set it to the kernel's time
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)  # a failed write (a full disk) leaves nothing behind
            raise
        os.close(fd)
        if found is None:
            os.rename(tmp, path)
        else:
            new = path.with_name(NEW_PREFIX + path.name)
            os.rename(tmp, new)
            os.unlink(path)
            os.rename(new, path)
        meta = Meta.of(key, data, mtime_ns)
        self._index(key, meta)
        return meta

    def read(self, key: str) -> tuple[Meta, Path]:
        found = self.meta.get(key)
        if found is None:
            raise no_such_key(key)
        return found, self.path(key)

    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing when it is absent, as S3), and the folders it leaves empty."""
        if self.meta.pop(key, None) is None:
            return
        self.keys.remove(key)
        path = self.path(key)
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self.folder:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty: neither is any folder above it
                break

    def list(self, prefix: str, delimiter: str, after: str, max_keys: int) -> tuple[list[str], list[str], str | None]:
        """(keys, common prefixes, where the next page starts after) of one ListObjectsV2 page."""
        keys: list[str] = []
        prefixes: list[str] = []
        if max_keys <= 0:
            return keys, prefixes, None
        start = max(prefix, after)
        i = self.keys.bisect_right(start) if start == after and after else self.keys.bisect_left(start)
        last = ""
        while True:
            for key in self.keys.islice(i):
                if not key.startswith(prefix):
                    return keys, prefixes, None
                if len(keys) + len(prefixes) == max_keys:
                    return keys, prefixes, last
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    prefixes.append(common)
                    last = common + "\U0010ffff"  # past every key under it
                    i = self.keys.bisect_left(last)
                    break
                keys.append(key)
                last = key
            else:
                return keys, prefixes, None


class Store:
    """Buckets under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.buckets: dict[str, Bucket] = {}
        self.clock = Clock()  # one for all buckets: a listing of any of them orders its writes
        root.mkdir(parents=True, exist_ok=True)
        for entry in sorted(root.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                bucket = self.buckets[entry.name] = Bucket(entry, self.clock)
                bucket.load()

    def bucket(self, name: str) -> Bucket:
        found = self.buckets.get(name)
        if found is None:
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist.")
        return found

    def create_bucket(self, name: str) -> None:
        if name not in self.buckets:
            if not name or name.startswith(".") or "/" in name or len(name) > 63:
                raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.")
            folder = self.root / name
            folder.mkdir(exist_ok=True)
            self.buckets[name] = Bucket(folder, self.clock)

    def delete_bucket(self, name: str) -> None:
        bucket = self.bucket(name)
        if bucket.keys:
            raise S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
        bucket.folder.rmdir()
        del self.buckets[name]


# --- HTTP -------------------------------------------------------------------------------------------------


def _http_date(mtime_ns: int) -> str:
    return formatdate(mtime_ns / 1e9, usegmt=True)


def _iso(mtime_ns: int) -> str:
    """ISO 8601 in microseconds (S3 writes milliseconds; its clients read either): what keeps writes apart."""
    seconds, ns = divmod(mtime_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}Z"


def _object_headers(meta: Meta) -> dict[str, str]:
    return {"ETag": meta.etag, "Last-Modified": _http_date(meta.mtime_ns), "Accept-Ranges": "bytes"}


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) byte of a ``Range: bytes=a-b`` header, as S3 reads it; 416 when none of it exists."""
    unit, _, spec = header.partition("=")
    first_s, dash, last_s = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec or not (first_s or last_s):
        raise S3Error(400, "InvalidArgument", "Invalid Range header.")
    try:
        if not first_s:  # the last n bytes
            first, last = max(size - int(last_s), 0), size - 1
        else:
            first, last = int(first_s), min(int(last_s), size - 1) if last_s else size - 1
    except ValueError:
        raise S3Error(400, "InvalidArgument", "Invalid Range header.") from None
    if first >= size or first > last:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable.")
    return first, last


def _conditional_read(request: web.Request, meta: Meta) -> web.Response | None:
    if_match = request.headers.get("If-Match")
    if if_match is not None and if_match not in ("*", meta.etag):
        raise precondition_failed()
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and if_none_match in ("*", meta.etag):
        return web.Response(status=304, headers=_object_headers(meta))
    return None


async def _get_object(request: web.Request, bucket: Bucket, key: str, head: bool) -> web.StreamResponse:
    meta, path = bucket.read(key)
    unchanged = _conditional_read(request, meta)
    if unchanged is not None:
        return unchanged
    headers = _object_headers(meta)
    headers["Content-Type"] = "application/octet-stream"
    status, first, last = 200, 0, meta.size - 1
    if "Range" in request.headers and meta.size:
        first, last = _byte_range(request.headers["Range"], meta.size)
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{meta.size}"
    if head:
        headers["Content-Length"] = str(last - first + 1)
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, headers=headers, body=_read(path, first, last - first + 1))


def _read(path: Path, first: int, size: int) -> bytes:
    """In line, as the writes are: the broker's objects are small, and a thread would cost more than the read."""
    with open(path, "rb") as f:
        f.seek(first)
        return f.read(size)


def _aws_chunked(body: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body (``<hex size>[;ext]\\r\\n<data>\\r\\n`` ... ``0``, trailers)."""
    out, i = bytearray(), 0
    while True:
        end = body.index(b"\r\n", i)
        size = int(body[i:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        i = end + 2 + size + 2


async def _put_object(request: web.Request, bucket: Bucket, key: str) -> web.Response:
    if "x-amz-copy-source" in request.headers:
        raise S3Error(501, "NotImplemented", "Copies are not supported by this store.")
    data = await request.read()
    if "aws-chunked" in request.headers.get("Content-Encoding", "") or request.headers.get(
        "x-amz-content-sha256", ""
    ).startswith("STREAMING-"):
        try:
            data = _aws_chunked(data)
        except ValueError:
            raise S3Error(400, "IncompleteBody", "The aws-chunked body is malformed.") from None
    meta = bucket.put(key, data, request.headers.get("If-Match"), request.headers.get("If-None-Match"))
    return web.Response(status=200, headers={"ETag": meta.etag})


def _list_objects(request: web.Request, name: str, bucket: Bucket) -> web.Response:
    q = request.query
    if q.get("list-type") != "2":
        raise S3Error(501, "NotImplemented", "Only ListObjectsV2 (list-type=2) is supported by this store.")
    prefix, delimiter, start_after = q.get("prefix", ""), q.get("delimiter", ""), q.get("start-after", "")
    token = q.get("continuation-token")
    try:
        max_keys = min(int(q.get("max-keys", MAX_KEYS)), MAX_KEYS)
        after = base64.urlsafe_b64decode(token.encode()).decode() if token else start_after
    except (ValueError, UnicodeDecodeError):
        raise S3Error(400, "InvalidArgument", "Invalid max-keys or continuation-token.") from None
    keys, prefixes, next_after = bucket.list(prefix, delimiter, after, max_keys)
    url = q.get("encoding-type") == "url"

    def enc(s: str) -> str:
        return escape(quote(s, safe="/") if url else s)

    parts = [f'<ListBucketResult xmlns="{NS}"><Name>{escape(name)}</Name><Prefix>{enc(prefix)}</Prefix>']
    parts.append(f"<KeyCount>{len(keys) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url:
        parts.append("<EncodingType>url</EncodingType>")
    if start_after:
        parts.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
    if token:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    parts.append(f"<IsTruncated>{'true' if next_after is not None else 'false'}</IsTruncated>")
    if next_after is not None:
        parts.append(f"<NextContinuationToken>{base64.urlsafe_b64encode(next_after.encode()).decode()}"
                     "</NextContinuationToken>")  # fmt: skip
    meta = bucket.meta
    if url:
        parts.extend(f"<Contents><Key>{enc(key)}</Key>{meta[key].listed}</Contents>" for key in keys)
    else:
        parts.extend(meta[key].entry for key in keys)
    parts.extend(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    parts.append("</ListBucketResult>")
    return _xml("".join(parts))


async def _delete_objects(request: web.Request, bucket: Bucket) -> web.Response:
    try:  # from 127.0.0.1 only; expat refuses entity-expansion bombs itself
        doc = ElementTree.fromstring(await request.read())  # noqa: S314
    except ElementTree.ParseError:
        raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    quiet = (doc.findtext(f"{{{NS}}}Quiet") or doc.findtext("Quiet") or "").strip() == "true"
    objects = doc.findall(f"{{{NS}}}Object") + doc.findall("Object")
    if len(objects) > MAX_KEYS:
        raise S3Error(400, "MalformedXML", f"At most {MAX_KEYS} keys per request.")
    parts = [f'<DeleteResult xmlns="{NS}">']
    for obj in objects:
        key = obj.findtext(f"{{{NS}}}Key") or obj.findtext("Key") or ""
        try:
            bucket.delete(key)
        except S3Error as exc:
            parts.append(f"<Error><Key>{escape(key)}</Key><Code>{exc.code}</Code><Message>{escape(exc.message)}"
                         "</Message></Error>")  # fmt: skip
            continue
        if not quiet:
            parts.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
    return _xml("".join(parts) + "</DeleteResult>")


def _split(request: web.Request) -> tuple[str, str]:
    """(bucket, key) of a path-style request, percent-decoded (``+`` is a plus, as in a path)."""
    path = request.raw_path.split("?", 1)[0].lstrip("/")
    bucket, _, key = path.partition("/")
    return unquote(bucket), unquote(key)


async def _bucket_request(request: web.Request, store: Store, name: str) -> web.StreamResponse:
    method = request.method
    if method == "PUT":
        store.create_bucket(name)
        return web.Response(status=200, headers={"Location": f"/{name}"})
    if method == "HEAD":
        store.bucket(name)
        return web.Response(status=200)
    if method == "DELETE":
        store.delete_bucket(name)
        return web.Response(status=204)
    if method == "GET":
        return _list_objects(request, name, store.bucket(name))
    if method == "POST" and "delete" in request.query:
        return await _delete_objects(request, store.bucket(name))
    raise S3Error(501, "NotImplemented", f"{method} on a bucket is not supported by this store.")


def app(store: Store) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            name, key = _split(request)
            if not name:
                raise S3Error(501, "NotImplemented", "Listing buckets is not supported by this store.")
            if not key:
                return await _bucket_request(request, store, name)
            bucket, method = store.bucket(name), request.method
            if "uploads" in request.query or "uploadId" in request.query:
                raise S3Error(501, "NotImplemented", "Multipart uploads are not supported by this store.")
            if method == "PUT":
                return await _put_object(request, bucket, key)
            if method in ("GET", "HEAD"):
                return await _get_object(request, bucket, key, head=method == "HEAD")
            if method == "DELETE":
                bucket.delete(key)
                return web.Response(status=204)
            raise S3Error(405, "MethodNotAllowed", f"{method} is not allowed on an object.")
        except S3Error as exc:
            return exc.response(request.method)

    application = web.Application(client_max_size=MAX_BODY)
    application.router.add_route("*", "/{tail:.*}", handle)
    return application


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m spot.objectstore", description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--root", required=True, help="folder of the buckets")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bucket", action="append", default=[], help="create this bucket if it is missing")
    args = p.parse_args(argv)
    store = Store(Path(args.root))
    for name in args.bucket:
        store.create_bucket(name)
    import uvloop  # ships with uvicorn[standard]: about a third less CPU per request here

    with contextlib.suppress(KeyboardInterrupt):
        # SIGTERM and SIGINT: stop taking connections, finish the requests under way (each write is atomic)
        web.run_app(app(store), host="127.0.0.1", port=args.port, access_log=None, print=None,
                    handle_signals=True, shutdown_timeout=5, loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is not ours to act on: the parent stops us
    main()
