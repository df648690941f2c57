"""Envelope encryption of the API keys' HMAC secrets at rest (AES-256-GCM, the ``cryptography`` library).

Binance's HMAC signature is verified with the secret itself, so a secret cannot be stored hashed: it is
stored sealed. Each secret gets its own data key (DEK); the secret is encrypted with the DEK, bound to its
API key as associated data (a sealed secret copied onto another key's row does not open), and the DEK is
stored wrapped by the key-encryption key (KEK), which never reaches the database:

- **AWS KMS** (``KMS_KEY_ID``): the DEK comes from ``GenerateDataKey`` and is unwrapped by ``Decrypt``,
  through boto3's own credential chain; unwrapped DEKs are cached in the process.
- **a local key** (``ENVELOPE_KEY``, base64 of 32 bytes), or by default the file ``ENVELOPE_KEY_FILE``
  (``.spot/envelope.key``, created on first use) for ``make dev`` and the tests.

A sealed value is ``MAGIC | kind | len(wrapped DEK) (2 bytes) | wrapped DEK | nonce (12) | ciphertext+tag``.
Pure except the KMS calls.
"""

from __future__ import annotations

import secrets
import struct
from collections import OrderedDict
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import keyfile
from .config import Settings

MAGIC = b"SPE1"
LOCAL, KMS = 1, 2  # which KEK wrapped the DEK
NONCE = 12  # AES-GCM's standard nonce, random per encryption (one per DEK here, so never repeated)
DEK_AAD = b"spot api-secret data key"
KMS_CONTEXT = {"purpose": "spot-api-secret"}  # KMS binds the wrapped DEK to it; CloudTrail shows it
DEK_CACHE_MAX = 100_000  # unwrapped DEKs a process keeps (KMS: one Decrypt per key per process)


class SealBroken(ValueError):
    """A sealed secret that does not open: another KEK, another key's row, or altered bytes."""


class KeyWrapper(Protocol):
    kind: int

    def new_dek(self) -> tuple[bytes, bytes]:
        """(DEK, wrapped DEK)."""
        ...

    def unwrap(self, wrapped: bytes) -> bytes: ...


class LocalKek:
    kind = LOCAL

    def __init__(self, kek: bytes) -> None:
        self._aead = AESGCM(kek)

    def new_dek(self) -> tuple[bytes, bytes]:
        dek, nonce = AESGCM.generate_key(bit_length=256), secrets.token_bytes(NONCE)
        return dek, nonce + self._aead.encrypt(nonce, dek, DEK_AAD)

    def unwrap(self, wrapped: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:NONCE], wrapped[NONCE:], DEK_AAD)


class KmsKek:
    kind = KMS

    def __init__(self, key_id: str, client: Any) -> None:
        self.key_id, self._kms = key_id, client

    def new_dek(self) -> tuple[bytes, bytes]:
        out = self._kms.generate_data_key(KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=KMS_CONTEXT)
        return out["Plaintext"], out["CiphertextBlob"]

    def unwrap(self, wrapped: bytes) -> bytes:
        out = self._kms.decrypt(CiphertextBlob=wrapped, KeyId=self.key_id, EncryptionContext=KMS_CONTEXT)
        return bytes(out["Plaintext"])


class Envelope:
    """Seals and opens secrets with one KEK; opens what any earlier seal of the same KEK made."""

    def __init__(self, kek: KeyWrapper) -> None:
        self.kek = kek
        self._deks: OrderedDict[bytes, bytes] = OrderedDict()

    def seal(self, secret: str, bound_to: str) -> bytes:
        dek, wrapped = self.kek.new_dek()
        nonce = secrets.token_bytes(NONCE)
        sealed = AESGCM(dek).encrypt(nonce, secret.encode(), bound_to.encode())
        return MAGIC + bytes([self.kek.kind]) + struct.pack(">H", len(wrapped)) + wrapped + nonce + sealed

    def open(self, blob: bytes, bound_to: str) -> str:
        if len(blob) < 7 or blob[:4] != MAGIC:
            raise SealBroken(f"not a sealed secret (starts {blob[:4]!r})")
        if blob[4] != self.kek.kind:
            raise SealBroken(f"sealed by KEK kind {blob[4]}, this process has kind {self.kek.kind}")
        (n,) = struct.unpack(">H", blob[5:7])
        wrapped, rest = blob[7 : 7 + n], blob[7 + n :]
        try:
            dek = self._dek(wrapped)
            return AESGCM(dek).decrypt(rest[:NONCE], rest[NONCE:], bound_to.encode()).decode()
        except InvalidTag:
            raise SealBroken("the sealed secret does not open with this KEK for this API key") from None

    def _dek(self, wrapped: bytes) -> bytes:
        dek = self._deks.get(wrapped)
        if dek is None:
            dek = self.kek.unwrap(wrapped)
            if len(self._deks) >= DEK_CACHE_MAX:
                self._deks.popitem(last=False)
            self._deks[wrapped] = dek
        return dek


def from_settings(settings: Settings) -> Envelope:
    """KMS when ``kms_key_id`` is set, else the local KEK (``envelope_key`` or its file)."""
    if settings.kms_key_id:
        import boto3

        client = boto3.client("kms", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        return Envelope(KmsKek(settings.kms_key_id, client))
    return Envelope(LocalKek(keyfile.key(settings.envelope_key, settings.envelope_key_file, "ENVELOPE_KEY")))
