"""A reference code as people and scanners enter it."""

from __future__ import annotations

import pytest

from triage.services.core import format_reference, normalize_reference


@pytest.mark.parametrize("typed", [
    "K7P2M9QX", "k7p2-m9qx", " K7P2 M9QX ", "Ｋ７Ｐ２－Ｍ９ＱＸ",  # full width, from a Chinese keyboard
    "https://hospital.example/prescreen/s/K7P2M9QX/",  # a pass's QR code carries the status URL
])
def test_what_was_typed_or_scanned_becomes_the_code(typed: str) -> None:
    assert normalize_reference(typed) == "K7P2M9QX"


def test_letters_that_look_like_digits_are_read_as_digits() -> None:
    assert normalize_reference("O1IL-ABCD") == "0111ABCD"
    assert format_reference("K7P2M9QX") == "K7P2-M9QX"
