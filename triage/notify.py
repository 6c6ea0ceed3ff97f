"""Outgoing messages to patients through ONE interface (141 §5, 004 §4.5: keep patients informed).

Use cases build their messages with `queue_message(...)` and commit with `commit_and_deliver(...)`, which
records a `Notification` row for each in the use case's transaction (the phone masked, secrets such as a
status link redacted), so a rolled-back booking never sends a message; after the commit it hands each
message to the configured `Notifier` and records whether it went out.

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

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session

from triage.db import run
from triage.models import Notification, utcnow

NOTIFICATION = Notification.__table__  # type: ignore[attr-defined]

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


@dataclass
class Outgoing:
    """A message to send: what is recorded (phone masked, secrets redacted) and the full text, once recorded."""

    encounter_id: int | None
    channel: str
    recipient: str  # masked
    recorded: str
    phone: str
    body: str
    id: int | None = None


_RECORD = insert(NOTIFICATION).returning(NOTIFICATION.c.id)
_STATUS = update(NOTIFICATION).where(NOTIFICATION.c.id == bindparam("b_id")).values(status=bindparam("b_status"))


def queue_message(
    *,
    phone: str,
    body: str,
    encounter_id: int | None,
    channel: str,
    redact: Iterable[str] = (),
) -> Outgoing:
    """A message of the caller's use case (phone masked, secrets redacted); `commit_and_deliver` records it in
    the use case's transaction and sends it after the commit."""
    recorded = body
    for secret in redact:
        if secret:
            recorded = recorded.replace(secret, REDACTED)
    return Outgoing(encounter_id=encounter_id, channel=channel, recipient=mask_phone(phone)[:32], recorded=recorded,
                    phone=phone, body=body)


def commit_and_deliver(session: Session, notifier: Notifier, messages: Iterable[Outgoing | None]) -> None:
    """Record the messages in the use case's transaction and commit it, then send them and record each outcome.

    A failed delivery never undoes the use case: it is recorded as failed. The log notifier cannot fail and
    reaches no patient, so its messages are recorded as logged in the use case's own transaction, and the
    log lines (the recorded text, secret links redacted) are written after the commit.
    """
    queued = [message for message in messages if message is not None]
    logged = notifier.channel == "log"
    conn = session.connection()
    now = utcnow()
    for message in queued:
        message.id = run(conn, _RECORD, {
            "encounter_id": message.encounter_id, "at": now, "channel": message.channel,
            "recipient": message.recipient, "body": message.recorded, "status": LOGGED if logged else PENDING,
        }).scalar_one()
    session.commit()
    if logged:
        for message in queued:
            notifier.send(message.phone, message.recorded)
        return
    outcomes = []
    for message in queued:
        try:
            notifier.send(message.phone, message.body)
        except Exception:
            log.exception("could not deliver a message to %s through %s",
                          mask_phone(message.phone), notifier.channel)
            outcomes.append({"b_id": message.id, "b_status": FAILED})
        else:
            outcomes.append({"b_id": message.id, "b_status": SENT})
    if outcomes:
        run(session.connection(), _STATUS, outcomes)
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
