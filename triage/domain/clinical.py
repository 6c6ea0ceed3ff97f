"""Clinical thresholds of the assessment engine, read from the policy's `clinical` section.

Every threshold the engine compares against lives here with its default, its plausible range and its
source; `workflows/policy.yaml` repeats them explicitly so a hospital sees and edits every number.

Key suffixes say how a value is compared, so a clinician can read the YAML without the code:
`_above` strictly more than, `_below` strictly less than, `_from` at least, `_upto` at most.
The engine checks level 1, then 2, then 3, and the first level a measurement meets wins: a value on a
shared bound (HR 150, SBP 80, SpO2 90) therefore gets the more urgent level, as the consensus asks.

Sources:
- CONSENSUS 2018: 急诊预检分诊专家共识, 中华急诊医学杂志 2018;27(6):599-604 (Chinese four-level scale).
- GUIDANCE 2011: 急诊病人病情分级试点指导原则（征求意见稿）, Ministry of Health, 2011.
- ESI v4: Emergency Severity Index Implementation Handbook (AHRQ), danger-zone vital signs, febrile infants.
- PALS 2020: AHA Pediatric Advanced Life Support (bradycardia, bradypnoea, hypotension by age).
- COVID-19 诊疗方案（试行第七版）, NHC 2020: RR >= 30 defines severe breathlessness in adults.
- NEWS2: Royal College of Physicians 2017; qSOFA: Sepsis-3 (JAMA 2016).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from triage.domain.errors import ConfigFileError

DAYS_PER_YEAR = 365.25


def _t(default: float, low: float, high: float) -> Any:
    """A threshold with its default and the range a policy may set it to."""
    return field(default=default, metadata={"range": (low, high)})


def _required(low: float, high: float) -> Any:
    """A threshold without default (inside a list item), with its permitted range."""
    return field(metadata={"range": (low, high)})


@dataclass(frozen=True)
class AcuityLevel1:
    """Level 1 (濒危, resuscitate now): CONSENSUS 2018 objective criteria; GUIDANCE 2011."""

    hr_above: float = _t(180, 100, 300)
    hr_below: float = _t(40, 0, 100)
    sbp_below: float = _t(70, 30, 150)
    spo2_below: float = _t(80, 50, 100)
    temperature_above_c: float = _t(41.0, 38.0, 43.0)
    glucose_below_mmol_l: float = _t(3.33, 1.0, 10.0)
    potassium_above_mmol_l: float = _t(7.0, 5.0, 10.0)
    gcs_below: int = _t(9, 4, 15)


@dataclass(frozen=True)
class AcuityLevel2:
    """Level 2 (危重, within 10 minutes): CONSENSUS 2018; RR from COVID-19 guideline 7 and NEWS2."""

    hr_from: float = _t(150, 100, 300)
    hr_upto: float = _t(50, 0, 100)
    sbp_above: float = _t(200, 140, 300)
    sbp_upto: float = _t(80, 30, 150)
    spo2_upto: float = _t(90, 50, 100)
    # Severe breathlessness by count: COVID-19 guideline 7 calls an adult with RR >= 30 severe (重型).
    rr_from: float = _t(30, 15, 80)
    # Bradypnoea: NEWS2 gives its highest score at RR <= 8 (hypoventilation, opioid or CNS depression).
    rr_upto: float = _t(8, 0, 20)
    # Consensus: 昏睡 (responds only to strong stimuli) is level 2; GCS 9-12 is moderate impairment.
    gcs_upto: int = _t(12, 3, 15)
    neutrophils_below_x10e9_l: float = _t(0.5, 0.0, 5.0)
    pain_from: float = _t(7, 0, 10)
    # Suspected sepsis: signs of infection and at least this qSOFA (Sepsis-3).
    sepsis_qsofa_from: int = _t(2, 1, 3)
    # Chest pain or fainting counts as cardiac-type (level 2) from this age, or at any age with heart
    # disease or its risk factors, or in pregnancy; otherwise it is level 3 (consensus: 非心源性胸痛).
    cardiac_risk_from_age_years: float = _t(30, 14, 80)


@dataclass(frozen=True)
class AcuityLevel3:
    """Level 3 (急症, within 30 minutes): CONSENSUS 2018 objective and clinical criteria."""

    hr_from: float = _t(100, 60, 300)
    hr_upto: float = _t(55, 0, 100)
    sbp_from: float = _t(180, 120, 300)
    sbp_upto: float = _t(90, 30, 150)
    spo2_upto: float = _t(94, 50, 100)
    # Consensus: 嗜睡/急性精神错乱 (drowsy, acutely confused) is level 3: GCS 13-14.
    gcs_upto: int = _t(14, 3, 15)
    pain_from: float = _t(4, 0, 10)
    # Consensus: abdominal pain at "年龄>65岁", over 65 (not at 65 itself; issue 3 says "over 65" too).
    abdominal_pain_over_age_years: float = _t(65, 18, 120)


@dataclass(frozen=True)
class Acuity:
    """The four-level scale at every age, except what `paediatric` replaces for children."""

    level1: AcuityLevel1 = field(default_factory=AcuityLevel1)
    level2: AcuityLevel2 = field(default_factory=AcuityLevel2)
    level3: AcuityLevel3 = field(default_factory=AcuityLevel3)


@dataclass(frozen=True, kw_only=True)
class PaediatricBand:
    """One age band: ESI v4 danger-zone upper limits and PALS lower normal heart rate, all level 2."""

    under_days: float | None = field(default=None, metadata={"range": (1, 6575)})
    under_years: float | None = field(default=None, metadata={"range": (0.1, 18)})
    hr_above: float = _required(60, 260)
    rr_above: float = _required(10, 100)
    hr_below: float = _required(30, 160)

    @property
    def upper_age_days(self) -> float:
        """Upper age of the band (exclusive), in days."""
        if self.under_days is not None:
            return self.under_days
        return (self.under_years or 0.0) * DAYS_PER_YEAR


def _default_bands() -> tuple[PaediatricBand, ...]:
    # ESI v4 danger zone: <3 m HR>180 RR>50; 3 m-3 y HR>160 RR>40; 3-8 y HR>140 RR>30; >8 y HR>100 RR>20.
    # hr_below: PALS 2020 normal heart rate, lower bound while asleep (80 to 3 months, 90 to 2 years).
    return (
        PaediatricBand(under_days=90, hr_above=180, rr_above=50, hr_below=80),
        PaediatricBand(under_years=3, hr_above=160, rr_above=40, hr_below=90),
        PaediatricBand(under_years=8, hr_above=140, rr_above=30, hr_below=60),
        PaediatricBand(under_years=14, hr_above=100, rr_above=20, hr_below=60),
    )


@dataclass(frozen=True)
class PaediatricLevel1:
    """Children, level 1: PALS 2020 signs of impending arrest."""

    # HR < 60/min with poor perfusion needs chest compressions in an infant or child.
    hr_below: float = _t(60, 20, 120)
    # "RR < 10 or > 60 at any age is abnormal and suggests a potentially serious problem."
    rr_below: float = _t(10, 0, 30)


@dataclass(frozen=True)
class PaediatricLevel2:
    """Children, level 2: ESI v4 danger-zone saturation and the febrile young infant."""

    spo2_below: float = _t(92, 50, 100)
    # ESI v4 and AAP 2021 febrile infant guideline: fever >= 38.0 under 90 days is high risk.
    febrile_infant_under_days: float = _t(90, 0, 365)
    febrile_infant_from_c: float = _t(38.0, 37.0, 40.0)


@dataclass(frozen=True)
class PaediatricHypotension:
    """PALS 2020 hypotension, level 1: SBP < 60 newborn, < 70 + 2 x age in years, at most 90."""

    newborn_sbp_below: float = _t(60, 30, 120)
    sbp_below_base: float = _t(70, 30, 120)
    sbp_below_per_year: float = _t(2, 0, 10)
    sbp_below_max: float = _t(90, 30, 150)


@dataclass(frozen=True)
class Paediatric:
    """Children are never graded on adult heart-rate, breathing or low-pressure limits."""

    bands: tuple[PaediatricBand, ...] = field(default_factory=_default_bands)
    level1: PaediatricLevel1 = field(default_factory=PaediatricLevel1)
    level2: PaediatricLevel2 = field(default_factory=PaediatricLevel2)
    hypotension: PaediatricHypotension = field(default_factory=PaediatricHypotension)

    @property
    def under_days(self) -> float:
        """Age in days below which a patient is graded as a child (the last band's upper age)."""
        return self.bands[-1].upper_age_days

    def band(self, age_days: float) -> PaediatricBand | None:
        """The age band of a child aged `age_days`, or None for an adult."""
        for band in self.bands:
            if age_days < band.upper_age_days:
                return band
        return None


@dataclass(frozen=True)
class ClinicalPolicy:
    """Thresholds the engine's rules compare against; every value has a documented default."""

    # Fever-clinic criteria (notice 141 §4): a temperature at or above this is a fever.
    fever_threshold_c: float = _t(37.3, 36.5, 39.0)
    # The epidemiological questions look back this many days.
    exposure_window_days: int = _t(14, 1, 60)
    # NEWS2 is not for under-16s (RCP 2017); qSOFA is an adult score (Sepsis-3).
    supporting_scores_from_age_years: float = _t(16, 12, 21)
    acuity: Acuity = field(default_factory=Acuity)
    paediatric: Paediatric = field(default_factory=Paediatric)

    @classmethod
    def from_mapping(cls, data: Any, path: str) -> ClinicalPolicy:
        """Build from the `clinical` mapping of a policy file, naming the key on any fault."""
        policy = _build(cls, data, "clinical", path)
        _check_consistency(policy, path)
        return policy


_T = TypeVar("_T")


def _build(cls: type[_T], data: Any, where: str, path: str) -> _T:
    """Build dataclass `cls` from a mapping, validating every key; `where` is the full key path."""
    if not isinstance(data, Mapping):
        raise ConfigFileError(path, where, "must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        key_path = f"{where}.{key}"
        if key not in fields:
            raise ConfigFileError(path, key_path, f"unknown key; expected one of {', '.join(fields)}")
        values[key] = _value(hints[key], fields[key], value, key_path, path)
    for name, spec in fields.items():
        if (name not in values and spec.default is dataclasses.MISSING
                and spec.default_factory is dataclasses.MISSING):
            raise ConfigFileError(path, f"{where}.{name}", "is required")
    return cls(**values)


def _value(hint: Any, spec: dataclasses.Field[Any], value: Any, key: str, path: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, key, path)
    if get_origin(hint) is tuple:
        item_type = get_args(hint)[0]
        if not isinstance(value, list) or not value:
            raise ConfigFileError(path, key, "must be a non-empty list")
        return tuple(_build(item_type, item, f"{key}[{i}]", path) for i, item in enumerate(value))
    optional = isinstance(hint, types.UnionType)
    if optional and value is None:
        return None
    whole = hint is int
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigFileError(path, key, f"must be a number, got {value!r}")
    if whole and value != int(value):
        raise ConfigFileError(path, key, f"must be a whole number, got {value!r}")
    low, high = spec.metadata["range"]
    if not low <= value <= high:
        raise ConfigFileError(path, key, f"must be between {low:g} and {high:g}, got {value!r}")
    return int(value) if whole else float(value)


# Pairs (more urgent key, less urgent key, relation) that must hold so that a more urgent level never
# needs a less extreme value than a less urgent one: a typo fails at boot, not at the bedside.
_ORDER: tuple[tuple[str, str, str], ...] = (
    ("acuity.level1.hr_above", "acuity.level2.hr_from", ">="),
    ("acuity.level2.hr_from", "acuity.level3.hr_from", ">="),
    ("acuity.level1.hr_below", "acuity.level2.hr_upto", "<="),
    ("acuity.level2.hr_upto", "acuity.level3.hr_upto", "<="),
    ("acuity.level3.hr_upto", "acuity.level3.hr_from", "<"),
    ("acuity.level1.sbp_below", "acuity.level2.sbp_upto", "<="),
    ("acuity.level2.sbp_upto", "acuity.level3.sbp_upto", "<="),
    ("acuity.level2.sbp_above", "acuity.level3.sbp_from", ">="),
    ("acuity.level3.sbp_upto", "acuity.level3.sbp_from", "<"),
    ("acuity.level1.spo2_below", "acuity.level2.spo2_upto", "<="),
    ("acuity.level2.spo2_upto", "acuity.level3.spo2_upto", "<="),
    ("acuity.level1.gcs_below", "acuity.level2.gcs_upto", "<="),
    ("acuity.level2.gcs_upto", "acuity.level3.gcs_upto", "<="),
    ("acuity.level2.rr_upto", "acuity.level2.rr_from", "<"),
    ("acuity.level2.pain_from", "acuity.level3.pain_from", ">="),
    ("paediatric.hypotension.newborn_sbp_below", "paediatric.hypotension.sbp_below_max", "<="),
    ("paediatric.hypotension.sbp_below_base", "paediatric.hypotension.sbp_below_max", "<="),
)

_RELATIONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    ">=": (lambda a, b: a >= b, "at least"),
    "<=": (lambda a, b: a <= b, "at most"),
    "<": (lambda a, b: a < b, "below"),
}


def lookup(policy: ClinicalPolicy, dotted: str) -> float:
    """The threshold at a dotted key path such as "acuity.level1.hr_above"."""
    value: Any = policy
    for part in dotted.split("."):
        value = getattr(value, part)
    return float(value)


def _check_consistency(policy: ClinicalPolicy, path: str) -> None:
    for urgent, lax, relation in _ORDER:
        holds, words = _RELATIONS[relation]
        a, b = lookup(policy, urgent), lookup(policy, lax)
        if not holds(a, b):
            raise ConfigFileError(path, f"clinical.{urgent}",
                                  f"must be {words} clinical.{lax} ({b:g}), got {a:g}")
    previous = 0.0
    for i, band in enumerate(policy.paediatric.bands):
        key = f"clinical.paediatric.bands[{i}]"
        if (band.under_days is None) == (band.under_years is None):
            raise ConfigFileError(path, key, "give exactly one of under_days or under_years")
        if band.upper_age_days <= previous:
            raise ConfigFileError(path, key, "bands must be listed from the youngest, each older than the last")
        previous = band.upper_age_days
