"""Outgoing messages to patients through ONE interface (141 §5, 004 §4.5: keep patients informed).

Use cases call `queue_message(...)` inside their transaction: it records a `Notification` row
(status "pending", the phone masked, secrets such as a status link redacted) so a rolled-back booking
never sends a message. They commit with `commit_and_deliver(...)`, which then hands each message to
the configured `Notifier` and records whether it went out.

Which notifier runs is configuration (`NOTIFIER`, environment `TRIAGE_NOTIFIER`):

- ``log`` (default): writes the message to the application log with the phone masked. Nothing leaves
  the building; the Notification rows show staff what the patient was told.
- ``module.path:factory``: an SMS (or other) gateway. The factory receives the Flask config and returns
  an object with ``channel: str`` and ``send(phone, body) -> None`` that raises on failure. This is the
  seam for an SMS provider: write the adapter in its own module and point the setting at it.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

from triage.models import Notification, utcnow

log = logging.getLogger(__name__)

PENDING = "pending"
SENT = "sent"
LOGGED = "logged"
FAILED = "failed"
REDACTED = "[…]"


class Notifier(Protocol):
    """Something that can deliver a text message to a phone number."""

    channel: str

    def send(self, phone: str, body: str) -> None:
        """Deliver `body` to `phone` (full number); raise on failure."""


class LoggingNotifier:
    """Delivers by writing to the application log, with the phone masked (the default)."""

    channel = "log"

    def send(self, phone: str, body: str) -> None:
        """Log the message instead of sending it."""
        log.info("message to %s: %s", mask_phone(phone), body)


def mask_phone(phone: str | None) -> str:
    """A phone number with its middle hidden: 13800138000 -> 138****8000."""
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    for prefix in ("0086", "86"):  # a mainland mobile written with its country code
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11 and digits[len(prefix)] == "1":
            digits = digits[len(prefix):]
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) <= 7:
        return "*" * (len(digits) - 4) + digits[-4:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


@dataclass(frozen=True)
class Outgoing:
    """A queued message: its recorded row and the full text (which may hold a secret link)."""

    row: Notification
    phone: str
    body: str


def queue_message(
    session: Session,
    *,
    phone: str,
    body: str,
    encounter_id: int | None,
    channel: str,
    redact: Iterable[str] = (),
) -> Outgoing:
    """Record a message in the caller's transaction (phone masked, secrets redacted); send it after commit."""
    recorded = body
    for secret in redact:
        if secret:
            recorded = recorded.replace(secret, REDACTED)
    row = Notification(encounter_id=encounter_id, at=utcnow(), channel=channel,
                       recipient=mask_phone(phone)[:32], body=recorded, status=PENDING)
    session.add(row)
    return Outgoing(row=row, phone=phone, body=body)


def commit_and_deliver(session: Session, notifier: Notifier, messages: Iterable[Outgoing | None]) -> None:
    """Commit the use case with its queued messages, then send them and record each outcome.

    A failed delivery never undoes the use case: it is recorded as failed. The log notifier cannot fail and
    reaches no patient, so its messages are recorded as logged in the use case's own transaction, and the
    log lines (the recorded text, secret links redacted) are written after the commit.
    """
    queued = [message for message in messages if message is not None]
    if notifier.channel == "log":
        for message in queued:
            message.row.status = LOGGED
            session.add(message.row)
        session.commit()
        for message in queued:
            notifier.send(message.phone, message.row.body)
        return
    session.commit()
    for message in queued:
        try:
            notifier.send(message.phone, message.body)
        except Exception:
            log.exception("could not deliver a message to %s through %s",
                          mask_phone(message.phone), notifier.channel)
            message.row.status = FAILED
        else:
            message.row.status = SENT
        session.add(message.row)
    if queued:
        session.commit()


NotifierFactory = Callable[[Mapping[str, Any]], Notifier]


def build_notifier(config: Mapping[str, Any]) -> Notifier:
    """The notifier named by config["NOTIFIER"] (or $TRIAGE_NOTIFIER): "log" or "module:factory"."""
    setting = str(config.get("NOTIFIER") or os.environ.get("TRIAGE_NOTIFIER") or "log").strip()
    if setting == "log":
        return LoggingNotifier()
    module_name, _, attribute = setting.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"NOTIFIER must be 'log' or 'module.path:factory', got {setting!r}")
    factory: NotifierFactory = getattr(importlib.import_module(module_name), attribute)
    notifier = factory(config)
    if not callable(getattr(notifier, "send", None)) or not isinstance(getattr(notifier, "channel", None), str):
        raise ValueError(f"{setting} must return an object with a `channel` name and a `send(phone, body)` method")
    return notifier


def notifier_for(app: Any) -> Notifier:
    """The application's notifier, built once from its config (fails at first use when misconfigured)."""
    notifier: Notifier | None = app.extensions.get("triage.notifier")
    if notifier is None:
        notifier = build_notifier(app.config)
        app.extensions["triage.notifier"] = notifier
    return notifier
