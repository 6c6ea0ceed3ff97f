"""On-site triage and the stream queues: check-in, walk-ins, the nurse's decision, re-triage, queue actions,
and the reads behind the desk, the clinic screens and the waiting-room boards.

Every use case is one function with one commit; every state change goes through `transition`. Reads run
one query each (two for the board) on the indexed sort columns, so a screen polled every few seconds by
many clients stays cheap however many past encounters the database holds.
"""

from __future__ import annotations

import enum
import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, func, or_, text, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from triage.db import run
from triage.domain.assessment import Assessment as EngineResult
from triage.domain.assessment import assess
from triage.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.domain.queue import (
    EMERGENCY_LEVELS,
    LIVE_STATES,
    Wait,
    WaitStatus,
    acuity_sort,
    estimated_wait_minutes,
    mask_name,
    measure_wait,
    priority_sort,
)
from triage.domain.validation import UNUSABLE_NAME, read_number, usable_name
from triage.models import QUEUE_CHANGE_SQL, Assessment, Encounter, Origin, TransitionLog, utcnow
from triage.services import store
from triage.services.core import (
    Actor,
    Facts,
    apply_event,
    history,
    lock_encounter,
    log_entry,
    new_encounter,
    normalize_reference,
    transition,
)
from triage.services.staff import digest
from triage.services.store import (
    ENCOUNTER,
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    TRANSITION_LOG,
    AssessmentRecord,
    EncounterRecord,
)
from triage.workflow import Workflow

# Queue actions staff take on a ticketed case (the events endpoint and the clinic screens).
QUEUE_TRIGGERS: tuple[str, ...] = ("call", "start", "complete", "retriage", "mark_no_show", "leave", "refer")
ONLINE_FOLLOWUP = "online_followup"
WALK_IN_ARRIVAL_MODES: tuple[str, ...] = ("walk_in", "ambulance", "carried")
TICKETED_STATES: tuple[str, ...] = ("triaged", "waiting", "called", "in_consultation")
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,30}$")
_REFERENCE = re.compile(f"^[{REFERENCE_ALPHABET}]{{{REFERENCE_LENGTH}}}$")


class NotPermitted(DomainError):
    """The staff member's role may not take this decision (HTTP 403)."""

    status = 403


class AlreadyCheckedIn(Conflict):
    """The scanned case is already on site: `state` says how far it got, `ticket` if it has one."""

    def __init__(self, encounter: EncounterRecord, zh: str, en: str) -> None:
        self.reference = encounter.reference
        self.state = encounter.state
        self.ticket = encounter.ticket
        super().__init__(zh, en, field="code")


class Escort(enum.StrEnum):
    """How staff take a patient from the entrance to their clinic (notice 141 §4: fever patients apart)."""

    FEVER = "fever"
    ISOLATION = "isolation"

    def text(self, lang: str) -> str:
        """The instruction for the escorting staff, in the given language."""
        zh, en = _ESCORT[self]
        return en if lang == "en" else zh


_ESCORT = {
    Escort.FEVER: (
        "发热患者：请为患者佩戴医用外科口罩，由工作人员经发热门诊专用通道护送至发热门诊，"
        "不得经过普通候诊区或乘坐普通电梯。",
        "Fever patient: give the patient a surgical mask; a member of staff escorts them to the fever "
        "clinic along its separate route, never through the general waiting area or the public lifts."),
    Escort.ISOLATION: (
        "需要隔离：请立即通知急诊隔离抢救区；由穿戴防护装备的工作人员护送，不得经过普通候诊区，"
        "并告知接诊人员需隔离。",
        "Isolation needed: alert the emergency isolation area now; staff in protective equipment escort "
        "the patient, never through the general waiting area, and tell the receiving team isolation is needed."),
}


def escort_for(encounter: EncounterRecord) -> Escort | None:
    """The escort instruction a ticketed case needs, if any."""
    if encounter.stream == Stream.FEVER.value:
        return Escort.FEVER
    if encounter.isolation_required:
        return Escort.ISOLATION
    return None


# --- the nurse's decision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """The nurse's change of the engine's stream and/or level; a reason is required when it changes either."""

    stream: Stream | None = None
    cn_level: int | None = None
    reason: str = ""

    @classmethod
    def parse(cls, stream: Any, cn_level: Any, reason: Any) -> Override:
        """Read an override from form or JSON values ("" and None mean: as recommended)."""
        errors: dict[str, tuple[str, str]] = {}
        parsed_stream: Stream | None = None
        if stream not in (None, ""):
            try:
                parsed_stream = Stream(str(stream))
            except ValueError:
                errors["override.stream"] = ("分流去向应为 fever、emergency、general 或 chronic。",
                                             "The stream must be fever, emergency, general or chronic.")
        level: int | None = None
        if cn_level not in (None, ""):
            if isinstance(cn_level, bool) or str(cn_level).strip() not in {str(n) for n in EMERGENCY_LEVELS}:
                errors["override.cn_level"] = ("急诊分级应为 1、2、3 或 4。",
                                               "The emergency level must be 1, 2, 3 or 4.")
            else:
                level = int(str(cn_level).strip())
        if reason is not None and not isinstance(reason, str):
            errors["override.reason"] = ("原因应为文字。", "The reason must be text.")
            reason = ""
        text = (reason or "").strip()
        if len(text) > 500:
            errors["override.reason"] = ("原因最多 500 字。", "The reason can be at most 500 characters.")
        if errors:
            raise InvalidInput(errors)
        return cls(parsed_stream, level, text)


@dataclass(frozen=True)
class Decision:
    """The outcome of an on-site triage: the stored case and assessment, the engine's result, the escort."""

    encounter: EncounterRecord
    record: AssessmentRecord
    result: EngineResult
    escort: Escort | None


def final_decision(result: EngineResult, override: Override, *, may_lower_critical: bool
                   ) -> tuple[Stream, int | None, bool]:
    """The final stream and level from the engine's recommendation and the nurse's override.

    Returns (stream, level, overridden). Raises InvalidInput for an incomplete override and NotPermitted
    when a role that may not lowers the urgency of a level 1-2 recommendation.
    """
    assert result.stream is not None
    recommended = (result.stream, result.cn_level)
    stream = override.stream or result.stream
    errors: dict[str, tuple[str, str]] = {}
    level: int | None = None
    if stream is Stream.EMERGENCY:
        level = override.cn_level or (result.cn_level if result.stream is Stream.EMERGENCY else None)
        if level is None:
            errors["override.cn_level"] = ("送急诊时请选择急诊分级（1–4 级）。",
                                           "Choose the emergency level (1-4) when sending to emergency.")
    elif override.cn_level is not None:
        errors["override.cn_level"] = ("急诊分级只适用于急诊：请将去向改为急诊，或清除分级。",
                                       "A level applies to emergency only: choose Emergency as the stream, "
                                       "or clear the level.")
    overridden = (stream, level) != recommended
    if not errors and stream in (Stream.GENERAL, Stream.CHRONIC) and result.infection_screen_positive:
        # A patient who screens positive never waits among everyone else (notice 141 §4).
        errors["override.stream"] = (
            "感染筛查阳性的患者不能分到普通门诊或慢病门诊：请送发热门诊，或隔离下送急诊。"
            "如筛查有误，请更正体温、症状或流行病学史。",
            "A patient who screens positive for infection is never sent to general or chronic care: send them "
            "to the fever clinic, or to emergency with isolation. If the screen is wrong, correct the "
            "temperature, symptoms or exposure answers.")
    if overridden and not override.reason:
        errors["override.reason"] = ("更改系统建议的去向或分级时，必须填写原因。",
                                     "A reason is required to change the recommended stream or level.")
    if errors:
        raise InvalidInput(errors)
    if overridden and not may_lower_critical and _lowers_critical(result, stream, level):
        raise NotPermitted(
            "系统建议为急诊 1–2 级：降低紧急程度需要主管确认。请保持该分级（接诊医生可在看过患者后调整），"
            "或请主管操作。",
            "The recommendation is emergency level 1-2: lowering its urgency needs a supervisor. Keep the "
            "level (the emergency physician can lower it after seeing the patient), or ask a supervisor.",
            field="override.cn_level")
    return stream, level, overridden


def _lowers_critical(result: EngineResult, stream: Stream, level: int | None) -> bool:
    """Whether a decision is less urgent than an engine level 1-2 (under-triage of a critical patient)."""
    if result.stream is not Stream.EMERGENCY or result.cn_level is None or result.cn_level > 2:
        return False
    return stream is not Stream.EMERGENCY or (level is not None and level > result.cn_level)


def isolation_needed(result: EngineResult, stream: Stream) -> bool:
    """Whether receiving staff must isolate: the fever clinic, or an emergency patient who screens positive."""
    return stream is Stream.FEVER or (
        stream is Stream.EMERGENCY and (result.isolation_required or result.infection_screen_positive))


def result_record(result: EngineResult) -> dict[str, Any]:
    """The engine's result as stored: the JSON contract, with each reason kept in both languages."""
    body = result.to_dict("en")
    body["reasons"] = [{"rule": r.rule, "zh": r.zh, "en": r.en} for r in result.reasons]
    return body


def localized_reasons(result: Mapping[str, Any], lang: str) -> list[dict[str, str]]:
    """The reasons of a stored result as [{rule, message}] in the given language.

    Reads both stored forms: ours (each reason with "zh" and "en") and the pre-screen's (Chinese
    "message"s, with the English ones in "reasons_en").
    """
    english = result.get("reasons_en")
    reasons = english if lang == "en" and isinstance(english, list) and english else result.get("reasons") or []
    out = []
    for reason in reasons:
        if isinstance(reason, Mapping):
            text = reason.get("en" if lang == "en" else "zh") or reason.get("message")
            if text:
                out.append({"rule": str(reason.get("rule") or ""), "message": str(text)})
    return out


def reason_texts(result: Mapping[str, Any], lang: str) -> list[str]:
    """The reasons of a stored result in the given language (either stored form)."""
    return [r["message"] for r in localized_reasons(result, lang)]


def onsite_input(encounter: EncounterRecord, data: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's input for on-site triage: what was measured and re-asked, the case's age and sex as defaults."""
    body = {k: v for k, v in data.items() if v is not None and v != ""}
    body["stage"] = "onsite"
    if "age_years" not in body and "age_days" not in body and encounter.age_years is not None:
        body["age_years"] = encounter.age_years
    if "sex" not in body and encounter.sex:
        body["sex"] = encounter.sex
    body.setdefault("arrival_mode", "online" if encounter.origin == Origin.ONLINE.value else "walk_in")
    return body


def preview(encounter: EncounterRecord, data: Mapping[str, Any], *, policy: Policy,
            now: datetime | None = None) -> EngineResult:
    """The engine's recommendation for these on-site answers, nothing stored (the desk's live preview)."""
    return assess(onsite_input(encounter, data), policy, now=now or utcnow())


def _engine_errors(result: EngineResult) -> InvalidInput:
    return InvalidInput({e.field: (e.zh, e.en) for e in result.errors})


def _triage_locked(
    session: Session, encounter: EncounterRecord, *, data: Mapping[str, Any], override: Override, policy: Policy,
    workflow: Workflow, actor: Actor, may_lower_critical: bool, now: datetime, expected_version: int | None,
) -> Decision:
    """Decide, ticket and queue a locked, arrived case and write it, in the caller's transaction (no commit)."""
    if expected_version is not None and expected_version != encounter.version:
        raise Conflict("此病例刚被其他人更新，请刷新后再操作。",
                       "Someone else changed this case a moment ago; reload it and try again.", field="version")
    if encounter.state != "arrived":
        state_zh, state_en = workflow.state_label(encounter.state, "zh"), workflow.state_label(encounter.state, "en")
        ticket = f"（{encounter.ticket}）" if encounter.ticket else ""
        raise Conflict(f"此病例不在待分诊状态（当前：{state_zh}{ticket}），不能再次分诊。",
                       f"This case is not awaiting triage (it is {state_en.lower()}"
                       f"{' with ticket ' + encounter.ticket if encounter.ticket else ''}).", field="state")
    body = onsite_input(encounter, data)
    result = assess(body, policy, now=now)
    if result.outcome != "route" or result.stream is None:
        raise _engine_errors(result)
    stream, level, overridden = final_decision(result, override, may_lower_critical=may_lower_critical)
    reason = override.reason if overridden else None

    if isinstance(body.get("age_years"), (int, float)):
        encounter.age_years = math.floor(body["age_years"])
    if body.get("sex") in ("F", "M"):
        encounter.sex = body["sex"]
    facts = Facts(reason=reason, decision_stream=stream, decision_level=level)
    transition(session, encounter, "triage", workflow=workflow, policy=policy, actor=actor, facts=facts, now=now)
    encounter.priority_flags = ",".join(result.priority_flags)
    encounter.priority_sort = priority_sort(result.priority_flags)
    encounter.acuity_sort = acuity_sort(stream, level)
    encounter.isolation_required = isolation_needed(result, stream)
    transition(session, encounter, "enqueue", workflow=workflow, policy=policy, actor=actor, now=now)
    record = AssessmentRecord(
        id=None, encounter_id=encounter.id, stage="onsite", created_at=now, actor_id=actor.user_id,
        inputs=body, result=result_record(result),
        recommended_stream=result.stream.value, recommended_level=result.cn_level,
        final_stream=stream.value, final_level=level, overridden=overridden, override_reason=reason,
        policy_version=policy.version,
    )
    store.save(session, encounter, record)
    return Decision(encounter, record, result, escort_for(encounter))


def triage(
    session: Session, *, reference: str, data: Mapping[str, Any], override: Override | None = None,
    policy: Policy, workflow: Workflow, actor: Actor, may_lower_critical: bool,
    expected_version: int | None = None, now: datetime | None = None,
) -> Decision:
    """The nurse's on-site decision: assess, confirm or override, issue the ticket and queue; commits."""
    now = now or utcnow()
    encounter = _lock(session, reference)
    decision = _triage_locked(
        session, encounter, data=data, override=override or Override(), policy=policy, workflow=workflow,
        actor=actor, may_lower_critical=may_lower_critical, now=now, expected_version=expected_version)
    session.commit()
    return decision


# --- arrival ---------------------------------------------------------------------------------------------


def resolve_code(session: Session, text: str) -> str:
    """The reference code in what a scanner or a nurse typed: a code, a formatted code or a pass's link."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput({"code": ("请扫描通行码，或输入编号。", "Scan the pass, or type its reference code.")})
    if len(raw) > 512:
        raise InvalidInput({"code": ("内容过长，不是编号。", "This is too long to be a reference code.")})
    without_query = raw.split("#", 1)[0].split("?", 1)[0]
    reference = normalize_reference(without_query)
    if _REFERENCE.match(reference):
        return reference
    if "/" in without_query:
        # The pass's QR code may carry the patient's status link; its last segment is the secret token.
        token = without_query.rstrip("/").rsplit("/", 1)[-1]
        found = store.by_token_hash(session, digest(token))
        if found is not None:
            return found.reference
    raise InvalidInput({"code": ("无法识别此编号：编号为 8 位字母和数字，例如 K7P2-M9QX。",
                                 "This is not a reference code: 8 letters and digits, like K7P2-M9QX.")})


def _lock(session: Session, reference: str, *, field: str = "reference") -> EncounterRecord:
    try:
        return lock_encounter(session, reference)
    except NotFound:
        raise NotFound("找不到此编号的病例，请核对编号；如无线上预检，请按现场就诊登记。",
                       "No case has this reference code. Check the code; without a pre-screen, register "
                       "the patient as a walk-in.", field=field) from None


def _day_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _day_en(day: date) -> str:
    return day.strftime("%d %B %Y").lstrip("0")


def _expire_hook() -> Callable[..., Any] | None:
    """The pre-screening module's `expire_if_stale(session, encounter, policy, now)`, when installed."""
    try:
        module = importlib.import_module("triage.services.prescreen")
    except ImportError:
        return None
    hook = getattr(module, "expire_if_stale", None)
    return hook if callable(hook) else None


def _refuse_check_in(session: Session, encounter: EncounterRecord, *, policy: Policy, workflow: Workflow,
                     now: datetime) -> None:
    """Raise the clear reason why this case cannot be checked in now (nothing if it can)."""
    state = encounter.state
    state_zh, state_en = workflow.state_label(state, "zh"), workflow.state_label(state, "en")
    if state == "arrived":
        raise AlreadyCheckedIn(encounter, "此患者已签到，正在等待分诊。",
                               "This patient is already checked in and awaiting triage.")
    if state in TICKETED_STATES:
        raise AlreadyCheckedIn(
            encounter, f"此患者已签到并分诊，号码 {encounter.ticket}（{state_zh}）。",
            f"This patient is already checked in and triaged: ticket {encounter.ticket} ({state_en.lower()}).")
    if state == "cancelled":
        raise Conflict("此预检已取消，不能签到。请为患者按现场就诊登记，或请患者重新预检。",
                       "This pre-screen was cancelled and cannot be checked in. Register the patient as a "
                       "walk-in, or ask them to pre-screen again.", field="code")
    if workflow.is_final(state):
        raise Conflict(f"此预检已结束（{state_zh}），不能签到。请为患者按现场就诊登记。",
                       f"This pre-screen is closed ({state_en.lower()}) and cannot be checked in. Register the "
                       f"patient as a walk-in.", field="code")
    today = policy.local(now).date()
    # Valid on its visit day only; a pre-screen without a slot is valid on the day it was made.
    day = encounter.visit_day or policy.local(encounter.created_at).date()
    if day < today:
        hook = _expire_hook()
        if hook is not None:
            hook(session, encounter, policy, now)  # -> no_show, slot released; commits
            session.commit()  # the expiry is kept even though the check-in is refused
        raise Conflict(f"此预检为 {_day_zh(day)} 的预约，已过期。请为患者按现场就诊登记，或请患者重新预检。",
                       f"This pre-screen was for {_day_en(day)} and has expired. Register the patient as a "
                       f"walk-in, or ask them to pre-screen again.", field="code")
    if day > today:
        raise Conflict(f"此预检预约在 {_day_zh(day)}，不是今天。请患者按预约日期来院，或按现场就诊登记。",
                       f"This pre-screen is booked for {_day_en(day)}, not today. Ask the patient to come on "
                       f"that day, or register them as a walk-in.", field="code")


def check_in(session: Session, *, code: str, policy: Policy, workflow: Workflow, actor: Actor,
             now: datetime | None = None) -> EncounterRecord:
    """Check a pre-screened patient in by scanned or typed code; commits. Clear errors for every refusal."""
    now = now or utcnow()
    reference = resolve_code(session, code)
    encounter = _lock(session, reference, field="code")
    _refuse_check_in(session, encounter, policy=policy, workflow=workflow, now=now)
    transition(session, encounter, "check_in", workflow=workflow, policy=policy, actor=actor, now=now)
    store.save(session, encounter)
    session.commit()
    return encounter


@dataclass(frozen=True)
class WalkIn:
    """A patient registered at the entrance without a pre-screen. Only what triage and the board need."""

    age_years: Any = None
    name: str | None = None
    phone: str | None = None
    sex: str | None = None
    arrival_mode: str = "walk_in"
    visit_reason: str | None = None

    def validated(self) -> WalkIn:
        """A clean copy, or InvalidInput with one message per field."""
        errors: dict[str, tuple[str, str]] = {}
        name = " ".join((self.name or "").split()) or None
        if name and len(name) > 100:
            errors["name"] = ("姓名最多 100 个字。", "The name can be at most 100 characters.")
        elif name and not usable_name(name):
            errors["name"] = UNUSABLE_NAME
        phone = (self.phone or "").strip() or None
        if phone and not _PHONE.match(phone):
            errors["phone"] = ("请填写有效的电话号码（数字，可含空格或连字符）。",
                               "Enter a valid phone number (digits, spaces or hyphens).")
        age: float | None = None
        try:  # a JSON number from the API, or text typed at the desk (read as the desk's other numbers are)
            typed = self.age_years if isinstance(self.age_years, (int, float)) else read_number(
                None if self.age_years is None else str(self.age_years))
        except ValueError:
            typed = math.nan
        if typed is None:
            errors["age_years"] = ("请填写年龄（不确定时可估计）。", "Enter the age (an estimate is fine).")
        elif isinstance(typed, bool) or not 0 <= typed <= 120:  # NaN and infinities compare false
            errors["age_years"] = ("年龄应为 0–120 之间的数字。", "The age must be a number from 0 to 120.")
        else:
            age = float(typed)
        sex = (self.sex or "").strip().upper() or None
        if sex is not None and sex not in ("F", "M"):
            errors["sex"] = ("性别应为 F（女）或 M（男）。", "Sex must be F (female) or M (male).")
        if self.arrival_mode not in WALK_IN_ARRIVAL_MODES:
            errors["arrival_mode"] = ("到达方式应为 walk_in、ambulance 或 carried。",
                                      "Arrival must be walk_in, ambulance or carried.")
        reason = (self.visit_reason or "").strip() or None
        if reason and len(reason) > 200:
            errors["visit_reason"] = ("就诊原因最多 200 个字。",
                                      "The reason for the visit can be at most 200 characters.")
        if errors:
            raise InvalidInput(errors)
        return WalkIn(age, name, phone, sex, self.arrival_mode, reason)


def _create_walk_in(session: Session, patient: WalkIn, *, policy: Policy, workflow: Workflow, actor: Actor,
                    now: datetime) -> EncounterRecord:
    """A new walk-in case, arrived, with its reference (written by the caller's `store.save`)."""
    clean = patient.validated()
    encounter = new_encounter(
        origin=Origin.WALK_IN, state="arrived", workflow=workflow, policy=policy, now=now,
        patient_name=clean.name, patient_phone=clean.phone, sex=clean.sex, visit_reason=clean.visit_reason,
        age_years=math.floor(clean.age_years) if clean.age_years is not None else None,
        arrived_at=now, visit_day=policy.local(now).date(), order_at=now,
    )
    log_entry(encounter, workflow=workflow, policy=policy, actor=actor, now=now)
    return encounter


def register_walk_in(session: Session, *, patient: WalkIn, policy: Policy, workflow: Workflow, actor: Actor,
                     now: datetime | None = None) -> EncounterRecord:
    """Register a walk-in at the entrance: a new case, arrived and awaiting triage; commits."""
    encounter = _create_walk_in(session, patient, policy=policy, workflow=workflow, actor=actor,
                                now=now or utcnow())
    store.save(session, encounter)
    session.commit()
    return encounter


def _check_agrees(patient: WalkIn, data: Mapping[str, Any]) -> None:
    """The patient's age and sex given twice (with the patient and in the assessment) must be the same."""
    errors: dict[str, tuple[str, str]] = {}
    age = data.get("age_years")
    if (patient.age_years is not None and isinstance(age, (int, float)) and not isinstance(age, bool)
            and math.isfinite(age) and math.floor(age) != math.floor(patient.age_years)):
        errors["assessment.age_years"] = ("评估中的年龄与患者信息不一致：请只填一处，或改为一致。",
                                          "The assessment's age differs from the patient's: give it once, or make "
                                          "them agree.")
    if patient.sex is not None and data.get("sex") in ("F", "M") and data["sex"] != patient.sex:
        errors["assessment.sex"] = ("评估中的性别与患者信息不一致：请只填一处，或改为一致。",
                                    "The assessment's sex differs from the patient's: give it once, or make them "
                                    "agree.")
    if errors:
        raise InvalidInput(errors)


def admit_walk_in(
    session: Session, *, patient: WalkIn, data: Mapping[str, Any], override: Override | None = None,
    policy: Policy, workflow: Workflow, actor: Actor, may_lower_critical: bool, now: datetime | None = None,
) -> Decision:
    """Register a walk-in and triage them in one transaction (the API's walk-in endpoint); commits."""
    now = now or utcnow()
    clean = patient.validated()
    data = dict(data)
    _check_agrees(clean, data)
    data.setdefault("arrival_mode", clean.arrival_mode)
    if clean.age_years is not None and "age_years" not in data and "age_days" not in data:
        data["age_years"] = clean.age_years
    # Validate the assessment before creating anything, so a rejected request leaves no half-made case.
    probe = assess({**data, "stage": "onsite", **({"sex": clean.sex} if clean.sex and "sex" not in data else {})},
                   policy, now=now)
    if probe.outcome != "route":
        raise _engine_errors(probe)
    encounter = _create_walk_in(session, clean, policy=policy, workflow=workflow, actor=actor, now=now)
    decision = _triage_locked(
        session, encounter, data=data, override=override or Override(), policy=policy, workflow=workflow,
        actor=actor, may_lower_critical=may_lower_critical, now=now, expected_version=None)
    session.commit()
    return decision


# --- queue actions ---------------------------------------------------------------------------------------


def queue_action(
    session: Session, *, reference: str, trigger: str, policy: Policy, workflow: Workflow, actor: Actor,
    reason: str | None = None, referral_target: str | None = None, expected_version: int | None = None,
    stream: Stream | None = None,
) -> EncounterRecord:
    """Call, call again, start, complete, refer, no-show, left or re-triage one case; commits.

    A stale `expected_version`, a trigger the workflow does not allow now, or (with `stream`) a case that is not
    in that stream's queue is a Conflict (409).
    """
    if trigger not in QUEUE_TRIGGERS:
        raise InvalidInput({"trigger": ("此操作不属于队列操作：可用 " + "、".join(QUEUE_TRIGGERS) + "。",
                                        "Not a queue action; use one of " + ", ".join(QUEUE_TRIGGERS) + ".")})
    reason = (reason or "").strip() or None
    if reason and len(reason) > 500:
        raise InvalidInput({"reason": ("原因最多 500 字。", "The reason can be at most 500 characters.")})
    if trigger == "retriage" and not reason:
        raise InvalidInput({"reason": ("重新分诊时请填写原因（例如：候诊中出现发热）。",
                                       "Give the reason for re-triage (for example: became febrile while waiting).")})
    target = (referral_target or "").strip() or None if trigger == "refer" else None
    if trigger == "refer" and target is None:
        raise InvalidInput({"referral_target": ("请选择转诊机构或线上随访。",
                                                "Choose a facility to refer to, or online follow-up.")})
    return apply_event(session, reference=reference, trigger=trigger, workflow=workflow, policy=policy,
                       actor=actor, reason=reason, referral_target=target, expected_version=expected_version,
                       stream=stream.value if stream is not None else None)


def retriage(session: Session, *, reference: str, reason: str, policy: Policy, workflow: Workflow, actor: Actor,
             expected_version: int | None = None) -> EncounterRecord:
    """Take a waiting or called case back to triage, with the reason; commits. A new decision follows."""
    return queue_action(session, reference=reference, trigger="retriage", policy=policy, workflow=workflow,
                        actor=actor, reason=reason, expected_version=expected_version)


_ACTIONS: dict[tuple[str, str, str], tuple[str, ...]] = {}


def queue_actions(workflow: Workflow, state: str) -> tuple[str, ...]:
    """The queue actions the workflow allows from `state`, in the file's order (computed once per state)."""
    key = (workflow.path, workflow.version, state)
    actions = _ACTIONS.get(key)
    if actions is None:
        actions = tuple(t for t in workflow.available_triggers(state) if t in QUEUE_TRIGGERS)
        _ACTIONS[key] = actions
    return actions


# --- reads -------------------------------------------------------------------------------------------------


def get_encounter(session: Session, reference: str) -> EncounterRecord:
    """The case with this reference (normalized), or NotFound."""
    found = store.by_reference(session, normalize_reference(reference))
    if found is None:
        raise NotFound("找不到此编号的病例。", "No case has this reference code.", field="reference")
    return found


def assessments_of(session: Session, encounter: EncounterRecord) -> list[Assessment]:
    """Every assessment of the case (online and on site), oldest first."""
    return list(session.exec(select(Assessment).where(Assessment.encounter_id == encounter.id)
                             .order_by(col(Assessment.id))))


def encounter_detail(session: Session, reference: str) -> tuple[EncounterRecord, list[Assessment],
                                                                 list[TransitionLog]]:
    """The case, its assessments and its history (three queries)."""
    encounter = get_encounter(session, reference)
    return encounter, assessments_of(session, encounter), history(session, encounter)


def retriage_reason(session: Session, encounter: EncounterRecord) -> str | None:
    """Why the case was last sent back to triage, when it was (shown on the new triage form)."""
    if encounter.state != "arrived" or not encounter.ticket:
        return None
    return session.exec(
        select(TransitionLog.reason)
        .where(TransitionLog.encounter_id == encounter.id, TransitionLog.trigger == "retriage")
        .order_by(col(TransitionLog.id).desc()).limit(1)).first()


_AWAITING = (store.select_all().where(ENCOUNTER.c.state == "arrived")
             .order_by(ENCOUNTER.c.arrived_at, ENCOUNTER.c.id).limit(bindparam("limit", type_=Integer)))
_RECENT = (store.select_all().where(ENCOUNTER.c.ticket_day == bindparam("day"))
           .order_by(ENCOUNTER.c.triaged_at.desc(), ENCOUNTER.c.id.desc()).limit(bindparam("limit", type_=Integer)))


def awaiting_triage(session: Session, *, limit: int = 50) -> list[EncounterRecord]:
    """Cases checked in (or sent back for re-triage) and awaiting a triage decision, longest first."""
    return store.fetch(session, _AWAITING, {"limit": limit})


def recent_tickets(session: Session, *, policy: Policy, now: datetime | None = None, limit: int = 8
                   ) -> list[EncounterRecord]:
    """The tickets issued today, newest first."""
    return store.fetch(session, _RECENT, {"day": policy.local(now or utcnow()).date(), "limit": limit})


@dataclass(frozen=True)
class QueueEntry:
    """One row of a clinic's queue screen."""

    encounter: EncounterRecord
    wait: Wait
    position: int | None  # place among the waiting (1 = next), None once called
    estimated_minutes: int | None
    actions: tuple[str, ...]


@dataclass
class QueueView:
    """A stream's live queue, in queue order, split by state."""

    stream: Stream
    called: list[QueueEntry] = field(default_factory=list)
    waiting: list[QueueEntry] = field(default_factory=list)
    in_consultation: list[QueueEntry] = field(default_factory=list)
    # Counted over the whole queue when `waiting` holds only its head (read_queue's waiting_limit).
    waiting_count: int | None = None
    overdue_count: int | None = None

    @property
    def waiting_total(self) -> int:
        """How many patients wait, shown or not."""
        return len(self.waiting) if self.waiting_count is None else self.waiting_count

    @property
    def overdue(self) -> int:
        """How many waiting patients are past their target."""
        if self.overdue_count is not None:
            return self.overdue_count
        return sum(1 for e in self.waiting if e.wait.overdue)

    @property
    def entries(self) -> list[QueueEntry]:
        """Every live entry: called, waiting, then in consultation."""
        return [*self.called, *self.waiting, *self.in_consultation]


_QUEUE_ORDER = (ENCOUNTER.c.acuity_sort, ENCOUNTER.c.priority_sort, ENCOUNTER.c.order_at, ENCOUNTER.c.id)
_QUEUE_ALL = (store.select_all().where(store.among(ENCOUNTER.c.state, LIVE_STATES),
                                        ENCOUNTER.c.stream == bindparam("stream"))
              .order_by(*_QUEUE_ORDER))
_QUEUE_OTHERS = (store.select_all()
                 .where(store.among(ENCOUNTER.c.state, [s for s in LIVE_STATES if s != "waiting"]),
                        ENCOUNTER.c.stream == bindparam("stream"))
                 .order_by(*_QUEUE_ORDER))
_QUEUE_HEAD = (store.select_all().where(ENCOUNTER.c.state == "waiting", ENCOUNTER.c.stream == bindparam("stream"))
               .order_by(*_QUEUE_ORDER).limit(bindparam("limit", type_=Integer)))
_COUNTS: dict[tuple[int, ...], Any] = {}


def _counts_statement(levels: tuple[int, ...]) -> Any:
    """How many wait in a stream and how many are past their acuity's target, for these graded levels (cached)."""
    statement = _COUNTS.get(levels)
    if statement is None:
        queued_at, cn_level = ENCOUNTER.c.queued_at, ENCOUNTER.c.cn_level
        late = [and_(cn_level == level, queued_at < bindparam(f"cutoff_{level}", type_=queued_at.type))
                for level in levels]
        other = cn_level.is_(None) | cn_level.not_in(levels) if levels else true()
        late.append(and_(other, queued_at < bindparam("cutoff", type_=queued_at.type)))
        statement = _COUNTS[levels] = sa_select(func.count(), func.sum(case((or_(*late), 1), else_=0))).where(
            ENCOUNTER.c.state == "waiting", ENCOUNTER.c.stream == bindparam("stream"))
    return statement


def _waiting_counts(session: Session, stream: Stream, spec: Any, now: datetime) -> tuple[int, int]:
    """How many wait in a stream, and how many of them past their acuity's target (one aggregate query)."""
    levels = tuple(level for level in spec.wait_target_minutes if level is not None)
    params: dict[str, Any] = {f"cutoff_{level}": now - timedelta(minutes=spec.wait_target(level)) for level in levels}
    params["cutoff"] = now - timedelta(minutes=spec.wait_target(None))
    params["stream"] = stream.value
    total, late_count = run(store.connection(session), _counts_statement(levels), params).one()
    return int(total), int(late_count or 0)


def queue_entry(encounter: EncounterRecord, *, policy: Policy, workflow: Workflow, now: datetime,
                position: int | None = None) -> QueueEntry:
    """One case as its clinic's screen shows it: the wait against its target and the actions allowed now."""
    spec = policy.streams[Stream(encounter.stream or Stream.GENERAL.value)]
    wait = measure_wait(queued_at=encounter.queued_at, called_at=encounter.called_at, now=now,
                        target_minutes=spec.wait_target(encounter.cn_level))
    estimate = estimated_wait_minutes(position - 1, spec.consultation_minutes) if position else None
    return QueueEntry(encounter, wait, position, estimate, queue_actions(workflow, encounter.state))


_LATEST_QUEUE_CHANGE = (sa_select(func.max(TRANSITION_LOG.c.id))
                        .where(TRANSITION_LOG.c.stream == bindparam("stream"), text(f"({QUEUE_CHANGE_SQL})")))


def queue_version(session: Session, stream: Stream) -> int:
    """The id of the stream's latest queue change (a case entering, moving within or leaving its live states); it
    grows with every change on any worker or host, so a list rendered at one version is current while it holds."""
    latest = run(store.connection(session), _LATEST_QUEUE_CHANGE, {"stream": stream.value}).scalar()
    return int(latest or 0)


def read_queue(session: Session, *, stream: Stream, policy: Policy, workflow: Workflow,
               now: datetime | None = None, waiting_limit: int | None = None) -> QueueView:
    """A stream's live queue in queue order with waits against target (one indexed query).

    With `waiting_limit`, only the head of the waiting line is read (a clinic's screen: the next patients),
    and the line's length and overdue count come from one aggregate query, whatever its length.
    """
    now = now or utcnow()
    spec = policy.streams[stream]
    view = QueueView(stream)
    rows: list[EncounterRecord]
    if waiting_limit is None:
        rows = store.fetch(session, _QUEUE_ALL, {"stream": stream.value})
    else:
        rows = [*store.fetch(session, _QUEUE_OTHERS, {"stream": stream.value}),
                *store.fetch(session, _QUEUE_HEAD, {"stream": stream.value, "limit": waiting_limit})]
        view.waiting_count, view.overdue_count = _waiting_counts(session, stream, spec, now)
    for encounter in rows:
        if encounter.state == "waiting":
            view.waiting.append(queue_entry(encounter, policy=policy, workflow=workflow, now=now,
                                            position=len(view.waiting) + 1))
        elif encounter.state == "called":
            view.called.append(queue_entry(encounter, policy=policy, workflow=workflow, now=now))
        else:
            view.in_consultation.append(queue_entry(encounter, policy=policy, workflow=workflow, now=now))
    view.called.sort(key=lambda e: e.encounter.called_at or now, reverse=True)
    return view


@dataclass(frozen=True)
class StreamSummary:
    """A stream's counts for the queues overview."""

    stream: Stream
    waiting: int
    called: int
    in_consultation: int
    overdue: int
    longest_wait_minutes: int


def queue_summary(session: Session, *, policy: Policy, now: datetime | None = None) -> list[StreamSummary]:
    """Counts, overdue waits and the longest wait of every stream (one query over the live cases)."""
    now = now or utcnow()
    counts: dict[Stream, dict[str, int]] = {s: {"waiting": 0, "called": 0, "in_consultation": 0, "overdue": 0,
                                                "longest": 0} for s in Stream}
    rows = session.exec(select(Encounter.stream, Encounter.state, Encounter.cn_level, Encounter.queued_at)
                        .where(col(Encounter.state).in_(LIVE_STATES)))
    for stream_value, state, cn_level, queued_at in rows:
        try:
            stream = Stream(str(stream_value))
        except ValueError:
            continue
        bucket = counts[stream]
        bucket[state] += 1
        if state == "waiting":
            wait = measure_wait(queued_at=queued_at, called_at=None, now=now,
                                target_minutes=policy.streams[stream].wait_target(cn_level))
            bucket["overdue"] += wait.status is WaitStatus.OVERDUE
            bucket["longest"] = max(bucket["longest"], wait.waited_minutes)
    return [StreamSummary(s, c["waiting"], c["called"], c["in_consultation"], c["overdue"], c["longest"])
            for s, c in counts.items()]


# --- the waiting-room board ----------------------------------------------------------------------------------

# Each board shows one area of the hospital; the fever clinic's is separate from everyone else's.
BOARD_AREAS: Mapping[str, tuple[Stream, ...]] = {
    "fever": (Stream.FEVER,),
    "emergency": (Stream.EMERGENCY,),
    "outpatient": (Stream.GENERAL, Stream.CHRONIC),
}
# A call this recent is highlighted on the board so the patient notices it.
RECENT_CALL_SECONDS = 60


@dataclass(frozen=True)
class BoardTicket:
    """A ticket as the waiting room sees it: number, masked name, clinic."""

    ticket: str
    name: str
    stream: Stream
    call_count: int = 0
    recent: bool = False


@dataclass(frozen=True)
class BoardView:
    """What one board shows: the tickets being called (newest first) and the next ones."""

    area: str
    streams: tuple[Stream, ...]
    called: list[BoardTicket]
    upcoming: list[BoardTicket]
    at: datetime


def read_board(session: Session, *, area: str, now: datetime | None = None, called_limit: int = 6,
               next_limit: int = 8) -> BoardView:
    """The board of an area: two indexed queries returning only ticket, name, stream and call data."""
    streams = BOARD_AREAS.get(area)
    if streams is None:
        raise NotFound("没有这个候诊区。", "There is no such waiting area.", field="area")
    now = now or utcnow()
    values = [s.value for s in streams]
    called_rows = session.execute(
        sa_select(col(Encounter.ticket), col(Encounter.patient_name), col(Encounter.stream),
                  col(Encounter.call_count), col(Encounter.called_at))
        .where(col(Encounter.state) == "called", col(Encounter.stream).in_(values))
        .order_by(col(Encounter.called_at).desc()).limit(called_limit))
    called = [
        BoardTicket(ticket or "", mask_name(name), Stream(str(stream)), count,
                    recent=called_at is not None and (now - called_at).total_seconds() < RECENT_CALL_SECONDS)
        for ticket, name, stream, count, called_at in called_rows
    ]
    next_rows = session.exec(
        select(Encounter.ticket, Encounter.patient_name, Encounter.stream)
        .where(Encounter.state == "waiting", col(Encounter.stream).in_(values))
        .order_by(col(Encounter.acuity_sort), col(Encounter.priority_sort), col(Encounter.order_at),
                  col(Encounter.id))
        .limit(next_limit))
    upcoming = [BoardTicket(ticket or "", mask_name(name), Stream(str(stream))) for ticket, name, stream in next_rows]
    return BoardView(area, streams, called, upcoming, now)

