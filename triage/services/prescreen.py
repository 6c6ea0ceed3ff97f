"""Stage one: the patient's online pre-screening, time slot, status and changes.

Use cases (each one function, keyword-only arguments, one commit; every state change through
`transition`, so the workflow checks it and the audit log records it):

- `submit_prescreen`: validate the contact details, run the engine at the "online" stage, create the
  encounter (`prescreened`) with its online assessment, then, by the result: tell a red-flag patient to
  go to the emergency department now (`direct_to_emergency`, no slot); refer a stable chronic patient
  who accepts to online follow-up (`refer`, disposition "online_followup"); otherwise book the chosen
  or the first free slot of the provisional stream (`book`; see `triage.services.slots`).
- `move_visit`, `cancel_visit`, `choose_online_followup`, `request_callback`: the patient's changes
  (staff use the same functions with their own actor, see `triage.services.contacts`).
- `find_by_token`, `find_by_reference_and_phone`, `visit_view`: the status page.
- `expire_if_stale`, `expire_stale`: a pre-screen is valid for its visit day only; after it the visit
  is a no-show (`expire`), lazily on read and by `flask --app wsgi expire`.

Messages to the patient go through `triage.notify` after the commit.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from triage.db import run, serialize
from triage.domain.assessment import Assessment as Decision
from triage.domain.assessment import assess
from triage.domain.errors import Conflict, InvalidInput, NotFound
from triage.domain.policy import Policy, Stream
from triage.domain.queue import estimated_wait_minutes, priority_sort
from triage.domain.validation import UNUSABLE_NAME, usable_name
from triage.domain.vocabulary import EXPOSURES, SYMPTOM_BY_CODE
from triage.models import CallbackRequest, ContactAttempt, Encounter, Origin, utcnow
from triage.notify import Notifier, Outgoing, commit_and_deliver, queue_message
from triage.services import store
from triage.services.core import (
    PATIENT,
    SYSTEM,
    Actor,
    Facts,
    format_reference,
    lock_encounter,
    log_entry,
    new_encounter,
    normalize_reference,
    queue_position,
    transition,
)
from triage.services.slots import (
    SlotOffer,
    aware,
    booking_window,
    chosen_slot,
    describe_day,
    describe_slot,
    first_free_slot,
    is_bookable,
    next_free_slots,
    parse_slot_key,
)
from triage.services.staff import digest
from triage.services.store import ASSESSMENT, ENCOUNTER, SLOT, AssessmentRecord, EncounterRecord, SlotRecord
from triage.workflow import Workflow

CALLBACK = CallbackRequest.__table__  # type: ignore[attr-defined]
ONLINE_FOLLOWUP = "online_followup"
NO_APPOINTMENT = "no_appointment"  # disposition: a stream that takes patients without a booked slot
LIVE_BOOKING_STATES = ("prescreened", "booked")
# One phone may hold this many live pre-screens: a family, not a script emptying the slots.
MAX_LIVE_PER_PHONE = 8
NAME_MAX = 50
REASON_MAX = 200
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 characters

LinkBuilder = Callable[[str], str]


# --- small values ------------------------------------------------------------------------------------


def normalize_phone(text: str | None) -> str:
    """ASCII digits only; a mainland number written with the country code (+86 / 0086) loses it.

    A decimal digit of any script (full-width "１３８" from a Chinese keyboard) counts as its ASCII digit, so one
    number is stored and compared one way; other characters, superscripts ("²") among them, are left out.
    """
    text = text or ""
    digits = text if text.isascii() and text.isdigit() else "".join(
        str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())
    for prefix in ("0086", "86"):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and len(rest) == 11 and rest.startswith("1"):
            return rest
    return digits


def new_status_token() -> str:
    """The secret of a status link; only its SHA-256 digest is stored."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def danger_signs(symptoms: Iterable[str], *, pregnant: bool = False) -> tuple[str, ...]:
    """The declared symptoms the vocabulary marks as online red flags (go to emergency now)."""
    found = []
    for code in symptoms:
        symptom = SYMPTOM_BY_CODE.get(code)
        if symptom is not None and (symptom.red_flag or (pregnant and symptom.red_flag_in_pregnancy)):
            found.append(code)
    return tuple(found)



# --- submitting a pre-screen ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrescreenRequest:
    """What the patient (or an app on their behalf) submits."""

    name: str
    phone: str
    answers: Mapping[str, Any]  # the engine's input (age_years, sex, symptoms, epi, ...); stage is set here
    preferred_day: date | None = None
    visit_reason: str = ""
    consent: bool = False
    slot_key: str | None = None  # a chosen slot; otherwise the first free one on the preferred day
    accept_online_followup: bool | None = None
    family_of: EncounterRecord | None = None  # book together with this member (same phone, same party)
    lang: str = "zh"


@dataclass
class PrescreenOutcome:
    """The new encounter, the engine's decision, the one-time status secret and the booked slot."""

    encounter: EncounterRecord
    decision: Decision
    status_token: str
    slot: SlotRecord | None
    view: VisitView  # the visit as the patient sees it now
    alternatives: list[SlotOffer] = field(default_factory=list)

    @property
    def next_step(self) -> str:
        """What the patient does next: a stable code for the API and the pages."""
        return next_step(self.encounter, self.decision.stream)


def next_step(encounter: EncounterRecord, stream: Stream | str | None) -> str:
    """What the patient does next, as a stable code.

    go_to_emergency_now | online_followup | come_at_slot | come_without_appointment | choose_slot |
    closed | on_site.
    """
    state = encounter.state
    if state == "directed_to_emergency":
        return "go_to_emergency_now"
    if state == "referred":
        return "online_followup" if encounter.disposition == ONLINE_FOLLOWUP else "closed"
    if state == "booked":
        return "come_at_slot"
    if state == "prescreened":
        value = stream.value if isinstance(stream, Stream) else stream
        if value == Stream.EMERGENCY.value or encounter.disposition == NO_APPOINTMENT:
            return "come_without_appointment"
        return "choose_slot"
    if state in ("cancelled", "no_show", "completed", "left_without_being_seen"):
        return "closed"
    return "on_site"


def validate_contact(name: str, phone: str) -> dict[str, tuple[str, str]]:
    """Field errors of the contact details (empty when they are fine)."""
    errors: dict[str, tuple[str, str]] = {}
    clean = " ".join((name or "").split())
    if not clean:
        errors["name"] = ("请填写就诊人姓名。", "Enter the patient's name.")
    elif len(clean) > NAME_MAX:
        errors["name"] = (f"姓名最多 {NAME_MAX} 个字。", f"The name can have at most {NAME_MAX} characters.")
    elif not usable_name(clean):
        errors["name"] = UNUSABLE_NAME
    digits = normalize_phone(phone)
    if not (phone or "").strip():
        errors["phone"] = ("请填写手机号码，以便医院联系您。", "Enter a phone number so the hospital can reach you.")
    elif len(digits) < 7 or len(digits) > 15 or any(
            not (ch.isdecimal() or ch in " +-()\u3000＋－（）") for ch in phone.strip()):
        errors["phone"] = ("请填写正确的电话号码，例如 138 0013 8000。",
                           "Enter a valid phone number, e.g. 138 0013 8000.")
    elif len(digits) == 11 and digits.startswith("1") and digits[1] not in "3456789":
        errors["phone"] = ("手机号码第二位应为 3–9，请核对。",
                           "A mobile number's second digit is 3 to 9; please check it.")
    return errors


_LIVE_FOR_PHONE = select(func.count()).select_from(ENCOUNTER).where(
    ENCOUNTER.c.patient_phone == bindparam("phone"), store.among(ENCOUNTER.c.state, LIVE_BOOKING_STATES))


def _validate_request(session: Session, request: PrescreenRequest, data: Mapping[str, Any], policy: Policy,
                      now: datetime) -> dict[str, tuple[str, str]]:
    errors = validate_contact(request.name, request.phone)
    first, last = booking_window(policy, now)
    if request.preferred_day is None:
        errors["preferred_day"] = ("请选择希望就诊的日期。", "Choose the day you would like to come.")
    elif not first <= request.preferred_day <= last:
        errors["preferred_day"] = (
            f"只能预约今天到 {describe_day(last, 'zh')} 之间的日期。",
            f"You can book from today up to {describe_day(last, 'en')}.")
    if data.get("sex") is None:
        errors["sex"] = ("请选择性别。", "Choose the sex.")
    epi = data.get("epi")
    if not isinstance(epi, Mapping) or any(not isinstance(epi.get(e.code), bool) for e in EXPOSURES):
        errors["epi"] = (f"请回答近 {policy.clinical.exposure_window_days} 天的每个流行病学史问题（是或否）。",
                         f"Answer every question about the last {policy.clinical.exposure_window_days} days "
                         f"(yes or no).")
    reason = (request.visit_reason or "").strip()
    if len(reason) > REASON_MAX:
        errors["visit_reason"] = (f"最多 {REASON_MAX} 个字。", f"At most {REASON_MAX} characters.")
    elif not reason and not data.get("symptoms") and not data.get("needs"):
        errors["visit_reason"] = ("请告诉我们为什么来医院：勾选症状或需求，或写下就诊原因。",
                                  "Tell us why you are coming: tick a symptom or a need, or write the reason.")
    if not request.consent:
        errors["consent"] = ("请确认同意医院为本次就诊使用这些信息。",
                             "Please agree that the hospital uses this information for the visit.")
    return errors


def _phone_limit_error(session: Session, phone: str) -> dict[str, tuple[str, str]]:
    """The phone field's error when the number holds as many live pre-screens as one phone may."""
    live = run(store.connection(session), _LIVE_FOR_PHONE, {"phone": normalize_phone(phone)}).scalar_one()
    if live < MAX_LIVE_PER_PHONE:
        return {}
    return {"phone": (f"这个号码已有 {MAX_LIVE_PER_PHONE} 个未完成的预约。请先取消不需要的预约，或致电医院。",
                      f"This phone number already has {MAX_LIVE_PER_PHONE} open bookings. Cancel one you do not "
                      f"need, or call the hospital.")}


def check_prescreen(session: Session, *, request: PrescreenRequest, policy: Policy, now: datetime | None = None,
                    ) -> tuple[Decision, dict[str, tuple[str, str]]]:
    """Assess a pre-screen and list the field errors (contact details, day, answers); stores nothing.

    The limit of live pre-screens per phone needs the database: it is checked here only when another answer
    is wrong too (to list every error at once), else by `submit_prescreen` in its transaction. On SQLite the
    first statement of a request takes the write lock, so a correct pre-screen reads nothing before its writes.
    """
    now = now or utcnow()
    data = _engine_input(request.answers)
    decision = assess(data, policy, now=now)
    errors = _validate_request(session, request, data, policy, now)
    for error in decision.errors:
        errors.setdefault(error.field, (error.zh, error.en))
    if errors and "phone" not in errors:
        errors.update(_phone_limit_error(session, request.phone))
    return decision, errors


def _engine_input(answers: Mapping[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in answers.items() if v is not None and k not in ("stage", "arrival_mode", "context")}
    data["stage"] = "online"
    data["arrival_mode"] = "online"
    return data


def submit_prescreen(
    session: Session,
    *,
    request: PrescreenRequest,
    workflow: Workflow,
    policy: Policy,
    notifier: Notifier,
    status_link: LinkBuilder | None = None,
    now: datetime | None = None,
    checked: Decision | None = None,
) -> PrescreenOutcome:
    """Validate, assess (online), create and route one pre-screen; book its slot; commits, then notifies.

    `checked` is the decision of `check_prescreen` for this request, found without errors: the caller has
    checked it already and it is not done twice. The phone's limit of live pre-screens is checked here, in the
    transaction that writes, after a lock per phone number on PostgreSQL (InvalidInput on the phone field).
    """
    now = now or utcnow()
    if checked is None:
        decision, errors = check_prescreen(session, request=request, policy=policy, now=now)
        if errors:
            raise InvalidInput(errors)
    else:
        decision = checked
    data = _engine_input(request.answers)
    assert decision.stream is not None
    stream = decision.stream
    preferred = request.preferred_day
    assert preferred is not None

    # Everything that needs no database first: on SQLite the write lock is held from the first statement.
    party = request.family_of.party_id if request.family_of is not None else None
    encounter = new_encounter(
        origin=Origin.ONLINE, state="prescreened", workflow=workflow, policy=policy, now=now,
        patient_name=" ".join(request.name.split())[:NAME_MAX],
        patient_phone=normalize_phone(request.phone),
        party_id=party or secrets.token_hex(8),
        age_years=int(data["age_years"]) if isinstance(data.get("age_years"), (int, float)) else None,
        sex=data.get("sex") if data.get("sex") in ("F", "M") else None,
        visit_reason=(request.visit_reason or "").strip()[:REASON_MAX] or None,
        patient_lang="en" if request.lang == "en" else "zh",
        provisional_stream=stream.value,
        priority_flags=",".join(decision.priority_flags),
        priority_sort=priority_sort(decision.priority_flags),
        isolation_required=decision.isolation_required,
        visit_day=preferred,
    )
    token = new_status_token()
    encounter.status_token_hash = digest(token)
    link = status_link(token) if status_link else ""
    log_entry(encounter, workflow=workflow, policy=policy, actor=PATIENT, now=now)
    assessment = _assessment_row(data, decision, now)

    # Pre-screens from one phone at the same instant would each count the others' bookings as not yet there.
    serialize(session, f"prescreen.phone:{encounter.patient_phone}")
    limit = _phone_limit_error(session, request.phone)
    if limit:
        raise InvalidInput(limit)
    slot: SlotRecord | None = None
    alternatives: list[SlotOffer] = []
    online_followup = False
    if decision.emergency_now:
        signs = danger_signs(data.get("symptoms") or (), pregnant=bool(data.get("pregnancy_weeks")))
        encounter.visit_day = policy.local(now).date()
        transition(session, encounter, "direct_to_emergency", workflow=workflow, policy=policy, actor=PATIENT,
                   facts=Facts(reason="online red flag: " + (", ".join(signs) or _rules(decision))), now=now)
    elif request.accept_online_followup and decision.online_followup_eligible:
        _refer_online(session, encounter, workflow=workflow, policy=policy, actor=PATIENT, now=now)
        online_followup = True
    elif not is_bookable(policy, stream):
        # Emergency (not a red flag) and walk-in clinics take patients without an appointment: the pass
        # is scanned at the entrance, today.
        encounter.visit_day = policy.local(now).date() if stream is Stream.EMERGENCY else preferred
        encounter.disposition = NO_APPOINTMENT
    elif request.slot_key:
        slot = chosen_slot(session, policy, stream, request.slot_key, now)
        transition(session, encounter, "book", workflow=workflow, policy=policy, actor=PATIENT,
                   facts=Facts(slot=slot), now=now)
    else:
        slot = first_free_slot(session, policy, stream, preferred, now)
        if slot is not None:
            transition(session, encounter, "book", workflow=workflow, policy=policy, actor=PATIENT,
                       facts=Facts(slot=slot), now=now)
        else:
            alternatives = next_free_slots(session, policy, stream, after=preferred, now=now)
    store.save(session, encounter, assessment)
    if online_followup:
        _open_followup_request(session, encounter, now)
    outgoing = [_message_after_submit(encounter, slot, policy, link)]
    commit_and_deliver(session, notifier, outgoing)
    view = visit_view(session, encounter, policy, now, assessment_result=assessment.result,
                      open_callback=online_followup, slot_end=aware(slot.ends_at) if slot else None)
    return PrescreenOutcome(encounter=encounter, decision=decision, status_token=token, slot=slot,
                            alternatives=alternatives, view=view)


def _rules(decision: Decision) -> str:
    return ", ".join(r.rule for r in decision.reasons)


def _assessment_row(data: Mapping[str, Any], decision: Decision, now: datetime) -> AssessmentRecord:
    result = decision.to_dict("zh")
    # Staff read the reasons in their own language later: keep the English sentences beside the Chinese.
    result["reasons_en"] = [{"rule": r.rule, "message": r.text("en")} for r in decision.reasons]
    return AssessmentRecord(
        id=None, encounter_id=None, stage="online", created_at=now, actor_id=None, inputs=dict(data), result=result,
        recommended_stream=decision.stream.value if decision.stream else None, recommended_level=decision.cn_level,
        final_stream=None, final_level=None, overridden=False, override_reason=None,
        policy_version=decision.policy_version)


def _refer_online(session: Session, encounter: EncounterRecord, *, workflow: Workflow, policy: Policy,
                  actor: Actor, now: datetime) -> None:
    transition(session, encounter, "refer", workflow=workflow, policy=policy, actor=actor,
               facts=Facts(reason="online follow-up accepted", referral_target=ONLINE_FOLLOWUP), now=now)
    encounter.disposition = ONLINE_FOLLOWUP


def refer_online(session: Session, encounter: EncounterRecord, *, workflow: Workflow, policy: Policy, actor: Actor,
                 now: datetime) -> None:
    """Refer a locked, live pre-screen to online follow-up and open the online clinic's call request (no commit)."""
    _refer_online(session, encounter, workflow=workflow, policy=policy, actor=actor, now=now)
    store.save(session, encounter)
    _open_followup_request(session, encounter, now)


def _open_followup_request(session: Session, encounter: EncounterRecord, now: datetime) -> None:
    # The online clinic has to reach the patient: the request waits in the staff's contact list.
    session.add(CallbackRequest(encounter_id=encounter.id, created_at=now,
                                stream=encounter.provisional_stream or Stream.CHRONIC.value,
                                preferred_day=encounter.visit_day))


# --- finding a visit ------------------------------------------------------------------------------------


def find_by_token(session: Session, token: str) -> EncounterRecord:
    """The encounter whose status link carries `token`, or NotFound."""
    secret = (token or "").strip()
    encounter = None
    if 20 <= len(secret) <= 100:
        encounter = store.by_token_hash(session, digest(secret))
    if encounter is None or encounter.purged_at is not None:
        raise NotFound("此链接无效或已过期。您可以用编号和手机号查询。",
                       "This link is not valid. You can look up your visit with its code and your phone number.")
    return encounter


_NO_MATCH = ("编号或手机号不正确。", "The code or the phone number is not right.")


def find_by_reference_and_phone(session: Session, reference: str, phone: str) -> EncounterRecord:
    """The encounter with this reference whose phone matches (digits compared); one message for any miss."""
    code = normalize_reference(reference or "")
    digits = normalize_phone(phone)
    encounter = None
    if code and len(code) <= 16:
        encounter = store.by_reference(session, code)
    stored = encounter.patient_phone if encounter is not None and encounter.patient_phone else "-"
    # Compare in constant time, and as much work whether or not the code exists.
    matches = hmac.compare_digest(normalize_phone(stored).encode(), digits.encode()) and bool(digits)
    if encounter is None or not matches or encounter.purged_at is not None:
        raise NotFound(*_NO_MATCH, field="reference")
    return encounter


def get_encounter(session: Session, reference: str) -> EncounterRecord:
    """The encounter with this reference code, or NotFound."""
    encounter = store.by_reference(session, normalize_reference(reference or ""))
    if encounter is None:
        raise NotFound("找不到此编号的预约。", "No visit has this reference code.", field="reference")
    return encounter


_PARTY = store.select_all().where(ENCOUNTER.c.party_id == bindparam("party_id")).order_by(ENCOUNTER.c.id)


def party_members(session: Session, encounter: EncounterRecord) -> list[EncounterRecord]:
    """Everyone pre-screened together with `encounter` from one phone (itself included), oldest first."""
    if not encounter.party_id:
        return [encounter]
    return store.fetch(session, _PARTY, {"party_id": encounter.party_id})


_ONLINE_RESULT = (select(ASSESSMENT.c.result)
                  .where(ASSESSMENT.c.encounter_id == bindparam("encounter_id"), ASSESSMENT.c.stage == "online")
                  .order_by(ASSESSMENT.c.id.desc()).limit(1))
_SLOT_END = select(SLOT.c.ends_at).where(SLOT.c.id == bindparam("slot_id"))
_OPEN_CALLBACK = select(CALLBACK.c.id).where(CALLBACK.c.encounter_id == bindparam("encounter_id"),
                                             CALLBACK.c.handled_at.is_(None)).limit(1)


def online_result(session: Session, encounter: EncounterRecord) -> Mapping[str, Any] | None:
    """The result of the encounter's latest online assessment."""
    result: Mapping[str, Any] | None = run(store.connection(session), _ONLINE_RESULT,
                                             {"encounter_id": encounter.id}).scalar()
    return result


@dataclass(frozen=True)
class VisitView:
    """Everything the status page shows, computed once: no patient answers in it."""

    encounter: EncounterRecord
    stream: Stream | None
    slot_start: datetime | None
    slot_end: datetime | None
    reason_zh: str
    reason_en: str
    isolation_required: bool
    online_followup_offered: bool
    open_callback: bool
    queue_position: int | None
    estimated_wait_minutes: int | None
    can_change: bool
    next_step: str

    def reason(self, lang: str) -> str:
        """The one-line routing reason in the given language."""
        return self.reason_en if lang == "en" else self.reason_zh


def _route_reason(reasons: Any, *keys: str) -> str:
    """The text of the first routing reason in a stored list of reasons, or "".

    Reads both stored forms (the pre-screen's "message", the on-site {"zh", "en"}) and tolerates anything else.
    """
    for reason in reasons if isinstance(reasons, list) else []:
        if isinstance(reason, Mapping) and str(reason.get("rule", "")).startswith("ROUTE-"):
            return next((str(reason[key]) for key in keys if reason.get(key)), "")
    return ""


def visit_view(session: Session, encounter: EncounterRecord, policy: Policy, now: datetime | None = None, *,
               assessment_result: Mapping[str, Any] | None = None, open_callback: bool | None = None,
               slot_end: datetime | None = None) -> VisitView:
    """The status of one visit as the patient sees it.

    `assessment_result` (of its online assessment), `open_callback` (whether a callback request waits) and
    `slot_end` are read from the database unless the caller, which has just written them, knows them.
    """
    now = now or utcnow()
    stream_code = encounter.stream or encounter.provisional_stream
    stream = Stream(stream_code) if stream_code else None
    result = assessment_result if assessment_result is not None else online_result(session, encounter)
    reason_zh = reason_en = ""
    eligible = False
    if result is not None:
        eligible = bool(result.get("online_followup_eligible"))
        reason_zh = _route_reason(result.get("reasons"), "message", "zh")
        reason_en = _route_reason(result.get("reasons_en"), "message") or _route_reason(result.get("reasons"), "en")
    if encounter.slot_id is not None and slot_end is None:
        ends_at = run(store.connection(session), _SLOT_END, {"slot_id": encounter.slot_id}).scalar()
        slot_end = aware(ends_at) if ends_at is not None else None
    elif encounter.slot_id is None:
        slot_end = None
    position = queue_position(session, encounter)
    wait = None
    if position is not None and stream is not None:
        wait = estimated_wait_minutes(position - 1, policy.streams[stream].consultation_minutes)
    live = encounter.state in LIVE_BOOKING_STATES and not is_stale(encounter, policy, now)
    if open_callback is None:
        # Shown only to a patient still choosing a time (a request closes when the visit is booked or cancelled).
        open_callback = encounter.state == "prescreened" and run(
            store.connection(session), _OPEN_CALLBACK, {"encounter_id": encounter.id}).first() is not None
    return VisitView(
        encounter=encounter, stream=stream,
        slot_start=aware(encounter.slot_starts_at) if encounter.slot_starts_at and encounter.slot_id else None,
        slot_end=slot_end, reason_zh=reason_zh, reason_en=reason_en,
        isolation_required=encounter.isolation_required,
        online_followup_offered=live and eligible, open_callback=open_callback,
        queue_position=position, estimated_wait_minutes=wait, can_change=live,
        next_step=next_step(encounter, stream))


# --- the patient's changes --------------------------------------------------------------------------------


def live_encounter(session: Session, reference: str, policy: Policy, workflow: Workflow, now: datetime
                   ) -> EncounterRecord:
    """The encounter, locked, when it is still valid; an expired pre-screen is expired (committed) and refused."""
    encounter = lock_encounter(session, reference)
    if is_stale(encounter, policy, now):
        _expire(session, encounter, workflow=workflow, policy=policy, now=now)
        store.save(session, encounter)
        session.commit()
        raise Conflict("此预检已过期（仅在预约当天有效），请重新预检。",
                       "This pre-screen has expired (it is valid on its day only). Please pre-screen again.")
    return encounter


_MOVE_AFTER_CHECK_IN = ("到院签到后不能再改约。", "The time cannot be changed after check-in.")
_CANCEL_AFTER_CHECK_IN = ("到院签到后不能在线取消。", "A visit cannot be cancelled online after check-in.")
# Why a visit that never reached the hospital can no longer be changed, by its state.
_CLOSED_BEFORE_ARRIVAL: Mapping[str, tuple[str, str]] = {
    "cancelled": ("此预约已取消，不能再更改。如需就诊，请重新预检。",
                  "This visit is cancelled and can no longer be changed. To come, pre-screen again."),
    "no_show": ("此预约已过期（仅在预约当天有效），不能再更改。如需就诊，请重新预检。",
                "This visit has expired (it was valid on its day only) and can no longer be changed. "
                "To come, pre-screen again."),
    "directed_to_emergency": ("您已被指引立即前往急诊，无需预约时段。请现在就去急诊。",
                              "You were told to go to the emergency department now: no time slot is needed. "
                              "Go now."),
    "referred": ("此就诊已改为线上复诊或转诊，不能再预约到院时间。",
                 "This visit became an online follow-up or a referral: no time at the hospital can be booked."),
}


def _not_live(encounter: EncounterRecord, after_check_in: tuple[str, str]) -> tuple[str, str]:
    """The (zh, en) reason why a visit no longer open to online changes cannot be changed."""
    if encounter.arrived_at is not None:
        return after_check_in
    return _CLOSED_BEFORE_ARRIVAL.get(encounter.state, after_check_in)


def _check_channel(channel: str | None) -> None:
    """InvalidInput unless `channel` (how staff reached the patient) is one of the known contact channels."""
    from triage.services.contacts import CONTACT_CHANNELS  # contacts builds on this module

    if channel is not None and channel not in CONTACT_CHANNELS:
        raise InvalidInput({"channel": ("请选择联系方式。", "Choose how you contacted the patient.")})


def move_visit(
    session: Session,
    *,
    reference: str,
    slot_key: str,
    workflow: Workflow,
    policy: Policy,
    notifier: Notifier,
    actor: Actor = PATIENT,
    channel: str | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> EncounterRecord:
    """Book (if no slot yet) or move the visit to the slot named by `slot_key`; commits, then notifies.

    InvalidInput for a slot key that names no bookable slot or an unknown contact channel; Conflict when the
    visit cannot be moved now (closed, checked in) or the slot is full or has started.
    """
    now = now or utcnow()
    _check_channel(channel)
    encounter = live_encounter(session, reference, policy, workflow, now)
    if encounter.state not in LIVE_BOOKING_STATES:
        raise Conflict(*_not_live(encounter, _MOVE_AFTER_CHECK_IN), field="slot")
    stream = Stream(encounter.provisional_stream or Stream.GENERAL.value)
    if not is_bookable(policy, stream):
        raise Conflict("此门诊无需预约时段，请直接按指引到院。",
                       "This clinic takes patients without an appointment; come as the guidance says.",
                       field="slot")
    starts_at = parse_slot_key(slot_key, policy)
    if starts_at is None:
        raise InvalidInput({"slot": ("请选择一个时段。", "Choose a time slot.")})
    if encounter.slot_id is not None and encounter.slot_starts_at is not None \
            and aware(encounter.slot_starts_at) == starts_at:
        raise Conflict("这已经是您预约的时段。", "This is already your booked time.", field="slot")
    slot = chosen_slot(session, policy, stream, slot_key, now, also_lock=[encounter.slot_id])
    trigger = "reschedule" if encounter.state == "booked" else "book"
    transition(session, encounter, trigger, workflow=workflow, policy=policy, actor=actor,
               facts=Facts(slot=slot, reason="moved by staff" if actor.kind == "staff" else None),
               expected_version=expected_version, now=now)
    encounter.disposition = None
    store.save(session, encounter)
    if actor.kind == "staff":
        session.add(ContactAttempt(encounter_id=encounter.id or 0, at=now, actor_id=actor.user_id,
                                   channel=channel or "phone", outcome="reached_moved",
                                   note=describe_slot(slot.starts_at, slot.ends_at, policy, "zh")))
    close_callbacks(session, encounter, actor, now, outcome="booked " + slot.starts_at.isoformat())
    when_zh = describe_slot(slot.starts_at, slot.ends_at, policy, "zh")
    when_en = describe_slot(slot.starts_at, slot.ends_at, policy, "en")
    message = patient_message(encounter, policy,
                              zh=f"您的就诊时间已改为 {when_zh}，编号 {format_reference(encounter.reference)}。",
                              en=f"Your visit is now {when_en}, code {format_reference(encounter.reference)}.")
    commit_and_deliver(session, notifier, [message])
    return encounter


def cancel_visit(
    session: Session,
    *,
    reference: str,
    workflow: Workflow,
    policy: Policy,
    notifier: Notifier,
    actor: Actor = PATIENT,
    reason: str | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> EncounterRecord:
    """Cancel a visit before check-in (its slot is released); commits, then notifies."""
    now = now or utcnow()
    _check_channel(channel)
    encounter = live_encounter(session, reference, policy, workflow, now)
    if encounter.state not in LIVE_BOOKING_STATES:
        raise Conflict(*_not_live(encounter, _CANCEL_AFTER_CHECK_IN))
    why = (reason or "").strip()
    if actor.kind == "staff" and not why:
        raise InvalidInput({"reason": ("请填写取消原因。", "Give the reason for cancelling.")})
    transition(session, encounter, "cancel", workflow=workflow, policy=policy, actor=actor,
               facts=Facts(reason=why or "cancelled by the patient"), now=now)
    store.save(session, encounter)
    if actor.kind == "staff":
        session.add(ContactAttempt(encounter_id=encounter.id or 0, at=now, actor_id=actor.user_id,
                                   channel=channel or "phone", outcome="reached_cancelled", note=why[:2000]))
    close_callbacks(session, encounter, actor, now, outcome="cancelled")
    ref = format_reference(encounter.reference)
    if actor.kind == "staff":
        message = patient_message(encounter, policy,
                                  zh=f"医院已取消您的预约（编号 {ref}）：{why}。如需就诊请重新预检。",
                                  en=f"The hospital cancelled your visit (code {ref}): {why}. "
                                     f"Pre-screen again to come.")
    else:
        message = patient_message(encounter, policy, zh=f"您的预约（编号 {ref}）已取消。",
                                  en=f"Your visit (code {ref}) is cancelled.")
    commit_and_deliver(session, notifier, [message])
    return encounter


def choose_online_followup(
    session: Session,
    *,
    reference: str,
    workflow: Workflow,
    policy: Policy,
    notifier: Notifier,
    actor: Actor = PATIENT,
    now: datetime | None = None,
) -> EncounterRecord:
    """Take the offer of online follow-up instead of a visit (a recorded referral); commits, then notifies."""
    now = now or utcnow()
    encounter = live_encounter(session, reference, policy, workflow, now)
    result = online_result(session, encounter)
    if encounter.state not in LIVE_BOOKING_STATES or result is None or not result.get("online_followup_eligible"):
        raise Conflict("此预约不能改为线上复诊。", "Online follow-up is not offered for this visit.")
    refer_online(session, encounter, workflow=workflow, policy=policy, actor=actor, now=now)
    message = patient_message(encounter, policy,
                     zh=f"您已选择线上复诊（编号 {format_reference(encounter.reference)}），无需到院。"
                        f"医院线上门诊将致电联系您。",
                     en=f"You chose online follow-up (code {format_reference(encounter.reference)}): no need to "
                        f"come in. The hospital's online clinic will call you.")
    commit_and_deliver(session, notifier, [message])
    return encounter


def request_callback(
    session: Session,
    *,
    reference: str,
    workflow: Workflow,
    policy: Policy,
    notifier: Notifier,
    now: datetime | None = None,
) -> CallbackRequest:
    """Ask staff to call back when no slot is free (once per visit); commits, then notifies."""
    now = now or utcnow()
    encounter = live_encounter(session, reference, policy, workflow, now)
    if encounter.state != "prescreened":
        raise Conflict("您已有预约时段，无需回电。", "You already have a time slot; no callback is needed.")
    existing = session.exec(orm_select(CallbackRequest).where(
        CallbackRequest.encounter_id == encounter.id, col(CallbackRequest.handled_at).is_(None))).first()
    if existing is not None:
        return existing
    request = CallbackRequest(encounter_id=encounter.id, created_at=now,
                              stream=encounter.provisional_stream or Stream.GENERAL.value,
                              preferred_day=encounter.visit_day)
    session.add(request)
    message = patient_message(encounter, policy,
                     zh=f"已收到您的回电请求（编号 {format_reference(encounter.reference)}），工作人员会尽快致电。",
                     en=f"We have your callback request (code {format_reference(encounter.reference)}); "
                        f"staff will call you soon.")
    commit_and_deliver(session, notifier, [message])
    return request


def close_callbacks(session: Session, encounter: EncounterRecord, actor: Actor, now: datetime, *, outcome: str) -> None:
    for request in session.exec(orm_select(CallbackRequest).where(
            CallbackRequest.encounter_id == encounter.id, col(CallbackRequest.handled_at).is_(None))):
        request.handled_at = now
        request.handled_by_id = actor.user_id
        request.outcome = outcome[:200]
        session.add(request)


# --- validity -----------------------------------------------------------------------------------------------


def is_stale(encounter: EncounterRecord, policy: Policy, now: datetime) -> bool:
    """Whether a pre-screen is past its visit day without check-in (it is valid on that day only)."""
    if encounter.state not in LIVE_BOOKING_STATES:
        return False
    day = encounter.visit_day or policy.local(encounter.created_at).date()
    return day < policy.local(now).date()


def _expire(session: Session, encounter: EncounterRecord, *, workflow: Workflow, policy: Policy, now: datetime) -> None:
    transition(session, encounter, "expire", workflow=workflow, policy=policy, actor=SYSTEM,
               facts=Facts(reason=f"visit day {encounter.visit_day} passed without check-in"), now=now)


def expire_if_stale(session: Session, encounter: EncounterRecord, policy: Policy, now: datetime | None = None,
                    *, workflow: Workflow | None = None) -> bool:
    """Expire a pre-screen whose visit day has passed (-> no_show, slot released); commits if it did.

    Call it before changing anything else in `session` (check-in lookups, the status page).
    """
    now = now or utcnow()
    if not is_stale(encounter, policy, now):
        return False
    if workflow is None:
        from triage.hospital import workflow as loaded

        workflow = loaded()
    locked = lock_encounter(session, encounter.reference)
    if not is_stale(locked, policy, now):
        return False
    _expire(session, locked, workflow=workflow, policy=policy, now=now)
    store.save(session, locked)
    session.commit()
    return True


def expire_stale(session: Session, *, workflow: Workflow, policy: Policy, now: datetime | None = None,
                 batch: int = 200) -> int:
    """Expire every pre-screen whose visit day has passed; commits every `batch`; returns how many."""
    now = now or utcnow()
    today = policy.local(now).date()
    start_of_today, _ = policy.local_day_bounds(today)
    references = list(session.exec(orm_select(Encounter.reference).where(
        col(Encounter.state).in_(LIVE_BOOKING_STATES),
        (col(Encounter.visit_day) < today)
        | (col(Encounter.visit_day).is_(None) & (col(Encounter.created_at) < start_of_today)),
    ).order_by(col(Encounter.id))))
    session.rollback()  # end the read before taking locks
    count = 0
    for i, reference in enumerate(references, start=1):
        encounter = lock_encounter(session, reference)
        if is_stale(encounter, policy, now):
            _expire(session, encounter, workflow=workflow, policy=policy, now=now)
            store.save(session, encounter)
            count += 1
        if i % batch == 0:
            session.commit()
    session.commit()
    return count


# --- messages ----------------------------------------------------------------------------------------------


def patient_message(encounter: EncounterRecord, policy: Policy, *, zh: str, en: str,
                    redact: Sequence[str] = ()) -> Outgoing | None:
    """A message to the patient in their language, headed with the hospital's name (None without a phone)."""
    if not encounter.patient_phone:
        return None
    hospital = policy.hospital_name(encounter.patient_lang)
    body = f"{hospital}: {en}" if encounter.patient_lang == "en" else f"【{hospital}】{zh}"
    return queue_message(phone=encounter.patient_phone, body=body, encounter_id=encounter.id, channel="sms",
                         redact=redact)


def _message_after_submit(encounter: EncounterRecord, slot: SlotRecord | None, policy: Policy,
                          link: str) -> Outgoing | None:
    ref = format_reference(encounter.reference)
    link_zh = f"查看、改约或取消：{link}" if link else ""
    link_en = f" View, move or cancel: {link}" if link else ""
    stream = Stream(encounter.provisional_stream) if encounter.provisional_stream else None
    redact = [link] if link else []
    if encounter.state == "directed_to_emergency":
        return None  # they were told on screen to go now; a text message would only arrive later
    if encounter.state == "booked" and slot is not None and stream is not None:
        when_zh = describe_slot(slot.starts_at, slot.ends_at, policy, "zh")
        when_en = describe_slot(slot.starts_at, slot.ends_at, policy, "en")
        return patient_message(encounter, policy, redact=redact,
                               zh=f"预检完成。编号 {ref}，{stream.label('zh')}，{when_zh}。请按时到院并出示通行证。"
                                  + link_zh,
                               en=f"Pre-screen done. Code {ref}, {stream.label('en')}, {when_en}. Come on time and "
                                  f"show your pass." + link_en)
    if encounter.state == "referred":
        return patient_message(encounter, policy, redact=redact,
                               zh=f"您已选择线上复诊（编号 {ref}），无需到院，医院线上门诊将致电联系您。" + link_zh,
                               en=f"You chose online follow-up (code {ref}): no need to come in; the hospital's online "
                                  f"clinic will call you." + link_en)
    return patient_message(encounter, policy, redact=redact,
                           zh=f"预检已保存，编号 {ref}。" + link_zh, en=f"Pre-screen saved, code {ref}." + link_en)
