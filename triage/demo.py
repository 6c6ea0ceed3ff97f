"""Demo data: staff accounts and a living morning of cases, so a newcomer sees the system at once.

The cases go through the same services as real ones (pre-screen, check-in, triage, queue actions),
spread over the last few hours, so every screen, audit trail and report is consistent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import Session, func, select

from triage.db import session_scope
from triage.domain.errors import DomainError
from triage.models import Encounter, Role, StaffUser, utcnow
from triage.notify import LoggingNotifier
from triage.services import Actor, create_user

DEMO_PASSWORD = "triage-demo"  # noqa: S105 - documented demo logins, for a local demo only  # nosec B105
DEMO_STAFF = (
    ("nurse", Role.NURSE, "王护士 Nurse Wang"),
    ("supervisor", Role.SUPERVISOR, "李主管 Supervisor Li"),
    ("admin", Role.ADMIN, "赵管理员 Admin Zhao"),
)

_STABLE = {"heart_rate": 78, "respiratory_rate": 16, "sbp": 124, "spo2": 98, "avpu": "A", "gcs": 15}
_NO_EPI = {"mid_high_risk_area_14d": False, "contact_case_14d": False,
           "contact_febrile_from_case_community_14d": False, "cluster_14d": False}


@dataclass(frozen=True)
class WalkInCase:
    """A scripted walk-in: who, what the nurse measures, and how far the visit has got."""

    name: str
    sex: str
    age: int
    data: dict[str, Any]
    minutes_ago: int
    then: tuple[str, ...] = ()
    arrival_mode: str = "walk_in"
    reason: str | None = None


@dataclass(frozen=True)
class OnlineCase:
    """A scripted online pre-screen and what happens to it."""

    name: str
    sex: str
    age: int
    answers: dict[str, Any]
    days_ahead: int = 0
    arrive: bool = False
    vitals: dict[str, Any] = field(default_factory=dict)
    then: tuple[str, ...] = ()


def _v(**changes: Any) -> dict[str, Any]:
    return {**_STABLE, "temperature_c": 36.6, **changes}


WALK_INS = (
    WalkInCase("陈晓梅", "F", 32, _v(temperature_c=38.5, heart_rate=96, symptoms=["fever", "dry_cough", "fatigue"]),
               95, ("call", "start", "complete")),
    WalkInCase("刘建国", "M", 45, _v(symptoms=["sore_throat"], epi={**_NO_EPI, "contact_case_14d": True}), 40,
               ("call",)),
    WalkInCase("孙立新", "M", 71, _v(temperature_c=39.2, heart_rate=118, respiratory_rate=32, spo2=88,
                                    symptoms=["fever", "cough", "dyspnoea"]), 25, ("start",), "ambulance"),
    WalkInCase("赵志强", "M", 58, _v(heart_rate=98, respiratory_rate=20, sbp=142, spo2=96, pain_nrs=8,
                                    symptoms=["chest_pain", "diaphoresis"]), 70, ("start",)),
    WalkInCase("周文", "M", 28, _v(heart_rate=88, pain_nrs=5, symptoms=["limb_injury", "limb_deformity"]), 35),
    WalkInCase("吴桂兰", "F", 80, _v(heart_rate=112, sbp=86, gcs=8, avpu="P", symptoms=["confusion"]), 12,
               ("start",), "ambulance"),
    WalkInCase("郑浩", "M", 25, _v(pain_nrs=3, symptoms=["limb_injury"]), 50),
    WalkInCase("王芳", "F", 35, _v(symptoms=["skin_rash"]), 45, ("call",)),
    WalkInCase("冯德明", "M", 68, _v(sbp=150, symptoms=["dizziness"]), 30),
    WalkInCase("黄小宝", "M", 8, _v(heart_rate=95, respiratory_rate=20, symptoms=["ear_pain"]), 20),
    WalkInCase("何丽", "F", 29, _v(pregnancy_weeks=24, needs=["antenatal_check"]), 28),
    WalkInCase("林强", "M", 40, _v(symptoms=["eye_irritation"]), 120, ("leave",)),
    WalkInCase("马红梅", "F", 52, _v(symptoms=["low_mood", "insomnia"]), 110, ("call", "start", "complete")),
    WalkInCase("高翔", "M", 33, _v(symptoms=["back_pain"], pain_nrs=3), 100, ("call", "start", "complete")),
    WalkInCase("罗秀英", "F", 62, _v(chronic_conditions=["type2_diabetes"], needs=["prescription_refill"]), 22),
    WalkInCase("梁志勇", "M", 50, _v(chronic_conditions=["esrd_haemodialysis"], needs=["dialysis"]), 15),
    WalkInCase("宋建华", "M", 56, _v(sbp=132, chronic_conditions=["hypertension"], needs=["prescription_refill"]),
               105, ("call", "start", "complete")),
)

ONLINE = (
    OnlineCase("唐雪", "F", 27, {"temperature_c": 37.9, "symptoms": ["fever", "cough"]}, arrive=True,
               vitals=_v(temperature_c=38.1, symptoms=["fever", "cough"])),
    OnlineCase("韩梅", "F", 44, {"symptoms": ["headache"]}, arrive=True, vitals=_v(symptoms=["headache"]),
               then=("call",)),
    OnlineCase("曹国庆", "M", 66, {"chronic_conditions": ["coronary_heart_disease"], "needs": ["prescription_refill"]},
               arrive=True, vitals=_v(chronic_conditions=["coronary_heart_disease"], needs=["prescription_refill"])),
    OnlineCase("许静", "F", 38, {"symptoms": ["epigastric_discomfort"]}),
    OnlineCase("邓超", "M", 30, {"symptoms": ["ear_pain"]}, days_ahead=1),
    OnlineCase("彭丽华", "F", 59, {"chronic_conditions": ["hypertension"], "needs": ["prescription_refill"]},
               days_ahead=1),
    OnlineCase("曾伟", "M", 41, {"temperature_c": 37.5, "symptoms": ["sore_throat"]}, days_ahead=1),
    OnlineCase("蒋玉兰", "F", 73, {"symptoms": ["blurred_vision"]}, days_ahead=2),
    OnlineCase("谢军", "M", 62, {"symptoms": ["chest_pain"]}),
    OnlineCase("袁博", "M", 36, {"symptoms": ["skin_rash"]}, days_ahead=1, then=("cancel",)),
)


def load(*, encounters: int = 0, echo: Callable[[str], object] = print) -> None:
    """Create the demo accounts (if missing) and, on an empty database, a morning of cases."""
    with session_scope() as session:
        for username, role, display in DEMO_STAFF:
            if session.exec(select(StaffUser).where(StaffUser.username == username)).first() is None:
                create_user(session, username=username, password=DEMO_PASSWORD, role=role, display_name=display)
                echo(f"demo login: {username} / {DEMO_PASSWORD} ({role.value})")
        if session.exec(select(func.count()).select_from(Encounter)).one() == 0:
            made = load_cases(session, echo=echo)
            echo(f"demo cases: {made} (a morning's pre-screens, walk-ins and queues)")
        if encounters > 0:
            from triage.bulk import generate_encounters
            from triage.hospital import effective_policy, workflow

            nurses = [u.id for u in session.exec(select(StaffUser).where(StaffUser.role == Role.NURSE.value)) if u.id]
            result = generate_encounters(session, effective_policy(session), encounters, seed=2026, staff_ids=nurses,
                                         workflow_version=workflow().version, echo=echo)
            echo(f"generated {result.encounters} past encounters ({result.first_day} to {result.last_day}) "
                 f"in {result.seconds:.1f} s")


def load_cases(session: Session, *, echo: Callable[[str], object] = print) -> int:
    """Put the scripted cases through the real services; returns how many were created."""
    from triage.hospital import effective_policy, workflow
    from triage.services import onsite, prescreen

    policy = effective_policy(session)
    wf = workflow()
    nurse = session.exec(select(StaffUser).where(StaffUser.username == "nurse")).one()
    actor = Actor.staff(nurse)
    now = utcnow()
    rng = random.Random(2020)  # noqa: S311 - demo phone numbers, not secrets  # nosec B311
    made = 0

    def phone() -> str:
        return "13" + "".join(str(rng.randrange(10)) for _ in range(9))

    def act(reference: str, triggers: tuple[str, ...]) -> None:
        for trigger in triggers:
            onsite.queue_action(session, reference=reference, trigger=trigger, policy=policy, workflow=wf,
                                actor=actor, reason="左候诊区未应答 / did not answer the call"
                                if trigger == "leave" else None)

    for case in sorted(WALK_INS, key=lambda c: -c.minutes_ago):
        at = now - timedelta(minutes=case.minutes_ago)
        try:
            decision = onsite.admit_walk_in(
                session, patient=onsite.WalkIn(case.age, case.name, phone(), case.sex, case.arrival_mode,
                                               case.reason),
                data={"age_years": case.age, "sex": case.sex, "epi": _NO_EPI, **case.data},
                policy=policy, workflow=wf, actor=actor, may_lower_critical=True, now=at)
            act(decision.encounter.reference, case.then)
            made += 1
        except DomainError as exc:
            session.rollback()
            echo(f"demo: skipped walk-in {case.name}: {exc.en}")

    for i, online in enumerate(ONLINE):
        submitted = now - timedelta(hours=20, minutes=i * 7)
        day = policy.local(now).date() + timedelta(days=online.days_ahead)
        answers = {"age_years": online.age, "sex": online.sex, "epi": _NO_EPI, **online.answers}
        try:
            outcome = prescreen.submit_prescreen(
                session, request=prescreen.PrescreenRequest(online.name, phone(), answers, preferred_day=day,
                                                            consent=True),
                workflow=wf, policy=policy, notifier=LoggingNotifier(), now=submitted)
            made += 1
            reference = outcome.encounter.reference
            if online.arrive and outcome.encounter.state == "booked":
                onsite.check_in(session, code=reference, policy=policy, workflow=wf, actor=actor,
                                now=now - timedelta(minutes=10 + i))
                onsite.triage(session, reference=reference, data={"epi": _NO_EPI, **online.vitals}, policy=policy,
                              workflow=wf, actor=actor, may_lower_critical=True, now=now - timedelta(minutes=8 + i))
                act(reference, online.then)
            elif "cancel" in online.then:
                prescreen.cancel_visit(session, reference=reference, workflow=wf, policy=policy,
                                       notifier=LoggingNotifier(), now=submitted + timedelta(hours=1))
        except DomainError as exc:
            session.rollback()
            echo(f"demo: skipped pre-screen {online.name}: {exc.en}")
    return made
