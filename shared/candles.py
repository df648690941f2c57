"""Kline intervals, time zones and buckets, as Binance draws them. Pure: no I/O, integers in milliseconds.

A candle is identified by its open time. Which candle a trade at ``ts`` belongs to depends on the interval
and the time zone's offset (``timeZone`` on REST, ``@+08:00`` on streams): the interval is laid out on the
clock of that zone, while every time sent or returned stays UTC milliseconds. So a 1d candle at ``+08:00``
opens at 16:00 UTC, a 1h candle at ``+05:45`` at 15 minutes past each UTC hour. Layouts:

* fixed widths (1s .. 3d) count from the Unix epoch on the zone's clock (a 3d candle opens on the days
  since 1970-01-01 that divide by 3);
* ``1w`` opens on Mondays at 00:00 (the epoch was a Thursday);
* ``1M`` opens on the first of each calendar month.

Stored candles (``klines`` table, migration 0012) exist at ``LEVELS`` widths, aligned on UTC; a candle of
any interval and zone is the roll-up of the stored candles of the widest level that divides both its
layout and the zone's offset (``level_for``). With no trade in a candle's time, it still exists (from the
symbol's first trade to now): zero volume, every price the previous close, as Binance shows it.

One-second candles are kept for ``SECONDS_KEPT_MS`` (settlement prunes older ones, ``services/settlement/
retention.py``): at a trade every second a symbol stores 86,400 of them a day. The 1s interval starts at the
oldest second kept; every other interval rolls up minutes or wider, kept since the first trade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday after the epoch (a Thursday)
LEVELS = (SECOND_MS, MINUTE_MS, 15 * MINUTE_MS, HOUR_MS)  # stored widths, narrowest first; 15m for +05:45
SECONDS_KEPT_MS = 7 * DAY_MS  # how long stored 1s candles are kept: the 1s interval reaches back this far
MIN_OFFSET_MS, MAX_OFFSET_MS = -12 * HOUR_MS, 14 * HOUR_MS  # Binance: "strictly [-12:00 to +14:00] inclusive"
STREAM_OFFSET = "+08:00"  # the one zone Binance's kline streams take (``<symbol>@kline_<interval>@+08:00``)
_ZONE = re.compile(r"^([+-]?)([0-9]{1,2})(?::([0-9]{2}))?$")  # ASCII digits: \d would take any script's


@dataclass(frozen=True, slots=True)
class Interval:
    """One of Binance's kline intervals; ``width_ms`` is 0 for ``1M`` (months differ in length)."""

    name: str
    width_ms: int

    @property
    def monthly(self) -> bool:
        return self.width_ms == 0

    @property
    def weekly(self) -> bool:
        return self.width_ms == WEEK_MS


INTERVALS: dict[str, Interval] = {
    iv.name: iv
    for iv in (
        Interval("1s", SECOND_MS),
        Interval("1m", MINUTE_MS),
        Interval("3m", 3 * MINUTE_MS),
        Interval("5m", 5 * MINUTE_MS),
        Interval("15m", 15 * MINUTE_MS),
        Interval("30m", 30 * MINUTE_MS),
        Interval("1h", HOUR_MS),
        Interval("2h", 2 * HOUR_MS),
        Interval("4h", 4 * HOUR_MS),
        Interval("6h", 6 * HOUR_MS),
        Interval("8h", 8 * HOUR_MS),
        Interval("12h", 12 * HOUR_MS),
        Interval("1d", DAY_MS),
        Interval("3d", 3 * DAY_MS),
        Interval("1w", WEEK_MS),
        Interval("1M", 0),
    )
}


def parse_time_zone(raw: str) -> int:
    """A ``timeZone`` value (``0``, ``8``, ``-1:00``, ``05:45``, ``+08:00``) as an offset in ms.

    Raises ValueError naming the value and the range when it is not one."""
    m = _ZONE.match(raw)
    if m is None or (m.group(3) is not None and int(m.group(3)) >= 60):
        raise ValueError(f"timeZone {raw[:20]!r} is not hours or hours:minutes")
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    offset = (-1 if m.group(1) == "-" else 1) * minutes * MINUTE_MS
    if not MIN_OFFSET_MS <= offset <= MAX_OFFSET_MS:
        raise ValueError(f"timeZone {raw[:20]!r} outside [-12:00, +14:00]")
    return offset


def format_offset(offset_ms: int) -> str:
    """``+08:00`` for 8 hours: the suffix of a zoned kline stream."""
    sign = "-" if offset_ms < 0 else "+"
    minutes = abs(offset_ms) // MINUTE_MS
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _month_start(local_ms: int, months_ahead: int = 0) -> int:
    """The first of the month of ``local_ms`` (a time on the zone's clock), ``months_ahead`` months on."""
    d = datetime.fromtimestamp(local_ms // 1000, UTC)
    index = d.year * 12 + d.month - 1 + months_ahead
    return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()) * 1000


def bucket_open(ts: int, iv: Interval, offset_ms: int = 0) -> int:
    """Open time (UTC ms) of the candle of ``iv`` in the zone ``offset_ms`` that holds ``ts``."""
    local = ts + offset_ms
    if iv.monthly:
        return _month_start(local) - offset_ms
    anchor = MONDAY_MS if iv.weekly else 0
    return local - (local - anchor) % iv.width_ms - offset_ms


def next_open(open_time: int, iv: Interval, offset_ms: int = 0) -> int:
    """Open time of the candle after the one opening at ``open_time``; its close time is this minus 1."""
    if iv.monthly:
        return _month_start(open_time + offset_ms, 1) - offset_ms
    return open_time + iv.width_ms


def previous_open(open_time: int, iv: Interval, offset_ms: int = 0) -> int:
    """Open time of the candle before the one opening at ``open_time``."""
    if iv.monthly:
        return _month_start(open_time + offset_ms, -1) - offset_ms
    return open_time - iv.width_ms


def same_as_utc(iv: Interval, offset_ms: int) -> bool:
    """Whether ``iv``'s candles in the zone are UTC's (the offset is a whole number of them)."""
    return offset_ms == 0 or (not iv.monthly and not iv.weekly and offset_ms % iv.width_ms == 0)


def stream_kind(iv: Interval, offset_ms: int = 0) -> str:
    """The stream a zoned kline subscription reads: ``kline_6h@+08:00``, or UTC's ``kline_1h`` where the
    zone draws the same candles."""
    if same_as_utc(iv, offset_ms):
        return f"kline_{iv.name}"
    return f"kline_{iv.name}@{format_offset(offset_ms)}"


def level_for(iv: Interval, offset_ms: int = 0) -> int:
    """The widest stored level whose candles roll up exactly into ``iv``'s in the zone ``offset_ms``."""
    span = DAY_MS if iv.monthly or iv.weekly else iv.width_ms  # weeks and months are made of whole days
    return max(w for w in LEVELS if span % w == 0 and offset_ms % w == 0)


def opens(
    iv: Interval,
    offset_ms: int,
    *,
    first_trade: int | None,
    now: int,
    start: int | None,
    end: int | None,
    limit: int,
) -> list[int]:
    """Open times of the candles a klines request answers, oldest first.

    Candles exist from the one holding the symbol's first trade to the one holding ``now``. ``start`` and
    ``end`` bound the open times (``start <= open <= end``); with ``start`` the ``limit`` oldest of them
    are answered, else the ``limit`` newest (Binance's "most recent klines")."""
    top = now if end is None else min(end, now)
    if first_trade is None or limit <= 0 or (start is not None and start > top):
        return []  # also keeps a far-off start (up to 2**62) away from the calendar
    lo = bucket_open(first_trade, iv, offset_ms)
    hi = bucket_open(top, iv, offset_ms)
    out: list[int] = []
    if start is not None:
        t = bucket_open(max(start, lo), iv, offset_ms)
        if t < start:
            t = next_open(t, iv, offset_ms)
        while t <= hi and len(out) < limit:
            out.append(t)
            t = next_open(t, iv, offset_ms)
        return out
    t = hi
    while t >= lo and len(out) < limit:
        out.append(t)
        t = previous_open(t, iv, offset_ms)
    out.reverse()
    return out


@dataclass(slots=True)
class Candle:
    """One candle in integer units: prices in ticks, volumes in lots, quote volumes in notional units.

    ``first_trade``/``last_trade`` are trade ids (-1 when the candle holds no trade): they order two parts
    of one candle when they are combined, whatever order the parts come in."""

    open_time: int
    close_time: int  # the next candle's open time minus 1
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote_volume: int = 0
    trades: int = 0
    taker_buy_volume: int = 0
    taker_buy_quote: int = 0
    first_trade: int = -1
    last_trade: int = -1

    @classmethod
    def empty(cls, open_time: int, close_time: int, price: int) -> Candle:
        """A candle with no trade: every price ``price`` (the previous close), nothing traded."""
        return cls(open_time, close_time, price, price, price, price)

    def add(self, trade_id: int, price: int, lots: int, taker_buys: bool) -> None:
        """Take one trade; trades come in id order."""
        notional = price * lots
        if self.trades == 0:
            self.open = self.high = self.low = price
            self.first_trade = trade_id
        else:
            self.high = max(self.high, price)
            self.low = min(self.low, price)
        self.close = price
        self.volume += lots
        self.quote_volume += notional
        self.trades += 1
        if taker_buys:
            self.taker_buy_volume += lots
            self.taker_buy_quote += notional
        self.last_trade = trade_id

    def values(self) -> list[int]:
        """Every field in order, as Redis keeps a candle; ``Candle(*c.values())`` is a copy. Written out:
        ``dataclasses.astuple`` and ``replace`` were a fifth of market-data's CPU, called per trade batch."""
        return [
            self.open_time,
            self.close_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.trades,
            self.taker_buy_volume,
            self.taker_buy_quote,
            self.first_trade,
            self.last_trade,
        ]


def fill(iv: Interval, offset_ms: int, wanted: list[int], found: dict[int, Candle], before: int | None) -> list[Candle]:
    """The candles of ``wanted`` open times: the ones ``found`` (traded in), the others empty at the
    previous close (``before``: the close of the last traded candle before the first one wanted)."""
    out: list[Candle] = []
    last = before
    for t in wanted:
        c = found.get(t)
        if c is None:
            if last is None:  # nothing traded yet: cannot happen from the first trade's candle on
                continue
            c = Candle.empty(t, next_open(t, iv, offset_ms) - 1, last)
        out.append(c)
        last = c.close
    return out
