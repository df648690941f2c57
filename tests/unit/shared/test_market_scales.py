"""``Market``'s integer scales and formatting agree with the Decimal arithmetic they replace, on any grid.

The formatted prices and quantities are what clients parse (Binance's 8-decimal strings), so the integer
path must print exactly what ``f"{ticks * tick_size:.8f}"`` prints, including for ticks finer than an atom
(where it falls back to the Decimal).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from shared.domain import ATOM, Market, fmt_amount
from shared.postgres import DEFAULT_MARKETS

BASE = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
# tick and step sizes as exchanges list them: 10^-k, 2.5*10^-k, 5*10^-k
sizes = st.builds(
    lambda mantissa, exponent: Decimal(mantissa).scaleb(-exponent), st.sampled_from([1, 25, 5]), st.integers(0, 10)
)


@given(tick=sizes, step=sizes, ticks=st.integers(0, 10**15), lots=st.integers(0, 10**15))
def test_integer_scales_print_what_the_decimals_print(tick: Decimal, step: Decimal, ticks: int, lots: int) -> None:
    try:
        m = replace(BASE, tick_size=tick, step_size=step)
    except ValueError:
        return  # a grid the market refuses (a lot, or a tick times a lot, finer than an atom)
    assert m.atoms_per_lot == int(step / ATOM)
    assert m.atoms_per_nu == int(tick * step / ATOM)
    assert m.fmt_price(ticks) == f"{ticks * tick:.8f}"
    assert m.fmt_qty(lots) == f"{lots * step:.8f}"


def test_markets_compare_by_their_listed_fields_only() -> None:
    same = Market(
        **{
            f: getattr(BASE, f)
            for f in (
                "symbol",
                "base",
                "quote",
                "tick_size",
                "step_size",
                "min_price",
                "max_price",
                "min_qty",
                "max_qty",
                "min_notional",
            )
        }
    )
    assert same == BASE
    assert "atoms_per" not in repr(BASE)


@given(st.integers(-(10**20), 10**20))
def test_amounts_print_as_their_decimal_with_8_places(atoms: int) -> None:
    assert fmt_amount(atoms) == f"{Decimal(atoms).scaleb(-8):.8f}"
