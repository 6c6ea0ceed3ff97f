"""The clinical assessment engine: validate, then decide stream, acuity, isolation and priority, and why.

Order of decisions (issue 3): validate first and decide nothing on bad input; screen for infection;
grade acuity on the Chinese four-level scale (children on age-band limits); record NEWS2 and qSOFA;
route by the first matching route; cap chronic prescriptions; flag priority groups; apply the regional
risk level; mark the online stage provisional. Every rule that fires adds one Reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from triage.domain.policy import Policy, RiskLevel, Stream
from triage.domain.rules import (
    INFECTION_RULES,
    SCREEN_SYMPTOMS,
    Findings,
    Reason,
    Situation,
    engine_for,
    is_red_flag,
    priority,
    route,
    route_reason,
)
from triage.domain.scores import news2, qsofa
from triage.domain.validation import FieldError, Patient, read_id, validate
from triage.domain.vocabulary import CHRONIC_NEEDS, HANDS_ON_SYMPTOMS, ONLINE_SERVABLE_NEEDS

__all__ = ["Assessment", "FieldError", "Reason", "assess"]

_NO_SCORES: Mapping[str, int | None] = MappingProxyType({"news2": None, "qsofa": None})
_EMERGENCY_NOW = Reason(
    "ONLINE-EMERGENCY-NOW", "回答中有危险信号：请立即前往急诊或拨打 120，不要预约时段。",
    "A danger sign in the answers: go to the emergency department now or call 120; do not book a slot.")
_PROVISIONAL = Reason(
    "ONLINE-PROVISIONAL", "线上预检结果为初步结果，到院后由护士复核。",
    "Online pre-screen: this result is provisional; a nurse re-checks it on arrival.")
_ONLINE_FOLLOWUP = Reason(
    "RX-ONLINE-FOLLOWUP", "病情稳定的续方患者可选择线上复诊和药品配送。",
    "Stable repeat prescription: online follow-up and medicine delivery are offered.")
_HIGH_RISK_REGION = Reason(
    "REGION-HIGH", "本地区为疫情高风险地区：可选择线上复诊或改约较晚时段，减少到院。",
    "High-risk region: you may choose online follow-up or a later slot instead of coming in now.")


@dataclass(frozen=True)
class Assessment:
    """The engine's decision, or a rejection with field errors; serialisable with `to_dict`."""

    outcome: str                    # "route" | "reject"
    stream: Stream | None
    cn_level: int | None            # 1-4, only when the stream is emergency
    isolation_required: bool
    priority_flags: tuple[str, ...]
    max_prescription_weeks: int | None
    online_followup_eligible: bool | None
    provisional: bool
    emergency_now: bool
    infection_screen_positive: bool
    scores: Mapping[str, int | None]
    reasons: tuple[Reason, ...]
    errors: tuple[FieldError, ...]
    policy_version: str
    id: str | int | None = None

    def to_dict(self, lang: str = "zh") -> dict[str, Any]:
        """The JSON contract of issue 3, with messages in `lang` ("zh" or "en")."""
        body: dict[str, Any] = {} if self.id is None else {"id": self.id}
        body.update(
            outcome=self.outcome,
            stream=None if self.stream is None else self.stream.value,
            cn_level=self.cn_level,
            isolation_required=self.isolation_required,
            priority_flags=list(self.priority_flags),
            max_prescription_weeks=self.max_prescription_weeks,
            online_followup_eligible=self.online_followup_eligible,
            provisional=self.provisional,
            emergency_now=self.emergency_now,
            infection_screen_positive=self.infection_screen_positive,
            scores=dict(self.scores),
            reasons=[{"rule": r.rule, "message": r.text(lang)} for r in self.reasons],
            errors=[{"field": e.field, "message": e.text(lang)} for e in self.errors],
            policy_version=self.policy_version,
        )
        return body


def assess(data: Mapping[str, Any], policy: Policy, *, now: datetime | None = None) -> Assessment:
    """Validate then decide. Never raises on bad input: returns outcome "reject" with field errors."""
    ident = read_id(data)
    patient, errors = validate(data)
    if patient is None:
        return Assessment(
            outcome="reject", stream=None, cn_level=None, isolation_required=False, priority_flags=(),
            max_prescription_weeks=None, online_followup_eligible=None, provisional=False,
            emergency_now=False, infection_screen_positive=False, scores=_NO_SCORES, reasons=(),
            errors=errors, policy_version=policy.version, id=ident)
    return _decide(patient, policy, now, ident)


def _decide(p: Patient, policy: Policy, now: datetime | None, ident: str | int | None) -> Assessment:
    c = policy.clinical
    reasons: list[Reason] = []
    infection = _screen(p, policy, reasons)

    febrile = "fever" in p.symptoms or (p.temperature_c is not None and p.temperature_c >= c.fever_threshold_c)
    adult_scores = p.age_years >= c.supporting_scores_from_age_years
    # NEWS2 is not validated in pregnancy (RCP 2017: use an obstetric early-warning chart instead).
    news = news2(p) if adult_scores and not p.pregnant else None
    q_score, q_met = qsofa(p) if adult_scores else (None, 0)
    findings = Findings(
        febrile=febrile,
        infection_signs=febrile or not SCREEN_SYMPTOMS.isdisjoint(p.symptoms),
        adult_scores=adult_scores,
        qsofa_met=q_met,
        child=p.age_days < c.paediatric.under_days,
    )
    level = engine_for(c).grade(p, findings, policy.newborn_under_days, reasons)

    online = p.online
    urgent = is_red_flag(p, level) if online else level <= 2
    at = p.at
    if at is not None and at.tzinfo is None:
        # A time without offset in the request is the hospital's local time, as a nurse would type it.
        at = at.replace(tzinfo=policy.timezone)
    chosen = route(Situation(
        infection=infection, level=level, urgent=urgent, chronic_need=not CHRONIC_NEEDS.isdisjoint(p.needs),
        online=online, policy=policy, at=at or now, outpatient_open=p.outpatient_open))
    cn_level = level if chosen.stream is Stream.EMERGENCY else None
    reasons.append(route_reason(chosen, level))

    emergency_now = online and urgent and chosen.stream is Stream.EMERGENCY
    if emergency_now:
        reasons.append(_EMERGENCY_NOW)

    flags = priority(p, policy, reasons)
    high_risk = (p.region_risk_level or policy.region_risk_level) is RiskLevel.HIGH
    weeks, followup = _chronic_and_region(p, policy, chosen.stream, flags, high_risk, reasons)

    if online:
        reasons.append(_PROVISIONAL)
    return Assessment(
        outcome="route",
        stream=chosen.stream,
        cn_level=cn_level,
        isolation_required=chosen.isolation,
        priority_flags=flags,
        max_prescription_weeks=weeks,
        online_followup_eligible=followup,
        provisional=online,
        emergency_now=emergency_now,
        infection_screen_positive=infection,
        scores={"news2": news, "qsofa": q_score},
        reasons=tuple(reasons),
        errors=(),
        policy_version=policy.version,
        id=ident,
    )


def _screen(p: Patient, policy: Policy, reasons: list[Reason]) -> bool:
    """Fever-clinic infection screen; appends one Reason per trigger and says whether any fired."""
    c = policy.clinical
    start = len(reasons)
    for rule in INFECTION_RULES:
        if rule.when(p, c):
            reasons.append(Reason(rule.rule, *rule.describe(p, c)))
    return len(reasons) > start


def _chronic_and_region(p: Patient, policy: Policy, stream: Stream, flags: tuple[str, ...], high_risk: bool,
                        reasons: list[Reason]) -> tuple[int | None, bool | None]:
    """Prescription cap and online follow-up (chronic), and the high-risk-region offer (general)."""
    if stream is Stream.CHRONIC:
        cap = policy.max_prescription_weeks
        asked = p.requested_prescription_weeks
        zh = f"慢病长处方最长 {cap} 周"
        en = f"Chronic care: a prescription may cover up to {cap} weeks"
        if asked is not None and asked > cap:
            zh += f"（申请 {asked} 周，按上限 {cap} 周开具）"
            en += f" ({asked} weeks were requested; capped at {cap})"
        reasons.append(Reason("RX-CAP", zh + "。", en + "."))
        # Online follow-up suits a stable refill only: dialysis, chemo- or radiotherapy, and a complaint that needs
        # hands (a wound, an injury, bleeding) need the patient here.
        servable = p.needs <= ONLINE_SERVABLE_NEEDS and HANDS_ON_SYMPTOMS.isdisjoint(p.symptoms)
        followup = servable and (policy.offer_online_followup_to_stable_refill or high_risk)
        if followup:
            reasons.append(_ONLINE_FOLLOWUP)
            if high_risk:
                reasons.append(_HIGH_RISK_REGION)
        return cap, followup
    # High-risk region (162 §1-4): who can be served online is offered online follow-up or a later slot;
    # emergency and priority groups are never refused, so they are not offered to stay away.
    if stream is Stream.GENERAL and high_risk and not flags and HANDS_ON_SYMPTOMS.isdisjoint(p.symptoms):
        reasons.append(_HIGH_RISK_REGION)
        return None, True
    return None, None
