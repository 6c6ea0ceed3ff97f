"""Use cases: one function, one commit, one audit row per state change.

`core` holds the one transition function and its effects; each area of the product has its own
module beside it (staff accounts, online pre-screening, on-site triage and queues, ...).
"""

from triage.services.core import (
    EFFECTS,
    LIVE_QUEUE_STATES,
    PATIENT,
    SYSTEM,
    Actor,
    Facts,
    apply_event,
    ensure_slots,
    format_reference,
    history,
    lock_encounter,
    log_entry,
    new_encounter,
    next_ticket_number,
    normalize_reference,
    queue_position,
    transition,
)
from triage.services.staff import authenticate, create_user, digest, get_user, issue_token, user_for_token
from triage.services.store import new_reference

__all__ = [
    "EFFECTS",
    "LIVE_QUEUE_STATES",
    "PATIENT",
    "SYSTEM",
    "Actor",
    "Facts",
    "apply_event",
    "authenticate",
    "create_user",
    "digest",
    "ensure_slots",
    "format_reference",
    "get_user",
    "history",
    "issue_token",
    "lock_encounter",
    "log_entry",
    "new_encounter",
    "new_reference",
    "next_ticket_number",
    "normalize_reference",
    "queue_position",
    "transition",
    "user_for_token",
]
