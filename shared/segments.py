"""A ring of segment topics, so the local broker's partitions stay short: the pure rules.

Tansu (the local broker) keeps every record in memory and ignores retention; deleting a topic is the only
way to free it, and a re-created topic keeps its subscribers without a rebalance. So each logical data
topic ``T`` has ``SLOTS`` physical topics (slot 0 is ``T`` itself, so a fleet with segments off, or at
epoch 0, writes where it always did; slots 1 and 2 are ``T.s1`` and ``T.s2``), every consumer subscribes
to all of them once, and the log epoch ``e`` lives in slot ``e % SLOTS``. When every group has moved past
segment ``e + 1 - SLOTS`` its slot is deleted and re-created empty for segment ``e + 1``
(``shared.segment_keeper``). ``kafka_segment_s = 0`` keeps one slot and one epoch: today's behaviour.

How a consumer knows a partition's segment is complete:

- ``order-requests`` has many writers: segment ``e + 1`` starts at a published instant (``Schedule``), each
  producer moves to it then and, once its sends to ``e`` are acknowledged, says so in its lease
  (``shared.segment_fence``); the consumer completes ``e`` once every live producer has sealed it and it has
  read the partition to its end as listed after that.
- the other data topics have one writer per partition at a time, which ends its segment with a seal record
  (an empty value with the ``SEAL_HEADER``) once everything it wrote for that segment is acknowledged.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .messages import Topic

# Seconds per segment on the local broker (``spot up``, the tests, the benches): Tansu keeps every record in memory
# and its fetches slow with what a partition holds, so the ring keeps each partition to about three segments of
# records (measured: Tansu's RSS flat at ~70 MB where it grew ~0.8 MB/s at 200 orders/s). Shorter segments keep
# fetches cheaper still: in the soak at 300 requests/s (``bench soak``), 10 s segments gave confirmation p99
# 122-146 ms a minute and 2,364 confirmations over 100 ms in 6 minutes; 5 s gave 64-94 ms and 217 in 4, half
# of them in the second a segment starts (the switch). A broker that honours retention (MSK, apache/kafka)
# runs with 0: one topic per data topic, one epoch.
LOCAL_SEGMENT_S = 5
SLOTS = 3  # physical topics per logical topic: the segment being read, the one being written, one spare
LEAD_MS = 1_000  # a new segment starts this long after it is published, so every producer has heard of it
REFRESH_MS = 250  # how often producers renew their lease and read the schedule
LEASE_MS = 3_000  # a producer of order-requests not heard of for this long is not waited for
FORGET_MS = 60_000  # and one not heard of for this long is removed from the registry
SEAL_HEADER = "spot-seal"
KEPT_EPOCHS = 2 * SLOTS  # start times the published schedule keeps
# While a partition's segment is about to complete (its seal read, or the next segment of order-requests
# started), its consumer polls this often, not at its idle timeout: a service that commits a batch only when
# the next poll comes back (the processor's pipelined acks) completes the segment then, and the records of the
# next segment wait for it. An idle poll of 100 ms made order-requests' switch 40-185 ms late at 300 orders/s,
# and the confirmations of those moments were most of the run's slowest. Only for ``SWITCH_WINDOW_MS`` after
# that instant: a producer whose lease runs out later is not waited for at that pace.
SWITCH_POLL_MS = 2
SWITCH_WINDOW_MS = 1_000

SEGMENTED: tuple[str, ...] = (
    Topic.ORDER_REQUESTS.value,
    Topic.VALIDATED_ORDERS.value,
    Topic.MATCHED_EVENTS.value,
    Topic.TRADE_EXECUTION.value,
)
FENCED = Topic.ORDER_REQUESTS.value  # many writers: completed by their leases' seals, not by a seal record

# Every consumer group of each segmented topic (the group name, before the run's topic suffix): a slot is
# recycled only once all of them have moved past the segment it holds.
READERS: Mapping[str, tuple[str, ...]] = {
    Topic.ORDER_REQUESTS.value: ("order-processor",),
    Topic.VALIDATED_ORDERS.value: ("matcher",),
    Topic.MATCHED_EVENTS.value: ("settlement", "market-data"),
    Topic.TRADE_EXECUTION.value: ("market-data", "trade-archiver"),
}


def slot_of(epoch: int, slots: int = SLOTS) -> int:
    return epoch % slots


def slot_name(topic: str, slot: int) -> str:
    """The physical name of a slot of a logical topic (before the run's topic suffix)."""
    return topic if slot == 0 else f"{topic}.s{slot}"


def slot_names(topic: str, slots: int = SLOTS) -> list[str]:
    return [slot_name(topic, s) for s in range(slots)]


def parse_slot(name: str) -> tuple[str, int]:
    """(logical topic, slot) of a physical name (without the run's suffix); a plain name is slot 0."""
    head, dot, tail = name.rpartition(".s")
    if dot and tail.isdigit() and head in SEGMENTED:
        return head, int(tail)
    return name, 0


def seal_epoch(headers: Iterable[tuple[str, bytes]]) -> int | None:
    """The epoch a seal record closes, or None for an ordinary record."""
    for name, value in headers:
        if name == SEAL_HEADER:
            return int(value)
    return None


def seal_headers(epoch: int) -> list[tuple[str, bytes]]:
    return [(SEAL_HEADER, str(epoch).encode())]


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each recent segment started (ms since the epoch, wall clock), ascending by both epoch and time."""

    starts: tuple[tuple[int, int], ...] = ()  # (epoch, start_ms)

    def epoch_at(self, now_ms: int) -> int | None:
        """The segment a record produced at ``now_ms`` belongs to: the last one whose start has passed."""
        i = bisect_right([start for _, start in self.starts], now_ms)
        return self.starts[i - 1][0] if i else None

    def start_of(self, epoch: int) -> int | None:
        for e, start in self.starts:
            if e == epoch:
                return start
        return None

    @property
    def last(self) -> int | None:
        return self.starts[-1][0] if self.starts else None

    def with_start(self, epoch: int, start_ms: int) -> Schedule:
        """The schedule with ``epoch`` starting at ``start_ms``, keeping the last ``KEPT_EPOCHS``."""
        if self.starts and (epoch <= self.starts[-1][0] or start_ms < self.starts[-1][1]):
            raise ValueError(f"segment {epoch} at {start_ms} does not follow {self.starts[-1]}")
        return Schedule((*self.starts, (epoch, start_ms))[-KEPT_EPOCHS:])

    def as_json(self) -> list[list[int]]:
        return [[e, s] for e, s in self.starts]

    @classmethod
    def from_json(cls, doc: Sequence[Sequence[int]]) -> Schedule:
        return cls(tuple((int(e), int(s)) for e, s in doc))


def switch_near(ending_ms: int | None, now_ms: int, window_ms: int = SWITCH_WINDOW_MS) -> bool:
    """Whether a segment's end (the next one's start, or when its seal was read) passed within ``window_ms``:
    its consumer then polls at ``SWITCH_POLL_MS``."""
    return ending_ms is not None and 0 <= now_ms - ending_ms < window_ms


def current_epoch(recorded: int | None, base: int) -> int:
    """A group's segment on a partition: the one its last switch recorded, or the log's first for a group
    that never switched (it starts at the oldest live segment, which the keeper holds for it)."""
    return base if recorded is None or recorded < base else recorded


def recyclable(next_epoch: int, base: int, positions: Mapping[str, Mapping[int, int]], partitions: int) -> bool:
    """Whether segment ``next_epoch`` may start: every group (``positions``: group -> partition -> its
    segment) has moved past ``next_epoch - SLOTS``, the segment whose slot it takes over."""
    oldest_kept = next_epoch - SLOTS + 1
    if oldest_kept <= base:
        return True
    return all(
        current_epoch(by_partition.get(p), base) >= oldest_kept
        for by_partition in positions.values()
        for p in range(partitions)
    )


def used_before(next_epoch: int, base: int) -> bool:
    """Whether the slot ``next_epoch`` takes over held a segment of this log (it is re-created empty)."""
    return next_epoch - SLOTS >= base


def unsealed(reading: int, sealed: int | None) -> int:
    """The segment a writer that reads ``reading`` may still add records to on a partition: the next one
    once it began sealing ``reading`` (its readers may have passed the seal; that next segment's slot was
    re-created before the writer could complete ``reading``, which takes the next one's start)."""
    return reading + 1 if sealed is not None and sealed >= reading else reading
