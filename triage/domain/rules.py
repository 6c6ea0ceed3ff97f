"""The engine's rules as tables a clinician can read: id, level or stream, condition, source.

- INFECTION_RULES: fever-clinic triggers (notice 141 §4; NHC fever-clinic screening criteria, 2020).
- VITAL_RULES: one measurement against one policy threshold; per measurement the most urgent match wins.
- CLINICAL_RULES: declared symptoms and combinations (consensus 2018 人工评定指标, ESI, Sepsis-3).
- ROUTES: the first route whose condition holds decides the stream (notice 141 §3-4, 004 §3.3).
- PRIORITY_RULES: groups that move up the queue and never change the stream (141 §3, 162 §4, 004 §3.3).

Thresholds are named by their key in the policy's `clinical` section (triage/domain/clinical.py), so a
changed policy changes the decision without touching this file.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from triage.domain.clinical import ClinicalPolicy, PaediatricBand, lookup
from triage.domain.policy import Policy, Stream
from triage.domain.validation import MEASURES, Patient
from triage.domain.vocabulary import (
    CONDITIONS,
    EXPOSURES,
    INFECTION_SYMPTOMS,
    NEEDS,
    RED_FLAG_SYMPTOMS,
    SYMPTOMS,
    Exposure,
    label,
)

# The objective criteria are shared by the 2018 consensus and the 2011 guidance.
C18 = "急诊预检分诊专家共识, 中华急诊医学杂志 2018;27(6); 急诊病人病情分级试点指导原则 2011"
ESI = "Emergency Severity Index v4 handbook (danger-zone vital signs, febrile infant)"
PALS = "AHA Pediatric Advanced Life Support 2020"
COVID7 = "新型冠状病毒肺炎诊疗方案（试行第七版）2020 (severe: RR >= 30)"
NEWS2 = "NEWS2, Royal College of Physicians 2017"
SEPSIS3 = "Sepsis-3 (JAMA 2016): suspected infection and qSOFA >= 2"
AAP21 = "AAP clinical practice guideline, well-appearing febrile infants 8-60 days, 2021"
N141 = "国卫办医函〔2020〕141号"
N162 = "国卫办医函〔2020〕162号"
N004 = "joint-mechanism notice on restoring normal medical services, March 2020"
FEVER_CLINIC = "141 §4: separate fever patients at once; NHC fever-clinic screening criteria 2020"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a decision was made: the rule that fired and a sentence in Chinese and English."""

    rule: str
    zh: str
    en: str

    def text(self, lang: str) -> str:
        """The sentence in the given language ("zh" or "en")."""
        return self.en if lang == "en" else self.zh


LEVEL_NAMES = {1: ("濒危", "critical"), 2: ("危重", "emergent"), 3: ("急症", "urgent"),
               4: ("非急症", "non-urgent")}


def _at_level(zh: str, en: str, level: int) -> tuple[str, str]:
    name_zh, name_en = LEVEL_NAMES[level]
    return f"{zh}：{level}级（{name_zh}）。", f"{en}: level {level} ({name_en})."


def _num(value: float) -> str:
    return f"{value:g}"


# ---------------------------------------------------------------------------------------------------
# Infection screen: fever-clinic criteria. Any trigger sends the patient to fever-clinic screening.
# ---------------------------------------------------------------------------------------------------

SCREEN_SYMPTOMS = INFECTION_SYMPTOMS - {"fever"}  # symptoms on the screen besides reported fever
_SYMPTOM_ORDER = {s.code: i for i, s in enumerate(SYMPTOMS)}


def symptom_list(codes: frozenset[str], lang: str) -> str:
    """Labels of symptom codes, in vocabulary order, joined for a sentence."""
    ordered = sorted(codes, key=_SYMPTOM_ORDER.__getitem__)
    return ("、" if lang == "zh" else ", ").join(label(code, lang) for code in ordered)


@dataclass(frozen=True)
class InfectionRule:
    """A fever-clinic trigger and the sentence that explains it."""

    rule: str
    when: Callable[[Patient, ClinicalPolicy], bool]
    describe: Callable[[Patient, ClinicalPolicy], tuple[str, str]]
    source: str


def _exposure(e: Exposure) -> InfectionRule:
    # The questions ask about the exposure window (14 days): "yes" is within it; exposure further back,
    # or travel to a low-risk area only, is answered "no" and is not a trigger.
    return InfectionRule(
        e.rule, lambda p, c: e.code in p.epi,
        lambda p, c: (f"流行病学史：{e.zh.format(days=c.exposure_window_days)}。",
                      f"Exposure: {e.en.format(days=c.exposure_window_days)}."),
        FEVER_CLINIC)


def _symptoms_on_screen(p: Patient, c: ClinicalPolicy) -> tuple[str, str]:
    found = p.symptoms & SCREEN_SYMPTOMS
    return (f"有发热门诊筛查症状：{symptom_list(found, 'zh')}。",
            f"Symptoms on the fever-clinic screen: {symptom_list(found, 'en')}.")


INFECTION_RULES: tuple[InfectionRule, ...] = (
    InfectionRule(
        "INF-TEMP", lambda p, c: p.temperature_c is not None and p.temperature_c >= c.fever_threshold_c,
        lambda p, c: (f"体温 {p.temperature_c:g} °C，达到发热标准（≥ {c.fever_threshold_c:g} °C）。",
                      f"Temperature {p.temperature_c:g} °C is at or above the fever threshold of "
                      f"{c.fever_threshold_c:g} °C."),
        FEVER_CLINIC),
    InfectionRule("INF-FEVER", lambda p, c: "fever" in p.symptoms,
                  lambda p, c: ("自述发热。", "Reports a fever."), FEVER_CLINIC),
    InfectionRule("INF-SYMPTOM", lambda p, c: not SCREEN_SYMPTOMS.isdisjoint(p.symptoms), _symptoms_on_screen,
                  FEVER_CLINIC),
    *(_exposure(e) for e in EXPOSURES),
)


# ---------------------------------------------------------------------------------------------------
# Acuity: one measurement against one threshold.
# ---------------------------------------------------------------------------------------------------

ALL, ADULT, CHILD = "all", "adult", "child"
_OPS: dict[str, tuple[Callable[[float, float], bool], str, str]] = {
    ">": (operator.gt, "高于", "above"),
    ">=": (operator.ge, "不低于", "at or above"),
    "<": (operator.lt, "低于", "below"),
    "<=": (operator.le, "不高于", "at or below"),
}
BAND = "band."          # threshold taken from the child's age band
PALS_SBP = "pals.sbp"   # threshold computed from the child's age (PALS hypotension)


@dataclass(frozen=True)
class VitalRule:
    """Measurement `measure` compared by `op` with the policy threshold `threshold` gives `level`."""

    rule: str
    level: int
    measure: str
    op: str
    threshold: str
    who: str
    source: str


VITAL_RULES: tuple[VitalRule, ...] = (
    #          rule id         level measure            op    policy key (clinical.)           who    source
    VitalRule("CN1-HR-HIGH",    1, "heart_rate",       ">",  "acuity.level1.hr_above",         ADULT, C18),
    VitalRule("CN1-HR-LOW",     1, "heart_rate",       "<",  "acuity.level1.hr_below",         ADULT, C18),
    VitalRule("CN1-SBP",        1, "sbp",              "<",  "acuity.level1.sbp_below",        ADULT, C18),
    VitalRule("CN1-SPO2",       1, "spo2",             "<",  "acuity.level1.spo2_below",       ALL,   C18),
    VitalRule("CN1-TEMP",       1, "temperature_c",    ">",  "acuity.level1.temperature_above_c", ALL, C18),
    VitalRule("CN1-GLUCOSE",    1, "glucose_mmol_l",   "<",  "acuity.level1.glucose_below_mmol_l", ALL, C18),
    VitalRule("CN1-K",          1, "potassium_mmol_l", ">",  "acuity.level1.potassium_above_mmol_l", ALL, C18),
    VitalRule("CN1-GCS",        1, "gcs",              "<",  "acuity.level1.gcs_below",        ALL,   C18),
    VitalRule("PED1-HR-LOW",    1, "heart_rate",       "<",  "paediatric.level1.hr_below",     CHILD, PALS),
    VitalRule("PED1-RR-LOW",    1, "respiratory_rate", "<",  "paediatric.level1.rr_below",     CHILD, PALS),
    VitalRule("PED1-SBP",       1, "sbp",              "<",  PALS_SBP,                         CHILD, PALS),
    VitalRule("CN2-HR-HIGH",    2, "heart_rate",       ">=", "acuity.level2.hr_from",          ADULT, C18),
    VitalRule("CN2-HR-LOW",     2, "heart_rate",       "<=", "acuity.level2.hr_upto",          ADULT, C18),
    VitalRule("CN2-SBP-HIGH",   2, "sbp",              ">",  "acuity.level2.sbp_above",        ALL,   C18),
    VitalRule("CN2-SBP-LOW",    2, "sbp",              "<=", "acuity.level2.sbp_upto",         ADULT, C18),
    VitalRule("CN2-SPO2",       2, "spo2",             "<=", "acuity.level2.spo2_upto",        ALL,   C18),
    VitalRule("CN2-RR-HIGH",    2, "respiratory_rate", ">=", "acuity.level2.rr_from",          ADULT, COVID7),
    VitalRule("CN2-RR-LOW",     2, "respiratory_rate", "<=", "acuity.level2.rr_upto",          ADULT, NEWS2),
    VitalRule("CN2-GCS",        2, "gcs",              "<=", "acuity.level2.gcs_upto",         ALL,   C18),
    VitalRule("CN2-PAIN",       2, "pain_nrs",         ">=", "acuity.level2.pain_from",        ALL,   C18),
    VitalRule("PED2-HR-HIGH",   2, "heart_rate",       ">",  BAND + "hr_above",                CHILD, ESI),
    VitalRule("PED2-HR-LOW",    2, "heart_rate",       "<",  BAND + "hr_below",                CHILD, PALS),
    VitalRule("PED2-RR-HIGH",   2, "respiratory_rate", ">",  BAND + "rr_above",                CHILD, ESI),
    VitalRule("PED2-SPO2",      2, "spo2",             "<",  "paediatric.level2.spo2_below",   CHILD, ESI),
    VitalRule("CN3-HR-HIGH",    3, "heart_rate",       ">=", "acuity.level3.hr_from",          ADULT, C18),
    VitalRule("CN3-HR-LOW",     3, "heart_rate",       "<=", "acuity.level3.hr_upto",          ADULT, C18),
    VitalRule("CN3-SBP-HIGH",   3, "sbp",              ">=", "acuity.level3.sbp_from",         ALL,   C18),
    VitalRule("CN3-SBP-LOW",    3, "sbp",              "<=", "acuity.level3.sbp_upto",         ADULT, C18),
    VitalRule("CN3-SPO2",       3, "spo2",             "<=", "acuity.level3.spo2_upto",        ALL,   C18),
    VitalRule("CN3-GCS",        3, "gcs",              "<=", "acuity.level3.gcs_upto",         ALL,   C18),
    VitalRule("CN3-PAIN",       3, "pain_nrs",         ">=", "acuity.level3.pain_from",        ALL,   C18),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Acuity: declared symptoms, consciousness and combinations.
# ---------------------------------------------------------------------------------------------------


class Findings(NamedTuple):
    """What the engine derived before grading, for the rules' conditions."""

    febrile: bool             # measured temperature at/above the fever threshold, or reported fever
    infection_signs: bool     # febrile, or a symptom on the infection screen (not exposure alone)
    adult_scores: bool        # old enough for NEWS2 and qSOFA
    qsofa_met: int            # qSOFA criteria known to be met
    child: bool               # graded on paediatric limits


Condition = Callable[[Patient, Findings, ClinicalPolicy], bool]


@dataclass(frozen=True)
class ClinicalRule:
    """A criterion from what was declared or observed; texts may use {p.*}, {f.*} and {c.*}."""

    rule: str
    level: int
    when: Condition
    zh: str
    en: str
    source: str


@dataclass(frozen=True)
class AnySymptom:
    """Condition: any of `codes` was declared, and `also` holds when given (indexed by symptom)."""

    codes: frozenset[str]
    also: Condition | None = None

    def __call__(self, p: Patient, f: Findings, c: ClinicalPolicy) -> bool:
        return not self.codes.isdisjoint(p.symptoms) and (self.also is None or self.also(p, f, c))


def has(*codes: str, also: Condition | None = None) -> AnySymptom:
    """Condition: any of these symptom codes was declared (and `also` holds)."""
    return AnySymptom(frozenset(codes), also)


# Conditions that make chest pain or fainting possibly cardiac at any age: coronary and heart disease
# and their main risk factors (hypertension, diabetes, kidney disease).
CARDIAC_RISK_CONDITIONS = frozenset({"coronary_heart_disease", "heart_failure", "hypertension", "type1_diabetes",
                                     "type2_diabetes", "ckd", "esrd_haemodialysis"})


def cardiac_risk(p: Patient, c: ClinicalPolicy) -> bool:
    """Old enough for coronary disease, a cardiac risk condition, or pregnant (embolism, dissection)."""
    return (p.age_years >= c.acuity.level2.cardiac_risk_from_age_years or p.pregnant
            or not CARDIAC_RISK_CONDITIONS.isdisjoint(p.chronic_conditions))


_PAIN_ABOVE_NAVEL = frozenset({"chest_pain", "epigastric_discomfort", "abdominal_pain", "back_pain",
                               "flank_pain"})

CLINICAL_RULES: tuple[ClinicalRule, ...] = (
    ClinicalRule("CN1-ARREST", 1, has("cardiac_arrest"),
                 "心跳呼吸骤停", "Cardiac or respiratory arrest", C18),
    ClinicalRule("CN1-SEIZURE", 1, has("seizure"),
                 "正在抽搐（癫痫持续状态、小儿惊厥）", "Active seizure", C18),
    ClinicalRule("CN1-AVPU", 1, lambda p, f, c: p.avpu in ("P", "U"),
                 "只对疼痛有反应或无反应（AVPU {p.avpu}）", "Responds only to pain or not at all (AVPU {p.avpu})",
                 C18),
    ClinicalRule("CN2-AVPU", 2, lambda p, f, c: p.avpu == "V",
                 "只对呼唤有反应（AVPU V）", "Responds only to voice (AVPU V)", C18),
    ClinicalRule("CN2-STROKE", 2, has("unilateral_weakness", "slurred_speech", "facial_droop"),
                 "急性脑卒中征象（一侧无力、口角歪斜或说话不清）",
                 "Signs of acute stroke (one-sided weakness, facial droop or slurred speech)", C18),
    # Cardiac-type chest pain (consensus: 类似心脏因素的胸痛) cannot be told apart at the door, so chest
    # pain counts as cardiac in anyone with cardiac risk (see `cardiac_risk`) until an ECG says
    # otherwise; chest-pain centres require that ECG within 10 minutes, the level-2 response time.
    ClinicalRule("CN2-CHEST-PAIN", 2, has("chest_pain", also=lambda p, f, c: cardiac_risk(p, c)),
                 "胸痛且有心脏风险，心电图排除前按心源性胸痛处理",
                 "Chest pain with cardiac risk, treated as cardiac until an ECG rules it out", C18),
    ClinicalRule("CN2-PAIN-SWEAT", 2,
                 has("diaphoresis", also=lambda p, f, c: not _PAIN_ABOVE_NAVEL.isdisjoint(p.symptoms)),
                 "胸、腹或背部疼痛伴大汗", "Chest, abdominal or back pain with heavy sweating", C18),
    ClinicalRule("CN2-DYSPNOEA", 2, has("dyspnoea"),
                 "严重呼吸困难", "Severe breathlessness", C18),
    ClinicalRule("CN2-BLEEDING", 2, has("haematemesis", "heavy_bleeding"),
                 "活动性或严重出血（含呕血）", "Active or heavy bleeding (including vomiting blood)", C18),
    # Bleeding or abdominal pain in pregnancy: ectopic pregnancy, miscarriage, placental abruption.
    ClinicalRule("CN2-PREGNANCY", 2, has("vaginal_bleeding", "abdominal_pain", also=lambda p, f, c: p.pregnant),
                 "孕期阴道出血或腹痛", "Vaginal bleeding or abdominal pain in pregnancy", C18),
    ClinicalRule("CN2-LABOUR", 2, has("contractions"),
                 "宫缩（可能临产）", "Contractions (possible labour)", C18),
    # Syncope with cardiac risk: an arrhythmia cannot be excluded before an ECG (ESI high-risk situation;
    # ESC 2018 syncope guideline: age and heart disease are the high-risk features).
    ClinicalRule("CN2-SYNCOPE", 2, has("syncope", also=lambda p, f, c: cardiac_risk(p, c)),
                 "晕厥且有心脏风险，心电图前不能排除心律失常",
                 "Fainting with cardiac risk; an arrhythmia cannot be excluded before an ECG", ESI),
    ClinicalRule("CN2-POISONING", 2, has("poisoning"),
                 "药物过量或中毒", "Overdose or poisoning", C18),
    ClinicalRule("CN2-NEUTROPENIC-FEVER", 2,
                 lambda p, f, c: (f.febrile and p.anc_x10e9_l is not None
                                  and p.anc_x10e9_l < c.acuity.level2.neutrophils_below_x10e9_l),
                 "发热伴中性粒细胞 {p.anc_x10e9_l:g}×10⁹/L（低于 {c.acuity.level2.neutrophils_below_x10e9_l:g}）",
                 "Fever with neutrophils {p.anc_x10e9_l:g} ×10⁹/L "
                 "(below {c.acuity.level2.neutrophils_below_x10e9_l:g})", C18),
    ClinicalRule("CN2-SEPSIS", 2,
                 lambda p, f, c: (f.adult_scores and f.infection_signs
                                  and f.qsofa_met >= c.acuity.level2.sepsis_qsofa_from),
                 "疑似脓毒症（感染征象且 qSOFA {f.qsofa_met}，≥ {c.acuity.level2.sepsis_qsofa_from}）",
                 "Suspected sepsis (signs of infection and qSOFA {f.qsofa_met}, at least "
                 "{c.acuity.level2.sepsis_qsofa_from})", SEPSIS3),
    ClinicalRule("PED2-FEBRILE-INFANT", 2,
                 lambda p, f, c: (p.age_days < c.paediatric.level2.febrile_infant_under_days
                                  and ("fever" in p.symptoms or (
                                      p.temperature_c is not None
                                      and p.temperature_c >= c.paediatric.level2.febrile_infant_from_c))),
                 "{c.paediatric.level2.febrile_infant_under_days:g} 天以下婴儿发热",
                 "Fever in an infant under {c.paediatric.level2.febrile_infant_under_days:g} days", f"{ESI}; {AAP21}"),
    ClinicalRule("CN3-CHEST-PAIN", 3, has("chest_pain", also=lambda p, f, c: not cardiac_risk(p, c)),
                 "胸痛，无心脏风险（非心源性胸痛）", "Chest pain without cardiac risk (non-cardiac type)", C18),
    ClinicalRule("CN3-SYNCOPE", 3, has("syncope", also=lambda p, f, c: not cardiac_risk(p, c)),
                 "晕厥，无心脏风险", "Fainting without cardiac risk", ESI),
    ClinicalRule("CN3-CONFUSION", 3, lambda p, f, c: p.avpu == "C" or "confusion" in p.symptoms,
                 "新出现的意识混乱", "New confusion", C18),
    ClinicalRule("CN3-WHEEZE", 3, has("wheeze"),
                 "喘息（急性哮喘，血压脉搏稳定）", "Wheezing (acute asthma with stable pulse and pressure)", C18),
    ClinicalRule("CN3-ABDO-ELDERLY", 3,
                 has("abdominal_pain",
                     also=lambda p, f, c: p.age_years > c.acuity.level3.abdominal_pain_over_age_years),
                 "{c.acuity.level3.abdominal_pain_over_age_years:g} 岁以上老人腹痛",
                 "Abdominal pain over {c.acuity.level3.abdominal_pain_over_age_years:g}", C18),
    ClinicalRule("CN3-FRACTURE", 3, has("limb_deformity"),
                 "肢体变形，可能闭合性骨折", "Deformed limb, possible closed fracture", C18),
    ClinicalRule("CN3-HEAD-INJURY", 3, has("head_injury"),
                 "头部外伤", "Head injury", C18),
    ClinicalRule("CN3-SELF-HARM", 3, has("suicidal_ideation"),
                 "有自伤风险", "Risk of self-harm", C18),
)


# ---------------------------------------------------------------------------------------------------
# The rule tables bound to one policy's thresholds, built once per policy.
# ---------------------------------------------------------------------------------------------------

Bound = tuple[VitalRule, Callable[[float, float], bool], float]
# (measurement, lowest and highest value of the quiet range, exclusive, where no rule can fire, rules)
Table = tuple[tuple[str, float, float, tuple[Bound, ...]], ...]


def _bind(clinical: ClinicalPolicy, child: bool, band: PaediatricBand | None) -> Table:
    """The rules for adults or one paediatric band, grouped by measurement, most urgent first."""
    groups: dict[str, list[Bound]] = {}
    for rule in sorted(VITAL_RULES, key=lambda r: r.level):
        if (rule.who != ALL and (rule.who == CHILD) != child) or rule.threshold == PALS_SBP:
            continue
        if rule.threshold.startswith(BAND):
            threshold = float(getattr(band, rule.threshold[len(BAND):]))
        else:
            threshold = lookup(clinical, rule.threshold)
        groups.setdefault(rule.measure, []).append((rule, _OPS[rule.op][0], threshold))
    return tuple((measure, *_quiet_range(rules), tuple(rules)) for measure, rules in groups.items())


def _quiet_range(rules: list[Bound]) -> tuple[float, float]:
    """Bounds strictly between which none of these rules fires, so a normal value is checked twice only."""
    lows = [threshold for rule, _, threshold in rules if rule.op in ("<", "<=")]
    highs = [threshold for rule, _, threshold in rules if rule.op in (">", ">=")]
    return max(lows, default=-math.inf), min(highs, default=math.inf)


_PED1_SBP = next(rule for rule in VITAL_RULES if rule.threshold == PALS_SBP)
_CLINICAL_ORDER = 1000  # clinical reasons follow measurement reasons of the same level


def _static_reason(crit: ClinicalRule, c: ClinicalPolicy) -> Reason | None:
    """The rule's Reason when its text depends on the policy only, so it is built once."""
    if "{p." in crit.zh + crit.en or "{f." in crit.zh + crit.en:
        return None
    return Reason(crit.rule, *_at_level(crit.zh.format(c=c), crit.en.format(c=c), crit.level))


class Engine:
    """The acuity tables of one ClinicalPolicy, with thresholds resolved and texts built once."""

    __slots__ = ("adult", "bands", "by_symptom", "clinical", "static", "ungated")

    def __init__(self, clinical: ClinicalPolicy) -> None:
        self.clinical = clinical
        self.adult = _bind(clinical, False, None)
        self.bands = tuple((band.upper_age_days, _bind(clinical, True, band))
                           for band in clinical.paediatric.bands)
        self.static = tuple(_static_reason(crit, clinical) for crit in CLINICAL_RULES)
        # Most rules need a declared symptom: index them by symptom so a patient is only checked
        # against the rules his symptoms can fire.
        self.ungated = tuple(i for i, crit in enumerate(CLINICAL_RULES) if not isinstance(crit.when, AnySymptom))
        index: dict[str, list[int]] = {}
        for i, crit in enumerate(CLINICAL_RULES):
            if isinstance(crit.when, AnySymptom):
                for code in crit.when.codes:
                    index.setdefault(code, []).append(i)
        self.by_symptom = {code: tuple(rules) for code, rules in index.items()}

    def grade(self, p: Patient, f: Findings, newborn_under_days: int, reasons: list[Reason]) -> int:
        """The acuity level (1-4), appending one Reason per criterion met, most urgent first."""
        c = self.clinical
        table = self.adult
        if f.child:
            table = next(rules for upper, rules in self.bands if p.age_days < upper)
        found: list[tuple[int, int, Reason]] = []
        for order, (measure, quiet_low, quiet_high, rules) in enumerate(table):
            value = getattr(p, measure)
            if value is None or quiet_low < value < quiet_high:
                continue
            for rule, compare, threshold in rules:
                if compare(value, threshold):
                    found.append((rule.level, order, _vital_reason(rule, value, threshold)))
                    break
        if f.child and p.sbp is not None:
            # PALS hypotension depends on the age in years, not on the band; it cannot overlap the
            # high-pressure limits, so checking it apart keeps "one band per measurement".
            limit = _pals_sbp_below(c, p, newborn_under_days)
            if p.sbp < limit:
                found.append((_PED1_SBP.level, -1, _vital_reason(_PED1_SBP, p.sbp, limit)))
        candidates: set[int] | tuple[int, ...] = self.ungated
        if p.symptoms:
            candidates = set(self.ungated)
            for code in p.symptoms:
                candidates.update(self.by_symptom.get(code, ()))
        for i in candidates:
            crit = CLINICAL_RULES[i]
            if crit.when(p, f, c):
                reason = self.static[i] or Reason(
                    crit.rule, *_at_level(crit.zh.format(p=p, f=f, c=c), crit.en.format(p=p, f=f, c=c), crit.level))
                found.append((crit.level, _CLINICAL_ORDER + i, reason))
        if not found:
            reasons.append(_LEVEL_4)
            return 4
        found.sort(key=lambda item: (item[0], item[1]))
        reasons.extend(reason for _, _, reason in found)
        return found[0][0]


_LEVEL_4 = Reason("CN4", "未达到 1–3 级任何标准：4级（非急症）。",
                  "No level 1-3 criterion is met: level 4 (non-urgent).")


def _pals_sbp_below(c: ClinicalPolicy, p: Patient, newborn_under_days: int) -> float:
    h = c.paediatric.hypotension
    if p.age_days < newborn_under_days:
        return h.newborn_sbp_below
    return min(h.sbp_below_base + h.sbp_below_per_year * int(p.age_years), h.sbp_below_max)


def _vital_reason(rule: VitalRule, value: float, limit: float) -> Reason:
    m = MEASURES[rule.measure]
    _, op_zh, op_en = _OPS[rule.op]
    zh = f"{m.zh} {_num(value)}{m.unit_zh}，{op_zh} {_num(limit)}{m.unit_zh}"
    en = f"{m.en} {_num(value)}{m.unit_en} is {op_en} {_num(limit)}{m.unit_en}"
    if rule.who == CHILD:
        zh, en = zh + "（儿童按年龄的界值）", en + " (the limit for a child of this age)"
    return Reason(rule.rule, *_at_level(zh, en, rule.level))


_ENGINES: dict[int, Engine] = {}


def engine_for(clinical: ClinicalPolicy) -> Engine:
    """The bound rule tables for this ClinicalPolicy, built on first use and reused."""
    engine = _ENGINES.get(id(clinical))
    if engine is None or engine.clinical is not clinical:
        if len(_ENGINES) > 64:
            _ENGINES.clear()
        engine = _ENGINES[id(clinical)] = Engine(clinical)
    return engine


# ---------------------------------------------------------------------------------------------------
# Routing: the first route whose condition holds decides the stream.
# ---------------------------------------------------------------------------------------------------


class Situation:
    """What routing looks at; the clock is read only when a route needs it."""

    __slots__ = ("_open", "at", "chronic_need", "infection", "level", "online", "policy", "urgent")

    def __init__(self, *, infection: bool, level: int, urgent: bool, chronic_need: bool, online: bool,
                 policy: Policy, at: datetime | None, outpatient_open: bool | None) -> None:
        self.infection = infection
        self.level = level
        self.urgent = urgent
        self.chronic_need = chronic_need
        self.online = online
        self.policy = policy
        self.at = at
        self._open = outpatient_open

    def outpatient_open(self) -> bool:
        """Whether the outpatient clinics are open (context, else the policy's hours at `at`).

        With no time at all (a stateless assessment of answers, not a visit happening now) the clinics
        are taken as open: the after-hours rule applies to a visit at a known time, and the services
        always pass the time of the visit.
        """
        if self._open is None:
            self._open = True if self.at is None else self.policy.outpatient_open(self.at)
        return self._open


@dataclass(frozen=True)
class Route:
    """Condition -> stream, with isolation when the patient must be treated in an isolation area."""

    rule: str
    stream: Stream
    when: Callable[[Situation], bool]
    zh: str
    en: str
    source: str
    isolation: bool = False


ROUTES: tuple[Route, ...] = (
    # Life-saving care is never delayed for screening: it runs in parallel, in an isolation area.
    Route("ROUTE-EMERGENCY-ISOLATION", Stream.EMERGENCY, lambda s: s.infection and s.urgent,
          "感染筛查阳性且病情危重：立即在具备隔离条件的抢救区救治，筛查同步进行，不得先筛查后救治",
          "Infection screen positive and critically ill: treated at once in an isolation-capable "
          "resuscitation area; screening runs in parallel, never first", f"{N141} §3-4", isolation=True),
    # A fever patient never waits in a general area (141 §4).
    Route("ROUTE-FEVER", Stream.FEVER, lambda s: s.infection,
          "感染筛查阳性：到发热门诊就诊", "Infection screen positive: fever clinic", FEVER_CLINIC),
    Route("ROUTE-EMERGENCY", Stream.EMERGENCY, lambda s: s.level <= 3 or s.urgent,
          "病情分级 {level} 级：急诊", "Acuity level {level}: emergency department", f"{C18}; {N141} §3"),
    Route("ROUTE-CHRONIC", Stream.CHRONIC, lambda s: s.chronic_need,
          "病情稳定的慢性病需求（续方、透析、放化疗）：慢病门诊",
          "Stable chronic need (repeat prescription, dialysis, chemotherapy or radiotherapy): chronic care",
          f"{N141} §3; {N004} §3.3"),
    # Emergency stays open 24/7 (141 §3, 004 §3.3); online patients instead book a slot in opening hours.
    Route("ROUTE-AFTER-HOURS", Stream.EMERGENCY, lambda s: not s.online and not s.outpatient_open(),
          "门诊已停诊：急诊 4 级", "Outpatient clinics are closed: emergency department, level 4",
          f"{N141} §3; {N004} §3.3"),
    Route("ROUTE-GENERAL", Stream.GENERAL, lambda s: True,
          "无感染触发、无急诊指征：普通门诊", "No infection trigger and no emergency criterion: general outpatient",
          f"{N141} §3"),
)


def route(s: Situation) -> Route:
    """The first route whose condition holds (the last one always holds)."""
    return next(r for r in ROUTES if r.when(s))


_ROUTE_REASONS = {(r.rule, level): Reason(r.rule, r.zh.format(level=level) + "。", r.en.format(level=level) + ".")
                  for r in ROUTES for level in LEVEL_NAMES}


def route_reason(r: Route, level: int) -> Reason:
    """The Reason explaining route `r` for a patient of acuity `level`."""
    return _ROUTE_REASONS[(r.rule, level)]


def is_red_flag(p: Patient, level: int) -> bool:
    """Online stage: a danger sign in the answers (level 1-2 criterion, or a red-flag symptom)."""
    return level <= 2 or not RED_FLAG_SYMPTOMS.isdisjoint(p.symptoms)


# ---------------------------------------------------------------------------------------------------
# Priority groups: queue order only, never the stream.
# ---------------------------------------------------------------------------------------------------

_CONDITION_PRIORITY = {c.code: c.priority for c in CONDITIONS if c.priority}
_NEED_PRIORITY = {n.code: n.priority for n in NEEDS if n.priority}
_DECLARED = {flag: (frozenset(code for code, f in _CONDITION_PRIORITY.items() if f == flag),
                    frozenset(code for code, f in _NEED_PRIORITY.items() if f == flag))
             for flag in set(_CONDITION_PRIORITY.values()) | set(_NEED_PRIORITY.values())}


def _declared(p: Patient, flag: str) -> bool:
    conditions, needs = _DECLARED[flag]
    return not conditions.isdisjoint(p.chronic_conditions) or not needs.isdisjoint(p.needs)


@dataclass(frozen=True)
class PriorityRule:
    """A priority group and how it is recognised."""

    flag: str
    rule: str
    when: Callable[[Patient, Policy], bool]
    zh: str
    en: str
    source: str


PRIORITY_RULES: tuple[PriorityRule, ...] = (
    PriorityRule("pregnant", "PRIO-PREGNANT", lambda p, pol: p.pregnant,
                 "孕产妇", "pregnant", f"{N141} §3 (母婴安全)"),
    # A newborn is also a child: both groups are named in the notices and both flags are true.
    PriorityRule("newborn", "PRIO-NEWBORN", lambda p, pol: p.age_days < pol.newborn_under_days,
                 "新生儿（出生不满 {pol.newborn_under_days} 天）",
                 "newborn (under {pol.newborn_under_days} days)", f"{N141} §3"),
    PriorityRule("child", "PRIO-CHILD", lambda p, pol: p.age_years < pol.child_under_years,
                 "儿童（不满 {pol.child_under_years} 岁）", "child (under {pol.child_under_years})",
                 f"{N141} §1; {N004} §3.3"),
    PriorityRule("elderly", "PRIO-ELDERLY", lambda p, pol: p.age_years >= pol.elderly_from_years,
                 "老年人（{pol.elderly_from_years} 岁及以上）", "elderly ({pol.elderly_from_years} or older)",
                 f"{N141} §1; {N004} §3.3"),
    PriorityRule("dialysis", "PRIO-DIALYSIS", lambda p, pol: _declared(p, "dialysis"),
                 "血液透析患者", "on dialysis", f"{N141} §3; {N004} §3.3"),
    PriorityRule("chemo_radiotherapy", "PRIO-CHEMO-RADIO", lambda p, pol: _declared(p, "chemo_radiotherapy"),
                 "放化疗患者", "on chemotherapy or radiotherapy", f"{N141} §3; {N004} §3.3"),
    PriorityRule("psychiatric", "PRIO-PSYCHIATRIC", lambda p, pol: _declared(p, "psychiatric"),
                 "精神疾病患者", "psychiatric illness", f"{N004} §3.3; {N162} §4"),
    PriorityRule("special_drugs", "PRIO-SPECIAL-DRUGS", lambda p, pol: _declared(p, "special_drugs"),
                 "需长期使用特殊药品（麻醉药品、精神药品）",
                 "on long-term special medicines (narcotic or psychotropic)", f"{N004} §3.3"),
)


def priority(p: Patient, policy: Policy, reasons: list[Reason]) -> tuple[str, ...]:
    """The sorted priority flags, appending one Reason per group."""
    flags = []
    for rule in PRIORITY_RULES:
        if rule.when(p, policy):
            flags.append(rule.flag)
            reasons.append(_priority_reason(rule, policy))
    return tuple(sorted(flags))


_PRIORITY_REASONS: dict[tuple[str, int, int, int], Reason] = {}


def _priority_reason(rule: PriorityRule, policy: Policy) -> Reason:
    key = (rule.rule, policy.newborn_under_days, policy.child_under_years, policy.elderly_from_years)
    reason = _PRIORITY_REASONS.get(key)
    if reason is None:
        group_zh, group_en = rule.zh.format(pol=policy), rule.en.format(pol=policy)
        reason = _PRIORITY_REASONS[key] = Reason(
            rule.rule, f"优先人群：{group_zh}。排队优先，分流去向不变。",
            f"Priority group: {group_en}. Seen sooner in the queue; the stream is unchanged.")
    return reason
