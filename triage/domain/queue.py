"""Queue order, waiting time against the policy's target, and what the waiting-room board may show.

Pure functions of plain values (no Flask, no session), so a clinician can read the rules and the tests
can pin them as tables of cases.

Queue order (notice 141 §3: critical patients first, priority groups never lose service):
1. acuity: the emergency level 1-4 (1 first); every other stream is ungraded and sorts after level 4;
2. priority group (pregnant, newborn, child, elderly, dialysis, chemo/radiotherapy, psychiatric) first;
3. the slot's start time for a booked patient, else the arrival time: a patient who kept to their
   booked slot is not overtaken by one who came early without a booking;
4. the row id, so the order is total and stable.
The encounter stores these as `acuity_sort`, `priority_sort` and `order_at` (indexed together with
state and stream by `ix_encounter_queue`), so the database returns a queue in this order directly.
"""

from __future__ import annotations

import enum
import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from triage.domain.policy import Stream, StreamPolicy

# States in which an encounter belongs to its stream's queue screen (waiting, called, being seen).
LIVE_STATES: tuple[str, ...] = ("waiting", "called", "in_consultation")
# Sort value of a stream that is not graded by acuity: after emergency level 4.
UNGRADED = 5
PRIORITY_GROUP = 0
NO_PRIORITY = 1
# A wait is "due soon" from this share of its target on, so staff can act before it is breached.
DUE_SOON_SHARE = 0.75
EMERGENCY_LEVELS = (1, 2, 3, 4)

QueueKey = tuple[int, int, datetime, int]


def acuity_sort(stream: Stream, cn_level: int | None) -> int:
    """The acuity sort value: the emergency level (1 most urgent), else ungraded (after level 4)."""
    if stream is Stream.EMERGENCY and cn_level in EMERGENCY_LEVELS:
        assert cn_level is not None
        return cn_level
    return UNGRADED


def priority_sort(flags: Iterable[str]) -> int:
    """0 for a patient in any priority group, 1 otherwise: priority changes the order, never the stream."""
    return PRIORITY_GROUP if any(flag for flag in flags) else NO_PRIORITY


def queue_key(*, acuity: int, priority: int, order_at: datetime, tiebreak: int) -> QueueKey:
    """The sort key of one queue entry: acuity, priority group, slot time or arrival, then row id."""
    return (acuity, priority, order_at, tiebreak)


class WaitStatus(enum.StrEnum):
    """How a patient's wait compares with the target for their acuity."""

    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"

    def label(self, lang: str) -> str:
        """Label in the given language."""
        zh, en = _WAIT_LABELS[self]
        return en if lang == "en" else zh


_WAIT_LABELS = {
    WaitStatus.ON_TIME: ("按时", "On time"),
    WaitStatus.DUE_SOON: ("即将超时", "Due soon"),
    WaitStatus.OVERDUE: ("已超时", "Overdue"),
}


@dataclass(frozen=True, slots=True)
class Wait:
    """One patient's wait: minutes waited, the target for their acuity and how they compare."""

    waited_minutes: int
    target_minutes: int
    status: WaitStatus
    running: bool  # False once the patient has been called: the wait is over

    @property
    def overdue(self) -> bool:
        """Whether the target has been passed."""
        return self.status is WaitStatus.OVERDUE

    @property
    def remaining_minutes(self) -> int:
        """Minutes left before the target (0 when passed)."""
        return max(0, self.target_minutes - self.waited_minutes)


def wait_status(waited: timedelta, target_minutes: int) -> WaitStatus:
    """Compare a wait with its target: overdue once past it (a target of 0 means: at once)."""
    target = timedelta(minutes=target_minutes)
    if waited > target:
        return WaitStatus.OVERDUE
    if target_minutes > 0 and waited >= target * DUE_SOON_SHARE:
        return WaitStatus.DUE_SOON
    return WaitStatus.ON_TIME


def measure_wait(*, queued_at: datetime | None, called_at: datetime | None, now: datetime,
                 target_minutes: int) -> Wait:
    """The wait from ticket to call (or to `now` while still waiting) against `target_minutes`."""
    if queued_at is None:
        return Wait(0, target_minutes, WaitStatus.ON_TIME, running=False)
    running = called_at is None
    end = now if running else called_at
    assert end is not None
    waited = max(end - queued_at, timedelta(0))
    # Once called, the patient is no longer waiting: the wait is shown, but never as a live breach.
    status = wait_status(waited, target_minutes) if running else WaitStatus.ON_TIME
    return Wait(int(waited.total_seconds() // 60), target_minutes, status, running)


def wait_target(policy: StreamPolicy, cn_level: int | None) -> int:
    """Target minutes from ticket to call for this stream and acuity (emergency: 1 at once, 2 in 10...)."""
    return policy.wait_target(cn_level)


def estimated_wait_minutes(ahead: int, consultation_minutes: int, rooms: int = 1) -> int:
    """A plain estimate for the patient: the people ahead times a consultation, shared between rooms."""
    if ahead <= 0:
        return 0
    return math.ceil(ahead * consultation_minutes / max(rooms, 1))


def _is_cjk(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"))


def mask_name(name: str | None) -> str:
    """A name a waiting room may see: 张三明 -> 张*明, 张三 -> 张*, John Smith -> J*** S.

    One asterisk (Chinese) or three (Latin script) whatever the length, so the mask does not reveal it.
    """
    text = " ".join((name or "").split())
    if not text:
        return ""
    if any(_is_cjk(c) for c in text):
        chars = [c for c in text if not c.isspace()]
        if len(chars) <= 2:
            return chars[0] + "*"
        return chars[0] + "*" + chars[-1]
    words = text.split(" ")
    first = words[0][0].upper() + "***"
    if len(words) == 1:
        return first
    return f"{first} {words[-1][0].upper()}."


_PRIORITY_LABELS = {
    "pregnant": ("孕产妇", "Pregnant"),
    "newborn": ("新生儿", "Newborn"),
    "child": ("儿童", "Child"),
    "elderly": ("老年人", "Elderly"),
    "dialysis": ("透析", "Dialysis"),
    "chemo_radiotherapy": ("放化疗", "Chemo/radiotherapy"),
    "psychiatric": ("精神疾病", "Psychiatric illness"),
    "special_drugs": ("特殊药品", "Special medicines"),
}


def priority_label(flag: str, lang: str) -> str:
    """Short label of a priority-group flag for staff screens (the code if unknown)."""
    zh, en = _PRIORITY_LABELS.get(flag, (flag, flag))
    return en if lang == "en" else zh
