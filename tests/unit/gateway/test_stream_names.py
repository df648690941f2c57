"""Stream names to pub/sub channels, as Binance names its depth streams: two speeds of the diff stream and of
the partial books, any ``@<n>ms`` taken; an unknown name or symbol is no channel."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.ws import channel_of
from shared import redis as sredis

CHANNELS = sredis.Channels("")
GW = cast(Any, SimpleNamespace(hub=SimpleNamespace(channels=CHANNELS), markets={"BTCUSDT": object()}))


def _kind(stream: str) -> str | None:
    channel = channel_of(stream, GW)
    return None if channel is None else channel.removeprefix("stream:btcusdt@")


def test_depth_streams_at_binances_two_speeds() -> None:
    assert _kind("btcusdt@depth") == "depth"
    assert _kind("btcusdt@depth@1000ms") == "depth"
    assert _kind("btcusdt@depth@100ms") == "depth@100ms"
    for levels in (5, 10, 20):
        assert _kind(f"btcusdt@depth{levels}") == f"depth{levels}"
        assert _kind(f"btcusdt@depth{levels}@1000ms") == f"depth{levels}"
        assert _kind(f"btcusdt@depth{levels}@100ms") == f"depth{levels}@100ms"
    for unknown in ("btcusdt@depth15", "btcusdt@depth5@", "btcusdt@depth@1234567ms", "ethxyz@depth", "btcusdt@depth0"):
        assert channel_of(unknown, GW) is None, unknown


@given(st.integers(0, 999_999))
def test_any_update_speed_is_one_of_the_two(ms: int) -> None:
    assert _kind(f"btcusdt@depth@{ms}ms") == ("depth@100ms" if ms < 1000 else "depth")
    assert _kind(f"btcusdt@depth20@{ms}ms") == ("depth20@100ms" if ms < 1000 else "depth20")
