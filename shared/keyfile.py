"""Key material from the environment, or from a file the local fleet keeps under ``.spot/``.

A deployed fleet is given its keys (a Kubernetes Secret, Secrets Manager, KMS); ``make dev`` and the tests
are not, so the first process to need a key writes a random one to its file (mode 0600) and every later
process, every service of the fleet included, reads the same one. Creation is atomic (a private temporary
file hard-linked into place), so services starting together agree on one key.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

KEY_BYTES = 32  # AES-256 and HMAC-SHA256 keys


class BadKey(ValueError):
    """A configured key that is not ``KEY_BYTES`` of base64."""


def decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{where}: not base64") from None
    if len(key) != KEY_BYTES:
        raise BadKey(f"{where}: {len(key)} bytes, expected {KEY_BYTES} (base64 of `openssl rand 32`)")
    return key


def load_or_create(path: Path) -> bytes:
    """The key in ``path``, written first (random, 0600) if there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # the first writer wins; the others read its key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return decode(path.read_text(), str(path))


def key(configured: SecretStr | None, file: str, where: str) -> bytes:
    """``configured`` (base64) if set, else the key in ``file``."""
    if configured is not None and configured.get_secret_value():
        return decode(configured.get_secret_value(), where)
    return load_or_create(Path(file))
