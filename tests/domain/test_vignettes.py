"""The public clinical vignettes: every expected field of every case holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.domain.conftest import OPEN
from triage.domain.assessment import assess
from triage.domain.policy import Policy

VIGNETTES = [json.loads(line) for line in
             (Path(__file__).with_name("vignettes_public.jsonl")).read_text(encoding="utf-8").splitlines()
             if line.strip()]


@pytest.mark.parametrize("case", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_vignette_gets_the_expected_decision(case: dict[str, Any], policy: Policy) -> None:
    result = assess(case["input"], policy, now=OPEN).to_dict("en")
    expected = case["expected"]
    assert {key: result[key] for key in expected} == expected, case["rationale"]


@pytest.mark.parametrize("case", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_vignette_is_explained_in_both_languages(case: dict[str, Any], policy: Policy) -> None:
    result = assess(case["input"], policy, now=OPEN)
    lines = result.reasons if result.outcome == "route" else result.errors
    assert lines
    for line in lines:
        assert line.zh and line.en and line.zh != line.en


def test_the_public_vignettes_are_all_there() -> None:
    assert len(VIGNETTES) == 12
