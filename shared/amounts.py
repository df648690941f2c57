"""Decimal parameters as Binance takes them, and the bound of what the ledger stores. Pure.

Binance's grammar for a decimal parameter (``quantity``, ``price``, ``quoteOrderQty``, ``stopPrice``...) is
``^([0-9]{1,20})(\\.[0-9]{1,20})?$``: ASCII digits with at most one dot, nothing else. Python's ``Decimal`` and
``int`` accept far more (signs, spaces, underscores, exponents, ``NaN``, ``Infinity``, and the digits of every
script, Arabic-Indic or fullwidth), so the text is matched before it is converted, never after. In order:

1. any character but ASCII digits and one inner dot: -1100 (Illegal characters, with the legal range);
2. more significant decimals than the asset's precision (8, Binance's ``baseAssetPrecision`` and
   ``quotePrecision``): -1111 (too much precision), never a rounding; trailing zeros are not precision;
3. more than 20 digits before or after the dot: -1100, as the legal range says.

Whatever passes holds at most 20 + 8 = 28 significant digits, which ``Decimal``'s default context (28 digits)
stores and compares exactly.

Every integer the ledger stores is a Postgres BIGINT (``shared/db/models.py``): ``INT64_MAX`` is the bound
that each derived amount (ticks, lots, notional units, atoms) is checked against before it is written.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from . import errors
from .domain import ASSET_SCALE, INT64_MAX
from .errors import ApiError

DECIMAL_CHARS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # [0-9] is ASCII only, unlike \d
MAX_DIGITS: Final = 20  # before and after the dot, as the legal range says
LEGAL_RANGE: Final = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"


def illegal_decimal(field: str) -> ApiError:
    return ApiError(
        errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{field}'; legal range is '{LEGAL_RANGE}'."
    )


def too_precise(field: str) -> ApiError:
    return ApiError(errors.BAD_PRECISION, f"Parameter '{field}' has too much precision.")


def parse_amount(text: str, field: str, decimals: int = ASSET_SCALE) -> Decimal:
    """The exact value of ``text``, or Binance's refusal: -1100 off the grammar, -1111 past ``decimals``."""
    if not DECIMAL_CHARS.fullmatch(text):
        raise illegal_decimal(field)
    whole, _, fraction = text.partition(".")
    if len(fraction.rstrip("0")) > decimals:
        raise too_precise(field)
    if len(whole) > MAX_DIGITS or len(fraction) > MAX_DIGITS:
        raise illegal_decimal(field)
    return Decimal(text)


def fits(value: int) -> bool:
    """Whether a non-negative amount can be stored in a BIGINT column."""
    return 0 <= value <= INT64_MAX
