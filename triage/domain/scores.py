"""Supporting scores recorded beside the acuity level: NEWS2 (RCP 2017) and qSOFA (Sepsis-3, 2016).

Their tables are published definitions, not hospital choices, so they live in code. Neither score
decides the stream; qSOFA feeds the "suspected sepsis" level-2 criterion, whose cut-off is policy.
"""

from __future__ import annotations

from triage.domain.validation import Patient

_INF = float("inf")

# NEWS2 chart 1: (highest value of the band, points); the first band the value does not exceed wins.
NEWS2_RESPIRATORY_RATE = ((8, 3), (11, 1), (20, 0), (24, 2), (_INF, 3))
NEWS2_SPO2_SCALE1 = ((91, 3), (93, 2), (95, 1), (_INF, 0))
NEWS2_SYSTOLIC = ((90, 3), (100, 2), (110, 1), (219, 0), (_INF, 3))
NEWS2_PULSE = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (_INF, 3))
NEWS2_TEMPERATURE = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (_INF, 2))
NEWS2_SUPPLEMENTAL_OXYGEN = 2
NEWS2_NOT_ALERT = 3

# qSOFA: one point each for RR >= 22/min, SBP <= 100 mmHg, altered mentation.
QSOFA_RESPIRATORY_RATE_FROM = 22
QSOFA_SYSTOLIC_UPTO = 100


def _points(value: float, bands: tuple[tuple[float, int], ...]) -> int:
    for highest, points in bands:
        if value <= highest:
            return points
    return bands[-1][1]


def alert(p: Patient) -> bool | None:
    """Whether the patient is fully alert (ACVPU A, GCS 15, no new confusion); None if not recorded.

    Either reading below normal counts (the more urgent one wins): "A" ticked beside a GCS of 14 is not alert."""
    if "confusion" in p.symptoms:
        return False
    readings = [reading for reading in (None if p.avpu is None else p.avpu == "A",
                                        None if p.gcs is None else p.gcs == 15) if reading is not None]
    return all(readings) if readings else None


def news2(p: Patient) -> int | None:
    """NEWS2 aggregate score with SpO2 scale 1, or None when a parameter is missing."""
    is_alert = alert(p)
    if (p.respiratory_rate is None or p.spo2 is None or p.sbp is None or p.heart_rate is None
            or p.temperature_c is None or is_alert is None):
        return None
    # Scale 2 (target 88-92 %) needs a clinician's documented decision, which triage does not have.
    return (_points(p.respiratory_rate, NEWS2_RESPIRATORY_RATE)
            + _points(p.spo2, NEWS2_SPO2_SCALE1)
            + (NEWS2_SUPPLEMENTAL_OXYGEN if p.on_oxygen else 0)
            + _points(p.sbp, NEWS2_SYSTOLIC)
            + _points(p.heart_rate, NEWS2_PULSE)
            + (0 if is_alert else NEWS2_NOT_ALERT)
            + _points(p.temperature_c, NEWS2_TEMPERATURE))


def qsofa(p: Patient) -> tuple[int | None, int]:
    """qSOFA as (score, or None when a criterion is unknown; number of criteria known to be met)."""
    is_alert = alert(p)
    met = 0
    known = 0
    if p.respiratory_rate is not None:
        known += 1
        met += p.respiratory_rate >= QSOFA_RESPIRATORY_RATE_FROM
    if p.sbp is not None:
        known += 1
        met += p.sbp <= QSOFA_SYSTOLIC_UPTO
    if is_alert is not None:
        known += 1
        met += not is_alert
    return (met if known == 3 else None), met
