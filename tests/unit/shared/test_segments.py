"""The segment ring's pure rules against plain models: slot names, the schedule's epoch at an instant, the
time fence, a group's segment on assignment, and when a slot may be re-created."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import segments
from shared.segments import SLOTS, Schedule

TOPICS = st.sampled_from(segments.SEGMENTED)
EPOCHS = st.integers(min_value=0, max_value=10_000)


@given(TOPICS, EPOCHS)
def test_a_slot_name_reads_back_as_its_topic_and_slot(topic: str, epoch: int) -> None:
    slot = segments.slot_of(epoch)
    name = segments.slot_name(topic, slot)
    assert segments.parse_slot(name) == (topic, slot)
    assert (name == topic) == (slot == 0)  # slot 0 is the plain name: what a fleet without segments uses
    assert name in segments.slot_names(topic)
    assert segments.slot_of(epoch + SLOTS) == slot != segments.slot_of(epoch + 1)


def test_names_outside_the_ring_are_their_own_slot_zero() -> None:
    assert segments.parse_slot("order-requests.dlq") == ("order-requests.dlq", 0)
    assert segments.parse_slot("spot.fleet") == ("spot.fleet", 0)
    assert segments.parse_slot("trade-execution.s2") == ("trade-execution", 2)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    first = draw(EPOCHS)
    gaps = draw(st.lists(st.integers(min_value=0, max_value=5_000), max_size=10))
    start = draw(st.integers(min_value=0, max_value=10**12))
    schedule = Schedule()
    for i, gap in enumerate([0, *gaps]):
        start += gap
        schedule = schedule.with_start(first + i, start)
    return schedule


@given(schedules(), st.integers(min_value=0, max_value=10**12 + 60_000))
def test_the_epoch_at_an_instant_is_the_last_one_started(schedule: Schedule, now: int) -> None:
    started = [e for e, start in schedule.starts if start <= now]
    assert schedule.epoch_at(now) == (started[-1] if started else None)


@given(schedules())
def test_a_schedule_keeps_its_recent_epochs_in_order(schedule: Schedule) -> None:
    assert len(schedule.starts) <= segments.KEPT_EPOCHS
    assert Schedule.from_json(schedule.as_json()) == schedule
    for (e, _), (nxt, start) in zip(schedule.starts, schedule.starts[1:], strict=False):
        assert nxt == e + 1
        assert schedule.start_of(nxt) == start
    assert schedule.last is not None and schedule.start_of(schedule.last + 1) is None


@given(schedules())
def test_a_segment_never_starts_before_the_last_one(schedule: Schedule) -> None:
    last = schedule.starts[-1]
    with pytest.raises(ValueError, match="does not follow"):
        schedule.with_start(last[0], last[1] + 1)
    if last[1] > 0:
        with pytest.raises(ValueError, match="does not follow"):
            schedule.with_start(last[0] + 1, last[1] - 1)


@given(st.one_of(st.none(), EPOCHS), EPOCHS)
def test_a_group_reads_its_last_switch_or_the_logs_first_segment(recorded: int | None, base: int) -> None:
    epoch = segments.current_epoch(recorded, base)
    assert epoch >= base
    assert epoch == (recorded if recorded is not None and recorded >= base else base)


@given(
    st.integers(0, 30),
    st.integers(0, 10),
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.dictionaries(st.integers(0, 3), st.integers(0, 30), max_size=4)
    ),
    st.integers(1, 4),
)
def test_a_slot_is_recycled_only_when_every_reader_left_its_segment(
    next_epoch: int, base: int, positions: dict[str, dict[int, int]], partitions: int
) -> None:
    gone = next_epoch - SLOTS  # the segment whose slot ``next_epoch`` takes
    readers_past = all(max(by_p.get(p, base), base) > gone for by_p in positions.values() for p in range(partitions))
    model = gone < base or readers_past
    assert segments.recyclable(next_epoch, base, positions, partitions) == model
    assert segments.used_before(next_epoch, base) == (gone >= base)


def test_seal_headers_name_their_epoch() -> None:
    assert segments.seal_epoch(segments.seal_headers(41)) == 41
    assert segments.seal_epoch([("fleet", b"x")]) is None


@given(EPOCHS, st.integers(min_value=0, max_value=5), st.booleans())
def test_a_restarted_writer_resends_into_the_first_segment_it_has_not_sealed(
    reading: int, behind: int, crashed_while_sealing: bool
) -> None:
    """Model: a writer sealed every segment before the one it reads (from the log's first), and, when it
    crashed between sealing and recording its switch, the one it reads too."""
    base = max(reading - behind, 0)
    began_sealing = list(range(base, reading)) + ([reading] if crashed_while_sealing else [])
    resend_to = segments.unsealed(reading, max(began_sealing, default=None))
    assert resend_to not in began_sealing  # a reader may have passed a seal: never write behind one
    assert resend_to == min(e for e in range(reading, reading + 2) if e not in began_sealing)


@given(st.none() | st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12))
def test_a_consumer_polls_fast_only_in_the_window_after_its_segment_ended(ending: int | None, now: int) -> None:
    near = segments.switch_near(ending, now)
    assert near == (ending is not None and ending <= now < ending + segments.SWITCH_WINDOW_MS)
    assert segments.switch_near(now, now) and not segments.switch_near(None, now)
    assert not segments.switch_near(now + 1, now)  # not before: a segment that has not ended waits idle
