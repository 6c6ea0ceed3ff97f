"""The `clinical` section of the policy: defaults, refusals naming the key, and thresholds that decide."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.domain.conftest import ROOT, Assess, healthy_adult
from triage.domain.assessment import assess
from triage.domain.clinical import ClinicalPolicy
from triage.domain.errors import ConfigFileError
from triage.domain.policy import Policy, Stream, parse_policy

POLICY_FILE = ROOT / "workflows" / "policy.yaml"
DOCUMENT = yaml.safe_load(Path(POLICY_FILE).read_text(encoding="utf-8"))


def with_clinical(change: dict[str, Any] | None = None, **top: Any) -> Policy:
    """The shipped policy with the clinical section changed: dotted key -> value (None deletes)."""
    doc = copy.deepcopy(DOCUMENT)
    for dotted, value in (change or {}).items():
        *parents, last = dotted.split(".")
        node = doc["clinical"]
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is None and isinstance(node, dict):
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    doc["clinical"].update(top)
    return parse_policy(doc, "policy.yaml")


def refusal(change: dict[str, Any] | None = None, **top: Any) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as caught:
        with_clinical(change, **top)
    assert caught.value.path == "policy.yaml"
    return caught.value


def test_the_shipped_policy_states_every_default_explicitly() -> None:
    clinical = DOCUMENT["clinical"]
    assert parse_policy(DOCUMENT, "policy.yaml").clinical == ClinicalPolicy()
    assert set(clinical) == {"fever_threshold_c", "exposure_window_days", "supporting_scores_from_age_years",
                             "acuity", "paediatric"}
    assert set(clinical["acuity"]["level1"]) == set(ClinicalPolicy().acuity.level1.__dataclass_fields__)
    assert set(clinical["acuity"]["level2"]) == set(ClinicalPolicy().acuity.level2.__dataclass_fields__)
    assert set(clinical["acuity"]["level3"]) == set(ClinicalPolicy().acuity.level3.__dataclass_fields__)


def test_a_missing_section_or_key_keeps_the_default() -> None:
    doc = copy.deepcopy(DOCUMENT)
    del doc["clinical"]
    assert parse_policy(doc, "p.yaml").clinical == ClinicalPolicy()
    assert with_clinical({"acuity.level1.hr_above": None}).clinical == ClinicalPolicy()


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"acuity": "strict"}, "clinical.acuity", "must be a mapping"),
    ({"acuity.level4": {"hr_above": 1}}, "clinical.acuity.level4", "unknown key"),
    ({"acuity.level1.heart_rate_above": 180}, "clinical.acuity.level1.heart_rate_above", "unknown key"),
    ({"fever_threshold_c": "37.3"}, "clinical.fever_threshold_c", "must be a number"),
    ({"fever_threshold_c": True}, "clinical.fever_threshold_c", "must be a number"),
    ({"fever_threshold_c": 99.1}, "clinical.fever_threshold_c", "between 36.5 and 39"),
    ({"acuity.level1.spo2_below": 101}, "clinical.acuity.level1.spo2_below", "between"),
    ({"exposure_window_days": 14.5}, "clinical.exposure_window_days", "whole number"),
    ({"acuity.level1.gcs_below": 8.5}, "clinical.acuity.level1.gcs_below", "whole number"),
    ({"paediatric.bands": []}, "clinical.paediatric.bands", "non-empty list"),
    ({"paediatric.bands": {"under_years": 14}}, "clinical.paediatric.bands", "non-empty list"),
    ({"paediatric.bands.1": {"under_years": 3, "hr_above": 160, "rr_above": 40}},
     "clinical.paediatric.bands[1].hr_below", "is required"),
    ({"paediatric.bands.1": {"under_years": 3, "under_days": 1000, "hr_above": 160, "rr_above": 40,
                             "hr_below": 90}}, "clinical.paediatric.bands[1]", "exactly one"),
    ({"paediatric.bands.1": {"hr_above": 160, "rr_above": 40, "hr_below": 90}},
     "clinical.paediatric.bands[1]", "exactly one"),
    ({"paediatric.bands.2": {"under_years": 2, "hr_above": 140, "rr_above": 30, "hr_below": 60}},
     "clinical.paediatric.bands[2]", "youngest"),
    ({"acuity.level2.hr_from": 190}, "clinical.acuity.level1.hr_above", "at least clinical.acuity.level2.hr_from"),
    ({"acuity.level3.spo2_upto": 85}, "clinical.acuity.level2.spo2_upto", "at most clinical.acuity.level3"),
    ({"acuity.level3.pain_from": 8}, "clinical.acuity.level2.pain_from", "at least"),
])
def test_the_loader_refuses_a_bad_clinical_section_naming_the_key(change: dict[str, Any], key: str,
                                                                  words: str) -> None:
    error = refusal(change)
    assert error.key == key
    assert words in error.message
    assert str(error).startswith(f"policy.yaml: {key}: ")


def test_the_loader_refuses_a_clinical_section_that_is_not_a_mapping() -> None:
    doc = copy.deepcopy(DOCUMENT)
    doc["clinical"] = [37.3]
    with pytest.raises(ConfigFileError) as caught:
        parse_policy(doc, "policy.yaml")
    assert caught.value.key == "clinical"


def test_a_null_threshold_is_refused() -> None:
    error = refusal(fever_threshold_c=None)
    assert (error.key, error.message) == ("clinical.fever_threshold_c", "must be a number, got None")


def test_an_unknown_top_level_threshold_is_refused() -> None:
    assert refusal(fever_threshold_f=99.1).key == "clinical.fever_threshold_f"


# --- Thresholds live in the policy: changing one changes the decision -------------------------------

def test_a_higher_fever_threshold_changes_the_stream(run: Assess) -> None:
    assert run(temperature_c=37.4).stream is Stream.FEVER
    assert run(with_clinical(fever_threshold_c=37.5), temperature_c=37.4).stream is Stream.GENERAL


def test_a_changed_heart_rate_bound_changes_the_level(run: Assess) -> None:
    assert run(heart_rate=150).cn_level == 2
    policy = with_clinical({"acuity.level1.hr_above": 190, "acuity.level2.hr_from": 160})
    assert run(policy, heart_rate=150).cn_level == 3


def test_a_changed_paediatric_band_changes_the_level(run: Assess) -> None:
    child = {"age_years": 5, "heart_rate": 135, "respiratory_rate": 24, "sbp": 100}
    assert run(**child).stream is Stream.GENERAL
    policy = with_clinical({"paediatric.bands.2": {"under_years": 8, "hr_above": 130, "rr_above": 30,
                                                   "hr_below": 60}})
    assert run(policy, **child).cn_level == 2


def test_a_changed_sepsis_cut_off_changes_the_decision(run: Assess) -> None:
    febrile = {"temperature_c": 38.5, "respiratory_rate": 24}
    assert run(**febrile).stream is Stream.FEVER
    assert run(with_clinical({"acuity.level2.sepsis_qsofa_from": 1}), **febrile).stream is Stream.EMERGENCY


def test_engine_tables_follow_the_policy_object(policy: Policy) -> None:
    strict = with_clinical(fever_threshold_c=37.0)
    data = healthy_adult(temperature_c=37.1)
    assert assess(data, policy).infection_screen_positive is False
    assert assess(data, strict).infection_screen_positive is True
    assert assess(data, policy).infection_screen_positive is False
