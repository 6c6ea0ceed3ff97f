"""Helpers for the on-site triage tests: an always-open policy, pre-screened cases, ticketed cases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlmodel import Session, select

from tests.conftest import make_app
from triage.config import ROOT
from triage.domain.policy import Stream
from triage.hospital import base_policy, workflow
from triage.models import Assessment, Encounter, Origin, StaffUser, utcnow
from triage.services import Actor, log_entry, new_encounter, onsite, store
from triage.services.store import EncounterRecord

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def always_open_policy(folder: Path) -> Path:
    """The demo policy with every clinic open around the clock, so tests do not depend on the clock."""
    data = yaml.safe_load((ROOT / "workflows" / "policy.yaml").read_text(encoding="utf-8"))
    data["outpatient_hours"] = {"days": DAYS, "opens": "00:00", "closes": "24:00"}
    for stream in data["streams"].values():
        stream.update(days=DAYS, opens="00:00", closes="24:00")
    path = folder / "policy-always-open.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def staff_actor(session: Session, username: str = "desk-nurse") -> Actor:
    """An actor for a (new) nurse account."""
    from triage.models import Role
    from triage.services import create_user

    user = session.exec(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None:
        user = create_user(session, username=username, password="correct-horse-battery", role=Role.NURSE)
    return Actor.staff(user)


def prescreened(session: Session, *, name: str = "张三明", age: int = 40, sex: str = "M",
                symptoms: list[str] | None = None, epi: dict[str, bool] | None = None,
                state: str = "prescreened", visit_day_offset: int | None = 0,
                provisional: Stream = Stream.GENERAL, temperature: float | None = None) -> EncounterRecord:
    """A case pre-screened online (with its online assessment row), as the pre-screening module leaves it."""
    policy, wf = base_policy(), workflow()
    now = utcnow()
    fields: dict[str, Any] = {}
    if visit_day_offset is not None:
        fields["visit_day"] = policy.local(now).date() + timedelta(days=visit_day_offset)
    encounter = new_encounter(origin=Origin.ONLINE, state="prescreened", workflow=wf, policy=policy, now=now,
                              patient_name=name, age_years=age, sex=sex, provisional_stream=provisional.value,
                              **fields)
    log_entry(encounter, workflow=wf, policy=policy, actor=onsite_patient(), now=now)
    store.save(session, encounter)
    inputs: dict[str, Any] = {"stage": "online", "age_years": age, "sex": sex, "symptoms": symptoms or [],
                              "epi": epi or {}}
    if temperature is not None:
        inputs["temperature_c"] = temperature
    session.add(Assessment(encounter_id=encounter.id or 0, stage="online", inputs=inputs,
                           result={"stream": provisional.value, "reasons": [
                               {"rule": "ROUTE-TEST", "zh": "线上初步结果。", "en": "Online provisional result."}]},
                           recommended_stream=provisional.value, final_stream=provisional.value,
                           policy_version=policy.version))
    encounter.state = state
    store.save(session, encounter)
    session.commit()
    return encounter


def onsite_patient() -> Actor:
    """The patient, as the actor of their own pre-screen."""
    from triage.services import PATIENT

    return PATIENT


GENERAL_VITALS: dict[str, Any] = {"temperature_c": 36.6, "heart_rate": 78, "respiratory_rate": 16, "sbp": 122,
                                  "spo2": 98, "avpu": "A", "pain_nrs": 1}
FEVER_VITALS: dict[str, Any] = {**GENERAL_VITALS, "temperature_c": 38.4}


def ticketed(session: Session, stream: Stream = Stream.GENERAL, *, name: str = "李四", age: int = 40,
             override: onsite.Override | None = None, vitals: dict[str, Any] | None = None,
             actor: Actor | None = None) -> EncounterRecord:
    """A walk-in triaged into `stream` and waiting in its queue."""
    policy, wf = base_policy(), workflow()
    actor = actor or staff_actor(session)
    data = dict(vitals or (FEVER_VITALS if stream is Stream.FEVER else GENERAL_VITALS))
    if stream is Stream.EMERGENCY and override is None:
        override = onsite.Override(Stream.EMERGENCY, 3, "test: emergency queue")
    if stream is Stream.CHRONIC and override is None:
        data["needs"] = ["prescription_refill"]
        data["chronic_conditions"] = ["hypertension"]
    decision = onsite.admit_walk_in(session, patient=onsite.WalkIn(age_years=age, name=name, sex="M"), data=data,
                                    override=override, policy=policy, workflow=wf, actor=actor,
                                    may_lower_critical=True)
    return decision.encounter


@contextmanager
def db(app: Flask) -> Iterator[Session]:
    """A fresh session on the app's database inside a short app context (never held around requests)."""
    with app.app_context():
        s = app.extensions["triage.db"].session()
        try:
            yield s
        finally:
            s.close()


def open_app(database_url: str, folder: Path, **overrides: Any) -> Flask:
    """A test app whose clinics never close."""
    return make_app(database_url, POLICY_PATH=str(always_open_policy(folder)), **overrides)


@pytest.fixture(name="app")
def always_open_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database, with clinics that never close (routing, booking, check-in and triage work at
    any hour). A test module takes it as its `app` by importing it."""
    application = open_app(database_url, tmp_path)
    yield application
    application.extensions["triage.db"].dispose()


def version_of(app: Flask, reference: str) -> int:
    """The case's current version (what a form rendered now would carry)."""
    with db(app) as s:
        found = s.exec(select(Encounter).where(Encounter.reference == reference)).one()
        return found.version


def state_of(app: Flask, reference: str) -> Encounter:
    """The case as stored now."""
    with db(app) as s:
        return s.exec(select(Encounter).where(Encounter.reference == reference)).one()
