"""The gateway's parsing of what a request carries, against simple models: integer parameters and bodies.

``int_param`` takes ASCII digits only (``str.isdigit`` would also take '²', which ``int`` refuses, and other
scripts' digits, which it reads), at most 19 of them, inside the route's range; anything else is Binance's
-1100, never a 500. ``read_body`` never reads past the limit, announced or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.gateway.deps import int_param, read_body
from shared import errors
from shared.errors import ApiError

HI = 2**62


def model_int(raw: str, lo: int, hi: int) -> int | None:
    """What a Binance integer parameter reads as, or None for a refusal."""
    digits = raw.removeprefix("-")
    if not (0 < len(raw) <= 19 and digits and all("0" <= c <= "9" for c in digits)):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


texts = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.text(alphabet="0123456789-+ .e\u00b2\u0661x", min_size=1, max_size=22),
)


@given(texts, st.integers(-10, 10), st.integers(0, HI))
@example("²", 0, HI)
@example("\u0661\u0662", 0, HI)  # Arabic-Indic digits: int() reads them, Binance does not
@example("+5", 0, HI)
@example(" 5", 0, HI)
@example("-1", 0, HI)
@example(str(HI), 0, HI)
@example(str(HI + 1), 0, HI)
@example("9" * 19, 0, HI)
@example("1" * 20, 0, 10**30)
def test_int_param_matches_the_model(raw: str, lo: int, hi: int) -> None:
    want = model_int(raw, lo, hi)
    if want is None:
        with pytest.raises(ApiError) as refused:
            int_param({"orderId": raw}, "orderId", lo=lo, hi=hi)
        assert refused.value.code == errors.ILLEGAL_CHARS and refused.value.http_status == 400
        assert "orderId" in refused.value.msg  # names the parameter
    else:
        assert int_param({"orderId": raw}, "orderId", lo=lo, hi=hi) == want


def test_an_absent_or_empty_int_param_is_the_default() -> None:
    assert int_param({}, "limit", 500) == 500
    assert int_param({"limit": ""}, "limit", 500) == 500
    assert int_param({}, "orderId") is None


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _read(length: str | None, parts: list[bytes], limit: int) -> bytes:
    return asyncio.run(read_body(length, _chunks(parts), limit))


@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(0, 200), st.booleans())
def test_a_body_is_its_chunks_within_the_limit_else_refused(parts: list[bytes], limit: int, announced: bool) -> None:
    whole = b"".join(parts)
    length = str(len(whole)) if announced else None  # chunked: no length announced
    if len(whole) <= limit:
        assert _read(length, parts, limit) == whole
    else:
        with pytest.raises(ApiError) as refused:
            _read(length, parts, limit)
        assert refused.value.http_status == 413 and refused.value.code == errors.TOO_MANY_PARAMETERS
        assert str(limit) in refused.value.msg


def test_a_body_announced_too_long_or_garbled_is_refused_before_reading() -> None:
    async def never() -> AsyncIterator[bytes]:
        raise AssertionError("read a body that its length already refused")
        yield b""  # an async generator: it fails only if read

    for length in ("101", "1" * 30, "-1", "1e3", "\u00b2"):
        with pytest.raises(ApiError) as refused:
            asyncio.run(read_body(length, never(), 100))
        assert refused.value.http_status == 413
