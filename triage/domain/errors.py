"""Errors raised by the domain, the workflow and the services; mapped to HTTP in one place."""

from __future__ import annotations

from collections.abc import Mapping


class ConfigFileError(Exception):
    """A workflow or policy file is invalid; the message names the file and the key."""

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


class DomainError(Exception):
    """An error with a message in Chinese and English and the HTTP status it maps to."""

    status = 400

    def __init__(self, zh: str, en: str, *, field: str | None = None) -> None:
        self.zh = zh
        self.en = en
        self.field = field
        super().__init__(en)

    def text(self, lang: str) -> str:
        """Message in the given language ("zh" or "en")."""
        return self.en if lang == "en" else self.zh


class NotFound(DomainError):
    """No such encounter, user, slot..."""

    status = 404


class Conflict(DomainError):
    """Not allowed now: a transition the workflow forbids, a stale version, a slot just taken."""

    status = 409


class InvalidInput(DomainError):
    """Input that fails validation; `errors` maps each field to its (zh, en) message."""

    status = 422

    def __init__(self, errors: Mapping[str, tuple[str, str]]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors.values()), ("输入无效。", "Invalid input."))
        super().__init__(first[0], first[1], field=next(iter(self.errors), None))

    def messages(self, lang: str) -> dict[str, str]:
        """Field -> message in the given language."""
        return {f: (en if lang == "en" else zh) for f, (zh, en) in self.errors.items()}
