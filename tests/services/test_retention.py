"""Retention: personal data leaves closed cases after the period; the statistics stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlmodel import Session, select

from triage.hospital import base_policy, workflow
from triage.models import Encounter, Origin, TransitionLog, utcnow
from triage.services import new_encounter, store
from triage.services.retention import parse_age, purge_personal_data


def _case(session: Session, state: str, ended_days_ago: int | None) -> Encounter:
    now = utcnow()
    enc = new_encounter(origin=Origin.ONLINE, state=state, workflow=workflow(), policy=base_policy(), now=now,
                        patient_name="张三", patient_phone="13800138000", visit_reason="眼科复查",
                        stream="general")
    enc.status_token_hash = None if ended_days_ago is None else f"{state}{ended_days_ago}".ljust(64, "0")
    enc.ended_at = None if ended_days_ago is None else now - timedelta(days=ended_days_ago)
    store.save(session, enc)
    session.commit()
    return enc


def test_purge_blanks_personal_data_of_old_closed_cases_only(app: Flask, session: Session) -> None:
    with app.app_context():
        old = _case(session, "completed", 200)
        recent = _case(session, "completed", 10)
        open_case = _case(session, "waiting", None)
        count = purge_personal_data(session, workflow=workflow(), older_than=timedelta(days=180), now=utcnow())
        assert count == 1
        rows = {e.id: e for e in session.exec(select(Encounter).execution_options(populate_existing=True))}
        purged = rows[old.id]
        assert (purged.patient_name, purged.patient_phone, purged.visit_reason, purged.status_token_hash) == (
            None, None, None, None)
        assert purged.purged_at is not None
        # What the reports count stays.
        assert (purged.stream, purged.state, purged.ended_at) == ("general", "completed", old.ended_at)
        assert rows[recent.id].patient_name == "张三" and rows[open_case.id].patient_phone == "13800138000"
        # A second run finds nothing more to do.
        assert purge_personal_data(session, workflow=workflow(), older_than=timedelta(days=180), now=utcnow()) == 0
        assert session.exec(select(TransitionLog)).all() == []


@pytest.mark.parametrize(("text", "days"), [("180d", 180), ("26w", 182), ("48h", 2)])
def test_ages_are_read_with_their_unit(text: str, days: int) -> None:
    assert parse_age(text).days == days


@pytest.mark.parametrize("text", ["180", "d", "-5d", "180 days", "1.5d", "", "²d"])
def test_bad_ages_are_refused_clearly(text: str) -> None:
    with pytest.raises(ValueError, match="such as 180d"):
        parse_age(text)


def test_an_age_past_the_calendar_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="longer than any record can be kept"):
        parse_age("99999999999w")
