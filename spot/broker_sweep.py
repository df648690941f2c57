"""Before the durable broker starts: finish the topic deletions a kill interrupted.

Tansu's ``s3://`` engine deletes a topic in steps: its name out of ``clusters/<c>/meta.json``, then the
topic's objects (``topics/<name>/``: watermarks and batches) and each group's offsets for it
(``groups/consumers/<group>/offsets/<name>/``), a thousand keys per bulk delete. Killed between those steps,
the rest stays: files that nothing removes, and worse, when the segment ring creates the slot topic again, its
watermark starts from 0 over the old batches. Tansu then serves them as the new topic's records (its fetch lists
the batches below the watermark), refuses new records at their offsets (a batch is written only if it is new),
and a group's old committed offset for the name holds over the new topic.

So before Tansu starts on the store (nothing writes to it then), every object under a topic name that
``meta.json`` no longer holds is removed. A cluster without ``meta.json`` is left as it is: nothing says which
of its topics exist.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
DELETE_BATCH = 1000  # keys per bulk delete: S3's limit
TIMEOUT_S = 30


def orphans(cluster: str, topics: set[str], keys: list[str]) -> dict[str, list[str]]:
    """{topic: its keys} for every topic of ``cluster`` (``clusters/<c>/``) not in ``topics``: its own objects,
    and every group's offsets for it. Pure: ``keys`` are what the store lists under the cluster."""
    own = re.compile(re.escape(cluster) + r"topics/([^/]+)/")
    offsets = re.compile(re.escape(cluster) + r"groups/consumers/[^/]+/offsets/([^/]+)/partitions/")
    out: dict[str, list[str]] = {}
    for key in keys:
        found = own.match(key) or offsets.match(key)
        if found is not None and found.group(1) not in topics:
            out.setdefault(found.group(1), []).append(key)
    return out


def _get(request: str | urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as r:  # noqa: S310  # our store, on 127.0.0.1
        body: bytes = r.read()
        return body


def _list(base: str, prefix: str, delimiter: str = "") -> tuple[list[str], list[str]]:
    """(keys, common prefixes) under ``prefix``, every page."""
    keys: list[str] = []
    prefixes: list[str] = []
    token = ""
    while True:
        url = f"{base}?list-type=2&prefix={quote(prefix, safe='')}"
        if delimiter:
            url += f"&delimiter={quote(delimiter, safe='')}"
        if token:
            url += f"&continuation-token={quote(token, safe='')}"
        doc = ElementTree.fromstring(_get(url))  # noqa: S314  # our store's answer
        keys += [k.text or "" for k in doc.iter(f"{NS}Key")]
        prefixes += [c.findtext(f"{NS}Prefix") or "" for c in doc.iter(f"{NS}CommonPrefixes")]
        token = doc.findtext(f"{NS}NextContinuationToken") or ""
        if not token:
            return keys, prefixes


def _delete(base: str, keys: list[str]) -> None:
    for i in range(0, len(keys), DELETE_BATCH):
        objects = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys[i : i + DELETE_BATCH])
        body = f'<Delete xmlns="{NS[1:-1]}"><Quiet>true</Quiet>{objects}</Delete>'.encode()
        request = urllib.request.Request(f"{base}?delete", data=body, method="POST")  # noqa: S310
        doc = ElementTree.fromstring(_get(request))  # noqa: S314
        failed = [e.findtext(f"{NS}Key") for e in doc.iter(f"{NS}Error")]
        if failed:
            raise RuntimeError(f"the store did not delete {failed[:5]}")


def sweep(store_url: str, bucket: str) -> dict[str, int]:
    """Remove the objects of deleted topics from ``bucket``; returns {topic: objects removed}."""
    base = f"{store_url}/{quote(bucket)}"
    removed: dict[str, int] = {}
    _, clusters = _list(base, "clusters/", "/")
    for cluster in clusters:
        try:
            meta = json.loads(_get(f"{base}/{quote(cluster)}meta.json"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            raise
        topics = set(meta.get("topics", {}))
        keys = _list(base, f"{cluster}groups/consumers/")[0]  # a few per group and partition
        for folder in _list(base, f"{cluster}topics/", "/")[1]:  # each topic's batches only if it is gone
            if folder[len(cluster) :].split("/")[1] not in topics:
                keys += _list(base, folder)[0]
        for name, gone in orphans(cluster, topics, keys).items():
            _delete(base, gone)
            removed[name] = removed.get(name, 0) + len(gone)
    return removed
