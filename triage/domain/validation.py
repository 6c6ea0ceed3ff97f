"""Validate an assessment request: one clear message per field, in Chinese and English, never an exception.

The plausibility limits here are physical and physiological facts (a saturation cannot pass 100 %, a
living patient's temperature stays within 30-43 °C), not hospital choices, so they live in code, not in
the policy file.

The one check of a name a person typed (a patient's, a colleague's) lives here too: `usable_name`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from triage.domain.clinical import DAYS_PER_YEAR
from triage.domain.policy import RiskLevel
from triage.domain.vocabulary import (
    CONDITION_BY_CODE,
    EXPOSURE_BY_CODE,
    FEMALE_ONLY,
    NEED_BY_CODE,
    SYMPTOM_BY_CODE,
)


@dataclass(frozen=True, slots=True)
class FieldError:
    """A field the engine could not accept, with the reason in Chinese and English."""

    field: str
    zh: str
    en: str

    def text(self, lang: str) -> str:
        """The message in the given language ("zh" or "en")."""
        return self.en if lang == "en" else self.zh


class Patient(NamedTuple):
    """A validated request: every value typed, in range and consistent (a tuple: cheap to build)."""

    stage: str
    age_years: float
    age_days: float
    sex: str | None
    pregnancy_weeks: float | None
    temperature_c: float | None
    heart_rate: float | None
    respiratory_rate: float | None
    sbp: float | None
    spo2: float | None
    on_oxygen: bool | None
    avpu: str | None
    gcs: int | None
    pain_nrs: float | None
    glucose_mmol_l: float | None
    potassium_mmol_l: float | None
    anc_x10e9_l: float | None
    symptoms: frozenset[str]
    epi: frozenset[str]
    chronic_conditions: frozenset[str]
    needs: frozenset[str]
    requested_prescription_weeks: int | None
    arrival_mode: str | None
    at: datetime | None
    outpatient_open: bool | None
    region_risk_level: RiskLevel | None

    @property
    def online(self) -> bool:
        """Whether this is the online pre-screen (provisional) rather than on-site triage."""
        return self.stage == "online"

    @property
    def pregnant(self) -> bool:
        """Whether the patient is pregnant (weeks given, or coming for a pregnancy check-up)."""
        return self.pregnancy_weeks is not None or "antenatal_check" in self.needs


@dataclass(frozen=True)
class Measure:
    """A numeric field: labels, unit, the possible range and an example."""

    zh: str
    en: str
    unit_zh: str
    unit_en: str
    low: float
    high: float
    example: str
    whole: bool = False
    bound_format: str = "g"  # how the range's bounds are written: "30.0-43.0 °C", "0-100 %"

    def span(self, lang: str) -> str:
        """The possible range with its unit, e.g. "30.0–43.0 °C"."""
        unit = self.unit_en if lang == "en" else self.unit_zh
        return f"{self.low:{self.bound_format}}–{self.high:{self.bound_format}}{unit}"


MEASURES: dict[str, Measure] = {
    "age_years": Measure("年龄", "Age", " 岁", " years", 0, 120, "45"),
    "age_days": Measure("日龄", "Age in days", " 天", " days", 0, 43830, "20", whole=True),
    "pregnancy_weeks": Measure("孕周", "Pregnancy weeks", " 周", " weeks", 1, 45, "32"),
    "temperature_c": Measure("体温", "Temperature", " °C", " °C", 30.0, 43.0, "36.8", bound_format=".1f"),
    "heart_rate": Measure("心率", "Heart rate", " 次/分", "/min", 0, 300, "80"),
    "respiratory_rate": Measure("呼吸频率", "Breathing rate", " 次/分", "/min", 0, 80, "16"),
    "sbp": Measure("收缩压", "Systolic blood pressure", " mmHg", " mmHg", 0, 300, "120"),
    "spo2": Measure("血氧饱和度", "Oxygen saturation (SpO2)", "%", "%", 0, 100, "98"),
    "gcs": Measure("格拉斯哥昏迷评分（GCS）", "Glasgow Coma Scale (GCS)", "", "", 3, 15, "15", whole=True),
    "pain_nrs": Measure("疼痛评分", "Pain score", "/10", "/10", 0, 10, "3"),
    "glucose_mmol_l": Measure("血糖", "Blood glucose", " mmol/L", " mmol/L", 0.1, 100, "5.6"),
    "potassium_mmol_l": Measure("血钾", "Potassium", " mmol/L", " mmol/L", 1.0, 15.0, "4.2"),
    "anc_x10e9_l": Measure("中性粒细胞计数", "Neutrophil count", " ×10⁹/L", " ×10⁹/L", 0, 100, "3.5"),
    "requested_prescription_weeks": Measure("希望开药的周数", "Requested prescription length", " 周",
                                            " weeks", 1, 52, "12", whole=True),
}

# Enumerations: field -> (Chinese label, English label, allowed values).
CHOICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "stage": ("阶段", "Stage", ("online", "onsite")),
    "sex": ("性别", "Sex", ("F", "M")),
    "avpu": ("意识状态（AVPU）", "Consciousness (AVPU)", ("A", "C", "V", "P", "U")),
    "arrival_mode": ("到达方式", "Arrival", ("online", "walk_in", "ambulance", "carried")),
}

# Code lists: field -> (Chinese label, English label, known codes).
CODE_LISTS: dict[str, tuple[str, str, Mapping[str, object]]] = {
    "symptoms": ("症状", "symptom", SYMPTOM_BY_CODE),
    "chronic_conditions": ("慢性病", "chronic condition", CONDITION_BY_CODE),
    "needs": ("就诊需求", "need", NEED_BY_CODE),
}

CONTEXT_KEYS = ("at", "outpatient_open", "region_risk_level")
_RISK_LEVELS = {r.value: r for r in RiskLevel}
_ZERO_ONLY_IF_UNRESPONSIVE = ("heart_rate", "respiratory_rate", "sbp")
_EMPTY: frozenset[str] = frozenset()
_NUMBER, _CHOICE, _CODES, _EPI, _BOOL, _CONTEXT, _ID = range(7)
# How each top-level field is read; a field not listed here is unknown.
_KIND: dict[str, int] = {
    **dict.fromkeys(MEASURES, _NUMBER), **dict.fromkeys(CHOICES, _CHOICE), **dict.fromkeys(CODE_LISTS, _CODES),
    "epi": _EPI, "on_oxygen": _BOOL, "context": _CONTEXT, "id": _ID,
}
# Ranges in which a number needs no further check: whole-number fields and the SpO2 fraction check
# (0 < SpO2 < 1) take the full path.
_FAST_RANGE: dict[str, tuple[float, float]] = {
    name: (max(m.low, 1.0) if name == "spo2" else m.low, m.high) for name, m in MEASURES.items() if not m.whole}
# Every Patient field absent from a request: measurements unknown, lists empty.
_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(Patient._fields),
    "symptoms": _EMPTY, "epi": _EMPTY, "chronic_conditions": _EMPTY, "needs": _EMPTY,
}
# A pregnancy below this age is treated as a data-entry error (age or pregnancy typed in the wrong row).
_MIN_PREGNANCY_AGE_YEARS = 10
_STR_LIMIT = 10**4000  # str() refuses ints past 4300 digits (sys.get_int_max_str_digits)


def _show(value: Any) -> str:
    """A short, safe rendering of a value the user sent: numbers in plain digits (a person typed 1000000, not
    1e+06), anything past 40 characters cut to its first 37 and "..."."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value) if -_STR_LIMIT < value < _STR_LIMIT else _leading_digits(value)
    elif isinstance(value, float):
        text = f"{value:g}"
        if "e" in text:
            text = format(Decimal(repr(value)), "f")  # the shortest digits that read back as the value
            text = text.rstrip("0").rstrip(".") if "." in text else text
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _leading_digits(value: int) -> str:
    """The sign and first digits of a whole number too long for str(), then "..."."""
    size = abs(value)
    extra = int(math.log10(size)) - 45  # keep about 45 digits: str() of them all would raise
    return ("-" if value < 0 else "") + str(size // 10**extra) + "..."


def _name(key: Any) -> str:
    """A mapping key as a field name (keys from JSON are text; anything else is shown safely)."""
    return key if isinstance(key, str) else _show(key)


def _kind(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "是/否", "true/false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"文字“{text}”", f"the text “{text}”"
    if isinstance(value, (list, tuple)):
        return "列表", "a list"
    if isinstance(value, Mapping):
        return "对象", "an object"
    return "其他类型", "another type"


class _Checker:
    """Collects at most one error per field while reading a request."""

    __slots__ = ("errors", "failed")

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.failed: set[str] = set()

    def fail(self, field: str, zh: str, en: str) -> None:
        if field not in self.failed:
            self.failed.add(field)
            self.errors.append(FieldError(field, zh, en))

    def number(self, name: str, value: Any) -> float | None:
        m = MEASURES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            kind_zh, kind_en = _kind(value)
            self.fail(name, f"{m.zh}必须是数字，例如 {m.example}（收到的是{kind_zh}）",
                      f"{m.en} must be a number, e.g. {m.example} (got {kind_en}).")
            return None
        if not m.low <= value <= m.high:
            self.out_of_range(name, m, value)
            return None
        if m.whole and value != int(value):
            self.fail(name, f"{m.zh}必须是整数（收到 {_show(value)}）",
                      f"{m.en} must be a whole number (got {_show(value)}).")
            return None
        if name == "spo2" and 0 < value < 1:
            # 0.97 is a fraction typed where a percentage belongs, not a saturation of 0.97 %.
            self.fail(name, f"血氧饱和度 {_show(value)} 像是小数，请填写百分数（例如 97）",
                      f"Oxygen saturation {_show(value)} looks like a fraction: enter a percentage (e.g. 97).")
            return None
        return int(value) if m.whole else value

    def out_of_range(self, name: str, m: Measure, value: float) -> None:
        shown = _show(value)
        span_zh, span_en = m.span("zh"), m.span("en")
        if name == "temperature_c" and 86 <= value <= 113:
            celsius = (value - 32) * 5 / 9
            self.fail(name, f"体温 {shown} 像是华氏度（约 {celsius:.1f} °C）。请以摄氏度填写，范围 {span_zh}",
                      f"Temperature {shown} looks like Fahrenheit (about {celsius:.1f} °C). "
                      f"Enter it in Celsius, between {m.low:.1f} and {m.high:.1f} °C.")
        elif name == "glucose_mmol_l" and value > m.high:
            self.fail(name, f"血糖 {shown} 像是 mg/dL，请换算为 mmol/L（除以 18），范围 {span_zh}",
                      f"Blood glucose {shown} looks like mg/dL: convert to mmol/L (divide by 18), "
                      f"range {span_en}.")
        elif name == "spo2" and value > m.high:
            self.fail(name, f"血氧饱和度不能超过 100%（收到 {shown}%），请复核血氧仪读数",
                      f"Oxygen saturation cannot be above 100 % (got {shown} %). Re-check the oximeter.")
        else:
            self.fail(name, f"{m.zh} {shown}{m.unit_zh} 超出可能范围（{span_zh}），请复核",
                      f"{m.en} {shown}{m.unit_en} is outside the possible range {span_en}; please re-check.")

    def choice(self, name: str, value: Any) -> str | None:
        zh, en, allowed = CHOICES[name]
        if isinstance(value, str) and value in allowed:
            return value
        options = " / ".join(allowed)
        self.fail(name, f"{zh}应为以下之一：{options}（收到 {_show(value)}）",
                  f"{en} must be one of {options} (got {_show(value)}).")
        return None

    def boolean(self, field: str, zh: str, en: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.fail(field, f"{zh}应为 true（是）或 false（否）（收到 {_show(value)}）",
                  f"{en} must be true or false (got {_show(value)}).")
        return None

    def codes(self, name: str, value: Any) -> frozenset[str]:
        zh, en, known = CODE_LISTS[name]
        if not isinstance(value, (list, tuple)):
            kind_zh, kind_en = _kind(value)
            self.fail(name, f"{zh}应为代码列表，例如 [\"cough\"]（收到的是{kind_zh}）",
                      f"The {en} list must be a list of codes, e.g. [\"cough\"] (got {kind_en}).")
            return _EMPTY
        unknown = [item for item in value if not isinstance(item, str) or item not in known]
        if unknown:
            shown = "、".join(_show(item) for item in unknown[:5])
            self.fail(name, f"无法识别的{zh}代码：{shown}。可用代码见 /api/v1/vocabulary",
                      f"Unknown {en} code(s): {', '.join(_show(item) for item in unknown[:5])}. "
                      f"See /api/v1/vocabulary for the codes.")
            return _EMPTY
        return frozenset(value)

    def epi(self, value: Any) -> frozenset[str]:
        if not isinstance(value, Mapping):
            kind_zh, kind_en = _kind(value)
            self.fail("epi", f"流行病学史应为是/否问题的对象（收到的是{kind_zh}）",
                      f"epi must be an object of yes/no answers (got {kind_en}).")
            return _EMPTY
        yes = []
        for key, answer in value.items():
            field = f"epi.{_name(key)}"
            if key not in EXPOSURE_BY_CODE:
                self.fail(field, f"无法识别的流行病学问题“{_show(key)}”",
                          f"Unknown epidemiological question “{_show(key)}”.")
            elif answer is not None and self.boolean(field, "流行病学史回答", "The answer", answer):
                yes.append(key)
        return frozenset(yes)

    def context(self, value: Any, clean: dict[str, Any]) -> None:
        if not isinstance(value, Mapping):
            kind_zh, kind_en = _kind(value)
            self.fail("context", f"context 应为对象（收到的是{kind_zh}）",
                      f"context must be an object (got {kind_en}).")
            return
        for key, item in value.items():
            field = f"context.{_name(key)}"
            if key not in CONTEXT_KEYS:
                self.fail(field, f"无法识别的 context 字段“{_show(key)}”，可用：{', '.join(CONTEXT_KEYS)}",
                          f"Unknown context field “{_show(key)}”; use {', '.join(CONTEXT_KEYS)}.")
            elif item is None:
                continue
            elif key == "at":
                clean["at"] = self.moment(field, item)
            elif key == "outpatient_open":
                clean["outpatient_open"] = self.boolean(field, "门诊是否开放", "outpatient_open", item)
            elif isinstance(item, str) and item in _RISK_LEVELS:
                clean["region_risk_level"] = _RISK_LEVELS[item]
            else:
                self.fail(field, f"地区风险等级应为 low / medium / high（收到 {_show(item)}）",
                          f"region_risk_level must be low, medium or high (got {_show(item)}).")

    def moment(self, field: str, value: Any) -> datetime | None:
        if isinstance(value, str):
            try:
                at = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                # Far dates cannot be converted between time zones (year 0 or 10000) and are typing errors.
                if 1970 <= at.year <= 2100:
                    return at
        self.fail(field, f"时间格式应为 2020-03-01T09:30:00+08:00（收到 {_show(value)}）",
                  f"The time must look like 2020-03-01T09:30:00+08:00 (got {_show(value)}).")
        return None


# --- numbers people type (a phone's form, the desk) -------------------------------------------------------------

_WHOLE = re.compile(r"[+-]?\d+")


def read_number(raw: str | None) -> int | float | None:
    """A number as people type it, on a phone or at the desk: full-width characters (NFKC) and a comma or a Chinese
    full stop as the decimal point. None when blank; ValueError when it is not a finite number ("inf", "nan", and
    "3_3", which float() reads as 33; a whole number past 4300 digits). A whole number typed without a decimal point
    is an int, with the digits typed."""
    text = unicodedata.normalize("NFKC", raw or "").strip().replace(",", ".").replace("。", ".")
    if not text:
        return None
    if "_" in text:
        raise ValueError(text)
    if _WHOLE.fullmatch(text):
        return int(text)  # exactly as typed: float() would read 300 ones as 11111111111111111694...
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return whole_number(value) if value.is_integer() and "." not in text else value


def whole_number(value: float) -> int:
    """A whole float as the digits it reads back from: 1e50 as 1 and 50 zeros (int(1e50) is 100000000000000007629...,
    shown so in an out-of-range message)."""
    return int(Decimal(repr(value)))


# --- names people type (patients, staff) ------------------------------------------------------------------------

UNUSABLE_NAME = ("姓名中有不能使用的字符。", "The name contains characters that cannot be used.")


def usable_name(name: str) -> bool:
    """Whether a person's name can be stored and shown on screens: printable, no markup characters."""
    # Control characters (a terminal's escapes) and bidi overrides (U+202E) would garble or disguise it.
    return all(ch.isprintable() and ch not in "<>{}" for ch in name)


def read_id(data: Any) -> str | int | None:
    """The request's `id` when it is usable for echoing (text or a whole number), else None."""
    if type(data) is not dict and not isinstance(data, Mapping):
        return None
    value = data.get("id")
    if isinstance(value, bool):
        return None
    if (isinstance(value, int) and -2**63 <= value < 2**63) or (isinstance(value, str) and len(value) <= 200):
        return value
    return None


def validate(data: Any) -> tuple[Patient | None, tuple[FieldError, ...]]:
    """Read a request into a Patient, or return the field errors (one per field) that prevent it."""
    check = _Checker()
    if type(data) is not dict and not isinstance(data, Mapping):
        kind_zh, kind_en = _kind(data)
        check.fail("body", f"请求内容应为 JSON 对象（收到的是{kind_zh}）",
                   f"The request must be a JSON object (got {kind_en}).")
        return None, tuple(check.errors)
    clean = dict(_DEFAULTS)
    fast = _FAST_RANGE
    for key, value in data.items():
        bounds = fast.get(key)
        if bounds is not None and (type(value) is float or type(value) is int) and bounds[0] <= value <= bounds[1]:
            clean[key] = value  # a plausible number: the common case, accepted without further checks
            continue
        kind = _KIND.get(key)
        if kind is None:
            check.fail(_name(key), f"无法识别的字段“{_show(key)}”，请检查拼写",
                       f"Unknown field “{_show(key)}”; check the spelling.")
        elif value is None:
            continue
        elif kind == _NUMBER:
            clean[key] = check.number(key, value)
        elif kind == _CHOICE:
            clean[key] = check.choice(key, value)
        elif kind == _CODES:
            clean[key] = check.codes(key, value)
        elif kind == _EPI:
            clean[key] = check.epi(value)
        elif kind == _BOOL:
            clean[key] = check.boolean(key, "是否吸氧", "on_oxygen", value)
        elif kind == _CONTEXT:
            check.context(value, clean)
        elif read_id(data) is None:
            check.fail("id", "id 应为文字（最多 200 字）或 64 位整数",
                       "id must be text (up to 200 characters) or a whole number (64-bit).")
    _check_together(check, data, clean)
    if check.errors:
        return None, tuple(check.errors)
    if clean["age_years"] is None:
        clean["age_years"] = clean["age_days"] / DAYS_PER_YEAR
    elif clean["age_days"] is None:
        clean["age_days"] = clean["age_years"] * DAYS_PER_YEAR
    return Patient(**clean), ()


def _check_together(check: _Checker, data: Mapping[Any, Any], clean: dict[str, Any]) -> None:
    """Rules that involve several fields; each runs only when its fields are individually valid."""
    if data.get("stage") is None:
        check.fail("stage", "请填写阶段：online（线上预检）或 onsite（现场分诊）",
                   "Stage is required: online (pre-screen) or onsite (at the entrance).")
    age_years, age_days = clean.get("age_years"), clean.get("age_days")
    if data.get("age_years") is None and data.get("age_days") is None:
        check.fail("age_years", "请填写年龄（不确定时可估计）",
                   "Age is required (an estimate is fine for an unknown patient).")
    elif age_years == 0 and data.get("age_days") is None:
        # Under one year the days decide newborn priority and the paediatric vital-sign band.
        check.fail("age_days", "不满 1 岁的婴儿请填写日龄（出生多少天）",
                   "For a baby under one year, give the age in days (age_days).")
    elif age_years is not None and age_days is not None and abs(age_days / DAYS_PER_YEAR - age_years) >= 1:
        check.fail("age_days", f"日龄 {_show(age_days)} 天与年龄 {_show(age_years)} 岁不符，请核对",
                   f"Age in days ({_show(age_days)}) does not match age in years ({_show(age_years)}); "
                   f"please check both.")

    avpu_known = "avpu" not in check.failed and "gcs" not in check.failed
    unresponsive = clean.get("avpu") == "U" or clean.get("gcs") == 3
    for name in _ZERO_ONLY_IF_UNRESPONSIVE:
        if clean.get(name) == 0 and avpu_known and not unresponsive:
            m = MEASURES[name]
            check.fail(name, f"{m.zh}为 0 只可能出现在无反应的患者（AVPU 为 U 或 GCS 为 3）。"
                             f"请复核{m.zh}，或记录意识状态",
                       f"A {m.en.lower()} of 0 is only possible in an unresponsive patient (AVPU U or GCS 3). "
                       f"Re-check the {m.en.lower()} or record the consciousness level.")

    male = clean.get("sex") == "M"
    if clean.get("pregnancy_weeks") is not None:
        years = age_years if age_years is not None else (age_days or 0) / DAYS_PER_YEAR
        known_age = age_years is not None or age_days is not None
        if male:
            check.fail("pregnancy_weeks", "男性患者不应填写孕周，请核对性别或删除孕周",
                       "Pregnancy weeks were given for a male patient: check the sex or remove the pregnancy.")
        elif known_age and years < _MIN_PREGNANCY_AGE_YEARS:
            check.fail("pregnancy_weeks", f"孕周与年龄 {_show(years)} 岁不符，请核对年龄或孕周",
                       f"Pregnancy weeks do not fit an age of {_show(years)} years: check the age or the pregnancy.")
    if male:
        for name in ("symptoms", "needs"):
            wrong = sorted(clean.get(name, _EMPTY) & FEMALE_ONLY)
            if wrong:
                check.fail(name, f"男性患者不应选择：{'、'.join(wrong)}，请核对性别",
                           f"{', '.join(wrong)} cannot apply to a male patient: check the sex.")
