"""Binance's decimal grammar: every form it refuses, with its code and message, and every form it takes, exactly.

The model is the grammar read character by character (ASCII digits, at most one inner dot, at most 20 digits
each side, at most 8 significant decimals), written without a regular expression or ``Decimal``, so that it
cannot share a mistake with ``parse_amount``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.amounts import fits, parse_amount
from shared.domain import INT64_MAX
from shared.errors import ApiError

ILLEGAL = "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."
TOO_PRECISE = "Parameter 'quantity' has too much precision."
ASCII_DIGITS = "0123456789"


def refusal(text: str) -> tuple[int, str]:
    with pytest.raises(ApiError) as refused:
        parse_amount(text, "quantity")
    return refused.value.code, refused.value.msg


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1\n",
        "\t1",
        "1_000",
        "1e3",
        "1E3",
        "1e-3",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        "0x10",
        "1.2.3",
        ".5",
        "5.",
        "1,5",
        "\u0661\u0662\u0663",  # Arabic-Indic digits: Decimal reads them as 123
        "\uff11\uff12\uff13",  # fullwidth digits: Decimal reads them too
        "\u0663.\u0665",
        "²",
        "1\x00",
        "½",
        "1" * 21,  # 21 digits before the dot
        "1." + "0" * 21,  # 21 digits after it, all of them zeros
    ],
)
def test_a_form_off_the_grammar_is_illegal_characters(text: str) -> None:
    assert refusal(text) == (-1100, ILLEGAL)


@pytest.mark.parametrize(
    "text",
    [
        "0.000000001",
        "50000.0000000000000000000000000001",  # was read as 50000
        "1." + "1" * 40,
        "0." + "0" * 30 + "1",
    ],
)
def test_more_decimals_than_the_precision_is_too_much_precision(text: str) -> None:
    assert refusal(text) == (-1111, TOO_PRECISE)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        ("1", Decimal(1)),
        ("0.1", Decimal("0.1")),
        ("0.00000001", Decimal("1E-8")),
        ("00012.50", Decimal("12.5")),
        ("1.000000000000", Decimal(1)),  # trailing zeros are not precision
        ("9" * 20, Decimal("9" * 20)),
        ("9" * 20 + ".99999999", Decimal("9" * 20 + ".99999999")),
        ("1." + "0" * 20, Decimal(1)),
    ],
)
def test_a_form_on_the_grammar_is_its_exact_value(text: str, value: Decimal) -> None:
    assert parse_amount(text, "quantity") == value


def _model(text: str) -> tuple[int, tuple[int, int] | None]:
    """(code, (units, 8-decimal fraction)) by the grammar's words; code 0 when taken."""
    if not text or any(c not in ASCII_DIGITS + "." for c in text) or text.count(".") > 1:
        return -1100, None
    whole, _, fraction = text.partition(".")
    if not whole or ("." in text and not fraction):
        return -1100, None
    if len(fraction.rstrip("0")) > 8:
        return -1111, None
    if len(whole) > 20 or len(fraction) > 20:
        return -1100, None
    return 0, (int(whole), int((fraction + "0" * 8)[:8]))


TRICKY = [*"0123456789.", "-", "+", " ", "_", "e", "E", "\n", "\u0663", "\uff13", "NaN", "Infinity", "inf", "0" * 25]
texts = st.lists(st.sampled_from(TRICKY), max_size=45).map("".join) | st.text(max_size=45)


@given(texts)
@example("1" * 20 + "." + "1" * 8)
@example("0" * 20 + "." + "0" * 20)
@example("NaN")
@example("\u0663")
def test_any_text_is_taken_exactly_or_refused_as_the_grammar_says(text: str) -> None:
    code, parts = _model(text)
    try:
        value = parse_amount(text, "quantity")
    except ApiError as refused:
        assert (refused.code, refused.http_status) == (code, 400), text
        return
    assert code == 0 and parts is not None, text
    units, eighths = parts
    assert value == Decimal(units) + Decimal(eighths).scaleb(-8)


@given(st.integers(-(2**70), 2**70))
@example(INT64_MAX)
@example(INT64_MAX + 1)
@example(-1)
def test_fits_is_a_bigint_column(value: int) -> None:
    assert fits(value) == (0 <= value < 2**63)
