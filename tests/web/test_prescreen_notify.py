"""Messages to patients: one interface, recorded with the phone masked and secrets redacted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from tests.conftest import make_app
from tests.web.prescreen_support import db, form_data, open_day
from triage.models import Notification
from triage.notify import LoggingNotifier, build_notifier, mask_phone


@pytest.mark.parametrize(("phone", "masked"), [
    ("13800138000", "138****8000"), ("+86 138-0013-8000", "138****8000"), ("+44 20 7946 0958", "442*****0958"),
    ("1234567", "***4567"), ("123", "***"), (None, ""),
])
def test_phone_numbers_are_masked(phone: str | None, masked: str) -> None:
    assert mask_phone(phone) == masked


class RecordingGateway:
    """A stand-in SMS gateway: the seam a real provider's adapter plugs into."""

    channel = "sms"
    sent: ClassVar[list[tuple[str, str]]] = []
    fail = False

    def send(self, phone: str, body: str) -> None:
        """Record the message, or fail like an unreachable provider."""
        if RecordingGateway.fail:
            raise ConnectionError("gateway down")
        RecordingGateway.sent.append((phone, body))


def gateway_factory(config: Mapping[str, Any]) -> RecordingGateway:
    """Factory named in the NOTIFIER setting."""
    return RecordingGateway()


def test_the_default_notifier_logs_and_records_with_the_link_redacted(
    client: FlaskClient, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="triage.notify")
    response = client.post("/prescreen/", data=form_data(preferred_day=open_day(app).isoformat()))
    token = response.headers["Location"].rsplit("/", 1)[-1]
    with db(app) as s:
        note = s.exec(select(Notification)).one()
    assert note.status == "logged" and note.channel == "sms" and note.recipient == "138****8000"
    assert token not in note.body and "[…]" in note.body and "08:00" in note.body
    assert "13800138000" not in caplog.text and "138****8000" in caplog.text
    assert token[4:] not in caplog.text  # the secret link never reaches a log


def test_an_sms_gateway_plugs_in_through_the_setting(database_url: str) -> None:
    RecordingGateway.sent.clear()
    RecordingGateway.fail = False
    app = make_app(database_url, NOTIFIER=f"{__name__}:gateway_factory")
    client = app.test_client()
    response = client.post("/prescreen/", data=form_data(preferred_day=open_day(app).isoformat()))
    token = response.headers["Location"].rsplit("/", 1)[-1]
    assert len(RecordingGateway.sent) == 1
    phone, body = RecordingGateway.sent[0]
    assert phone == "13800138000" and token in body  # the patient gets the real link
    with db(app) as s:
        note = s.exec(select(Notification)).one()
        assert note.status == "sent" and token not in note.body  # the record never holds it
    app.extensions["triage.db"].dispose()


def test_a_failing_gateway_never_undoes_the_booking(database_url: str) -> None:
    RecordingGateway.fail = True
    try:
        app = make_app(database_url, NOTIFIER=f"{__name__}:gateway_factory")
        response = app.test_client().post("/prescreen/", data=form_data(preferred_day=open_day(app).isoformat()))
        assert response.status_code == 302
        with db(app) as s:
            assert s.exec(select(Notification)).one().status == "failed"
        app.extensions["triage.db"].dispose()
    finally:
        RecordingGateway.fail = False


@pytest.mark.parametrize("setting", ["nonsense", "triage.notify:", f"{__name__}:RecordingGateway.nothing"])
def test_a_misconfigured_notifier_stops_start_up(database_url: str, setting: str) -> None:
    with pytest.raises((ValueError, AttributeError)):
        make_app(database_url, NOTIFIER=setting)


def test_log_is_the_default() -> None:
    assert isinstance(build_notifier({}), LoggingNotifier)
