"""Queue order, waiting against the policy's targets, estimates, and the names a waiting room may see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.domain.policy import Policy, Stream
from triage.domain.queue import (
    LIVE_STATES,
    NO_PRIORITY,
    PRIORITY_GROUP,
    UNGRADED,
    WaitStatus,
    acuity_sort,
    estimated_wait_minutes,
    mask_name,
    measure_wait,
    priority_label,
    priority_sort,
    queue_key,
    wait_status,
    wait_target,
)

T0 = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("stream", "level", "expected"), [
    (Stream.EMERGENCY, 1, 1),
    (Stream.EMERGENCY, 2, 2),
    (Stream.EMERGENCY, 4, 4),
    (Stream.EMERGENCY, None, UNGRADED),
    (Stream.FEVER, None, UNGRADED),
    (Stream.FEVER, 2, UNGRADED),  # a level belongs to emergency only
    (Stream.GENERAL, None, UNGRADED),
    (Stream.CHRONIC, None, UNGRADED),
])
def test_acuity_sort_is_the_emergency_level_and_everything_else_comes_after_level_4(
        stream: Stream, level: int | None, expected: int) -> None:
    assert acuity_sort(stream, level) == expected
    assert UNGRADED > 4


@pytest.mark.parametrize(("flags", "expected"), [
    ((), NO_PRIORITY),
    (("",), NO_PRIORITY),
    (("elderly",), PRIORITY_GROUP),
    (("pregnant", "child"), PRIORITY_GROUP),
])
def test_any_priority_group_sorts_first(flags: tuple[str, ...], expected: int) -> None:
    assert priority_sort(flags) == expected


def test_queue_order_is_acuity_then_priority_then_slot_or_arrival_then_id() -> None:
    early, late = T0, T0 + timedelta(minutes=30)
    entries = {
        "level3 late": queue_key(acuity=3, priority=NO_PRIORITY, order_at=late, tiebreak=1),
        "level2 late": queue_key(acuity=2, priority=NO_PRIORITY, order_at=late, tiebreak=2),
        "ungraded elderly late": queue_key(acuity=UNGRADED, priority=PRIORITY_GROUP, order_at=late, tiebreak=3),
        "ungraded early": queue_key(acuity=UNGRADED, priority=NO_PRIORITY, order_at=early, tiebreak=4),
        "ungraded late id 5": queue_key(acuity=UNGRADED, priority=NO_PRIORITY, order_at=late, tiebreak=5),
        "ungraded late id 6": queue_key(acuity=UNGRADED, priority=NO_PRIORITY, order_at=late, tiebreak=6),
    }
    assert sorted(entries, key=entries.__getitem__) == [
        "level2 late", "level3 late", "ungraded elderly late", "ungraded early", "ungraded late id 5",
        "ungraded late id 6"]


def test_live_states_are_the_ones_a_clinic_screen_shows() -> None:
    assert LIVE_STATES == ("waiting", "called", "in_consultation")


@pytest.mark.parametrize(("level", "minutes"), [(1, 0), (2, 10), (3, 30), (4, 240)])
def test_emergency_targets_come_from_the_policy(policy: Policy, level: int, minutes: int) -> None:
    assert wait_target(policy.streams[Stream.EMERGENCY], level) == minutes


@pytest.mark.parametrize(("stream", "minutes"), [(Stream.FEVER, 30), (Stream.GENERAL, 60), (Stream.CHRONIC, 60)])
def test_ungraded_streams_have_one_target(policy: Policy, stream: Stream, minutes: int) -> None:
    assert wait_target(policy.streams[stream], None) == minutes


@pytest.mark.parametrize(("waited", "target", "expected"), [
    (timedelta(0), 0, WaitStatus.ON_TIME),              # level 1: at once...
    (timedelta(seconds=1), 0, WaitStatus.OVERDUE),      # ...and any wait at all is a breach
    (timedelta(minutes=7), 10, WaitStatus.ON_TIME),
    (timedelta(minutes=7, seconds=30), 10, WaitStatus.DUE_SOON),
    (timedelta(minutes=10), 10, WaitStatus.DUE_SOON),   # exactly on target is not yet over it
    (timedelta(minutes=10, seconds=1), 10, WaitStatus.OVERDUE),
    (timedelta(minutes=22), 30, WaitStatus.ON_TIME),
    (timedelta(minutes=23), 30, WaitStatus.DUE_SOON),
    (timedelta(minutes=31), 30, WaitStatus.OVERDUE),
])
def test_wait_status_against_target(waited: timedelta, target: int, expected: WaitStatus) -> None:
    assert wait_status(waited, target) is expected


def test_a_running_wait_counts_to_now() -> None:
    wait = measure_wait(queued_at=T0, called_at=None, now=T0 + timedelta(minutes=12, seconds=59), target_minutes=10)
    assert (wait.waited_minutes, wait.target_minutes, wait.status, wait.running) == (12, 10, WaitStatus.OVERDUE, True)
    assert wait.overdue and wait.remaining_minutes == 0


def test_a_called_patient_is_no_longer_waiting_and_never_flagged_overdue() -> None:
    wait = measure_wait(queued_at=T0, called_at=T0 + timedelta(minutes=45), now=T0 + timedelta(hours=2),
                        target_minutes=10)
    assert (wait.waited_minutes, wait.running, wait.overdue) == (45, False, False)


def test_no_ticket_yet_means_no_wait() -> None:
    wait = measure_wait(queued_at=None, called_at=None, now=T0, target_minutes=30)
    assert (wait.waited_minutes, wait.status, wait.remaining_minutes) == (0, WaitStatus.ON_TIME, 30)


def test_a_clock_skew_never_gives_a_negative_wait() -> None:
    wait = measure_wait(queued_at=T0, called_at=None, now=T0 - timedelta(minutes=1), target_minutes=5)
    assert wait.waited_minutes == 0


@pytest.mark.parametrize(("ahead", "minutes", "rooms", "expected"), [
    (0, 10, 1, 0), (-1, 10, 1, 0), (1, 10, 1, 10), (3, 15, 1, 45), (3, 10, 2, 15), (1, 8, 3, 3), (2, 10, 0, 20),
])
def test_estimated_wait(ahead: int, minutes: int, rooms: int, expected: int) -> None:
    assert estimated_wait_minutes(ahead, minutes, rooms) == expected


@pytest.mark.parametrize(("name", "masked"), [
    ("张三明", "张*明"),
    ("张三", "张*"),
    ("欧阳小明", "欧*明"),          # one asterisk whatever the length: the mask does not reveal it
    ("买买提·艾力", "买*力"),
    ("王", "王*"),
    (" 李 四 ", "李*"),
    ("John Smith", "J*** S."),
    ("john smith", "J*** S."),
    ("Mary Ann Smith-Jones", "M*** S."),
    ("Madonna", "M***"),
    ("", ""),
    ("   ", ""),
    (None, ""),
])
def test_board_names_are_masked(name: str | None, masked: str) -> None:
    assert mask_name(name) == masked


def test_a_masked_name_never_contains_the_full_name() -> None:
    for name in ("张三明", "John Smith", "欧阳小明"):
        assert name not in mask_name(name)
        assert name.split()[-1][1:] not in mask_name(name)


@pytest.mark.parametrize(("flag", "zh", "en"), [
    ("pregnant", "孕产妇", "Pregnant"), ("elderly", "老年人", "Elderly"), ("unknown", "unknown", "unknown")])
def test_priority_labels(flag: str, zh: str, en: str) -> None:
    assert (priority_label(flag, "zh"), priority_label(flag, "en")) == (zh, en)


def test_wait_status_labels_are_bilingual() -> None:
    assert WaitStatus.OVERDUE.label("zh") == "已超时" and WaitStatus.OVERDUE.label("en") == "Overdue"
