"""Binance request signing: raw bytes, ccxt's parameter order, the timestamp window."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import ApiError
from shared.signing import check_timestamp, form_pairs, parse_params, split_signature, verify, ws_api_payload

SECRET = "testsecret"


def sig(payload: bytes) -> str:
    return hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()


def test_a_ccxt_body_verifies_in_the_order_it_was_sent() -> None:
    body = (
        b"timestamp=1795573805473&symbol=BTCUSDT&side=BUY&newClientOrderId=x-TKT5PX2Fd3caffba772eef049e6fc6"
        b"&newOrderRespType=FULL&type=LIMIT&quantity=0.01&price=40000&timeInForce=GTC&recvWindow=10000"
    )
    payload, signature = split_signature(b"", body + b"&signature=" + sig(body).encode())
    assert payload == body and verify(SECRET, payload, signature)


def test_query_signature_and_tampering() -> None:
    query = b"symbol=BTCUSDT&orderId=5&timestamp=1"
    payload, signature = split_signature(query + b"&signature=" + sig(query).encode(), b"")
    assert verify(SECRET, payload, signature)
    assert not verify(SECRET, payload.replace(b"orderId=5", b"orderId=6"), signature)
    assert not verify("othersecret", payload, signature)


def test_missing_signature_is_mandatory() -> None:
    with pytest.raises(ApiError) as refused:
        split_signature(b"a=1", b"")
    assert refused.value.code == -1102


def test_duplicate_parameters_are_refused() -> None:
    with pytest.raises(ApiError):
        parse_params(b"symbol=BTCUSDT&symbol=ETHUSDT", b"")
    assert parse_params(b"a=1", b"b=2") == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("ts", "window", "ok"),
    [
        (100_000, None, True),
        (100_000 - 5_001, None, False),
        (100_000 - 9_000, "10000", True),
        (100_000 + 1_001, None, False),
        (100_000, "70000", False),
    ],
)
def test_timestamp_window(ts: int, window: str | None, ok: bool) -> None:
    params = {"timestamp": str(ts)} | ({"recvWindow": window} if window else {})
    if ok:
        check_timestamp(params, 100_000, 60_000)
    else:
        with pytest.raises(ApiError):
            check_timestamp(params, 100_000, 60_000)


def test_ws_api_payload_is_sorted_and_not_percent_encoded() -> None:
    assert ws_api_payload({"timestamp": 1, "apiKey": "k/+", "recvWindow": 10000, "signature": "x"}) == (
        b"apiKey=k/+&recvWindow=10000&timestamp=1"
    )


@given(st.text(alphabet=st.sampled_from("ab=&%+2F0 é;"), max_size=30))
def test_form_pairs_read_what_parse_qsl_reads(text: str) -> None:
    """The hot path's own split must accept, refuse and decode exactly as ``parse_qsl`` in strict mode."""
    try:
        expected = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        with pytest.raises(ValueError):
            form_pairs(text)
        return
    assert form_pairs(text) == expected
