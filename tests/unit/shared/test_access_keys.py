"""Pure parts of access (issue 20): service signatures, the envelope, key files, key restrictions."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import apikeys, keyfile, servicekey
from shared.envelope import Envelope, LocalKek, SealBroken

KEY = secrets.token_bytes(32)
NOW = 1_800_000_000_000


def test_a_service_signature_verifies_only_for_its_path_body_and_key() -> None:
    header = servicekey.sign(KEY, "/internal/orders", b'{"userId":2}', NOW)
    assert servicekey.verify(KEY, "/internal/orders", b'{"userId":2}', header, NOW + 1000)
    assert not servicekey.verify(KEY, "/internal/orders", b'{"userId":3}', header, NOW)  # another user
    assert not servicekey.verify(KEY, "/internal/cancels", b'{"userId":2}', header, NOW)
    assert not servicekey.verify(secrets.token_bytes(32), "/internal/orders", b'{"userId":2}', header, NOW)
    assert not servicekey.verify(KEY, "/internal/orders", b'{"userId":2}', header, NOW + servicekey.WINDOW_MS + 1)
    for bad in (None, "", ".", "x.y", "²." + "0" * 64, "1" * 17 + ".00"):
        assert not servicekey.verify(KEY, "/internal/orders", b"", bad, NOW)


@given(st.text(max_size=100), st.text(min_size=1, max_size=80))
def test_a_sealed_secret_opens_to_itself_and_only_for_its_api_key(secret: str, api_key: str) -> None:
    box = Envelope(LocalKek(KEY))
    sealed = box.seal(secret, api_key)
    assert box.open(sealed, api_key) == secret
    with pytest.raises(SealBroken):
        box.open(sealed, api_key + "x")
    with pytest.raises(SealBroken):
        box.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), api_key)


def test_garbage_is_not_a_sealed_secret() -> None:
    with pytest.raises(SealBroken):
        Envelope(LocalKek(KEY)).open(b"plaintext-secret", "k")


def test_a_key_file_is_created_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "envelope.key"
    first = keyfile.load_or_create(path)
    assert len(first) == keyfile.KEY_BYTES and keyfile.load_or_create(path) == first
    assert os.stat(path).st_mode & 0o077 == 0, "readable by others"
    path.write_text("c2hvcnQ=")
    with pytest.raises(keyfile.BadKey):
        keyfile.load_or_create(path)


def test_a_configured_key_wins_over_the_file(tmp_path: Path) -> None:
    from pydantic import SecretStr

    configured = secrets.token_bytes(32)
    got = keyfile.key(SecretStr(base64.b64encode(configured).decode()), str(tmp_path / "k"), "SERVICE_KEY")
    assert got == configured and not (tmp_path / "k").exists()


def test_permissions_and_allow_lists_are_checked() -> None:
    assert apikeys.check_permissions(["USER_DATA", "TRADE"]) == ["TRADE", "USER_DATA"]
    assert apikeys.check_permissions(["WITHDRAW", "USER_DATA"]) == ["USER_DATA", "WITHDRAW"]
    assert "WITHDRAW" not in apikeys.DEFAULT_PERMISSIONS, "withdrawals only when an operator grants them"
    for bad in ([], ["MARGIN"], ["TRADE", "trade"]):
        with pytest.raises(ValueError):
            apikeys.check_permissions(bad)
    with pytest.raises(ValueError, match="not an address"):
        apikeys.networks(["10.0.0.0/8", "evil"])
    key = apikeys.ApiKey(1, "s", frozenset({"TRADE"}), True, apikeys.networks(["10.0.0.0/8", "2001:db8::/32"]))
    assert key.allows_ip("10.2.3.4") and key.allows_ip("2001:db8::5")
    assert not key.allows_ip("11.0.0.1") and not key.allows_ip("unknown")
    assert apikeys.ApiKey(1, "s", frozenset(), True).allows_ip("anything")


def test_an_ed25519_key_verifies_binance_signatures_url_encoded_or_not() -> None:
    from urllib.parse import quote

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = apikeys.ed25519_public_key(pem)
    key = apikeys.ApiKey(1, None, frozenset(), True, None, private.public_key())
    assert len(raw) == 32
    payload = b"symbol=BTCUSDT&side=BUY&timestamp=1"
    signature = base64.b64encode(private.sign(payload)).decode()
    assert key.verifies(payload, signature)  # WS-API: as is
    assert key.verifies(payload, quote(signature, safe=""))  # REST: URL-encoded, as ccxt sends it
    assert not key.verifies(payload + b"0", signature)
    assert not key.verifies(payload, base64.b64encode(Ed25519PrivateKey.generate().sign(payload)).decode())
    for junk in ("", "zz", "%%%", "A" * 500, "0" * 64):
        assert not key.verifies(payload, junk)
    with pytest.raises(ValueError, match="not a PEM"):
        apikeys.ed25519_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_an_hmac_key_verifies_its_hex_signature_in_either_case() -> None:
    import hashlib
    import hmac

    key = apikeys.ApiKey(1, "s3cret", frozenset(), True)
    mac = hmac.new(b"s3cret", b"a=1", hashlib.sha256).hexdigest()
    assert key.verifies(b"a=1", mac) and key.verifies(b"a=1", mac.upper())
    assert not key.verifies(b"a=2", mac) and not apikeys.ApiKey(1, None, frozenset(), True).verifies(b"a=1", mac)
