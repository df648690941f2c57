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
    for bad in ([], ["WITHDRAW"], ["TRADE", "trade"]):
        with pytest.raises(ValueError):
            apikeys.check_permissions(bad)
    with pytest.raises(ValueError, match="not an address"):
        apikeys.networks(["10.0.0.0/8", "evil"])
    key = apikeys.ApiKey(1, "s", frozenset({"TRADE"}), True, apikeys.networks(["10.0.0.0/8", "2001:db8::/32"]))
    assert key.allows_ip("10.2.3.4") and key.allows_ip("2001:db8::5")
    assert not key.allows_ip("11.0.0.1") and not key.allows_ip("unknown")
    assert apikeys.ApiKey(1, "s", frozenset(), True).allows_ip("anything")
