"""No personal data in logs: phone numbers and secret tokens are masked wherever they are logged."""

from __future__ import annotations

import logging

import pytest

from triage.logs import install, mask


@pytest.mark.parametrize(("raw", "masked"), [
    ("patient phone 13800138000 booked", "patient phone 138****8000 booked"),
    ("landline 01062345678", "landline 010****5678"),
    ('"GET /prescreen/s/AbCdEfGhIjKlMnOpQrStUvWx" 200', '"GET /prescreen/s/AbCd…" 200'),
    ("Authorization: Bearer trg_abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer trg_…"),
    ("ticket G-045, reference K7P2M9QX, 3 waiting", "ticket G-045, reference K7P2M9QX, 3 waiting"),
    ("temperature 38.5, year 2026", "temperature 38.5, year 2026"),
])
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked


def test_every_logger_masks(caplog: pytest.LogCaptureFixture) -> None:
    install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("gunicorn.access").info("%s", "call 13912345678 about /s/SecretTokenValue123456")
    assert "13912345678" not in caplog.text and "SecretTokenValue123456" not in caplog.text
    assert "139****5678" in caplog.text
