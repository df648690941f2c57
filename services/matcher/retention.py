"""Which outbox entries a symbol's next commit removes: pure, no I/O.

An entry (a batch's outputs, ``(first seq, last seq)``) is removed once the broker acknowledged it and
settlement applied its last event (``settled``). Until then a broker that loses its log can be given the
batch again, so no fill reaches the book without reaching the balances. Should settlement stop for a long
time (a halt, an outage), the outbox would grow with the symbol's trading: past ``keep_at_most`` entries the
oldest acknowledged ones go anyway, as before this rule (``spot_matcher_outbox_released_unsettled_total``).
"""

from __future__ import annotations

from collections.abc import Iterable

Entry = tuple[int, int]  # (first seq, last seq) of an acknowledged batch's outputs

KEEP_AT_MOST = 2000  # acknowledged entries kept per symbol while settlement is behind


def release(acked: Iterable[Entry], settled: int, keep_at_most: int = KEEP_AT_MOST) -> tuple[list[Entry], list[Entry]]:
    """(entries to remove, entries to keep), each in seq order: removed, those whose last event is settled,
    then the oldest of the rest beyond ``keep_at_most``."""
    ordered = sorted(acked)
    done = [e for e in ordered if e[1] <= settled]
    kept = [e for e in ordered if e[1] > settled]
    over = max(len(kept) - keep_at_most, 0)
    return done + kept[:over], kept[over:]


def spans(firsts: list[int], committed_seq: int) -> list[Entry]:
    """The ``(first, last)`` of outbox entries known only by their first seqs (as a take-over loads them):
    each ends where the next begins, the last at the book's committed seq. A first below 1 (the legacy
    outbox) spans nothing: it is removed at the next commit whatever settlement did."""
    ordered = sorted(firsts)
    out: list[Entry] = []
    for i, first in enumerate(ordered):
        if first < 1:
            out.append((first, first))
            continue
        last = ordered[i + 1] - 1 if i + 1 < len(ordered) else committed_seq
        out.append((first, max(last, first)))
    return out
