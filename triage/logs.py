"""Logging that never writes personal data: phone numbers and secret link tokens are masked.

Masking happens when a record's message is built, so it covers every logger and handler
(the app's, SQLAlchemy's, gunicorn's access log) without each of them having to remember.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# Mainland mobile numbers and any other run of 7+ digits (landlines, ID numbers): keep the last 4.
_DIGITS = re.compile(r"(?<!\d)(\d{3})\d{0,}(\d{4})(?!\d)")
# Secret URL tokens (status links: /s/<token>) and bearer tokens.
_TOKENS = re.compile(r"(/s/|[Bb]earer\s+|trg_)([A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{8,}")


def mask(text: str) -> str:
    """Mask phone-like digit runs and secret tokens in `text`."""
    text = _TOKENS.sub(lambda m: f"{m.group(1)}{m.group(2)}…", text)
    return _DIGITS.sub(lambda m: f"{m.group(1)}****{m.group(2)}" if len(m.group(0)) >= 7 else m.group(0), text)


class MaskedLogRecord(logging.LogRecord):
    """A log record whose formatted message is masked."""

    def getMessage(self) -> str:
        """The message with personal data masked."""
        return mask(super().getMessage())


def install() -> None:
    """Make every log record in this process a masked one (idempotent)."""
    if logging.getLogRecordFactory() is not _factory:
        logging.setLogRecordFactory(_factory)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    return MaskedLogRecord(*args, **kwargs)
