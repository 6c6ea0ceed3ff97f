"""The workflow loader refuses broken files with a message naming file and key: one case per rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from triage.config import ROOT
from triage.domain.errors import ConfigFileError
from triage.services import EFFECTS
from triage.workflow import load_workflow, load_workflows

GOOD = yaml.safe_load((ROOT / "workflows" / "encounter.yaml").read_text(encoding="utf-8"))


def _transition(doc: dict[str, Any], trigger: str) -> dict[str, Any]:
    item: dict[str, Any] = next(t for t in doc["transitions"] if t["trigger"] == trigger)
    return item


def _state(doc: dict[str, Any], name: str) -> dict[str, Any]:
    item: dict[str, Any] = next(s for s in doc["states"] if s["name"] == name)
    return item


Mutation = Callable[[dict[str, Any]], None]

BROKEN: list[tuple[str, Mutation, str, str]] = [
    ("unknown top-level key", lambda d: d.update(colour="red"), "colour",
     "unknown key; expected one of entries, name, states, transitions, version"),
    ("missing version", lambda d: d.pop("version"), "version", 'is required (a text such as "1")'),
    ("bad name", lambda d: d.update(name="Encounter Flow"), "name",
     "must be a lower-case identifier such as 'encounter'"),
    ("no states", lambda d: d.update(states=[]), "states", "must be a non-empty list"),
    ("duplicate state", lambda d: d["states"].append(copy.deepcopy(d["states"][0])), "states[13].name",
     "duplicate state 'prescreened'"),
    ("state without labels", lambda d: _state(d, "booked").pop("label"), "states[1].label",
     "must give a Chinese and an English label: {zh: ..., en: ...}"),
    ("label with an extra key", lambda d: _state(d, "booked")["label"].update(fr="Réservé"), "states[1].label",
     "must give a Chinese and an English label: {zh: ..., en: ...}"),
    ("unknown state key", lambda d: _state(d, "booked").update(colour="blue"), "states[1].colour",
     "unknown key; expected name, label, final"),
    ("unknown entry", lambda d: d.update(entries=["prescreened", "teleported"]), "entries",
     "unknown state 'teleported'"),
    ("unknown destination", lambda d: _transition(d, "book").update(dest="reserved"), "transitions[0].dest",
     "unknown state 'reserved'"),
    ("unknown source", lambda d: _transition(d, "book").update(source="nowhere"), "transitions[0].source",
     "unknown state 'nowhere'"),
    ("leaving a final state", lambda d: _transition(d, "book").update(source="completed"),
     "transitions[0].source", "'completed' is a final state; nothing leaves it"),
    ("unknown condition", lambda d: _transition(d, "book").update(conditions=["is_lucky"]),
     "transitions[0].conditions",
     "unknown condition 'is_lucky'; known: has_decision, has_reason, has_referral_target, has_slot, "
     "has_ticket, is_visit_day"),
    ("unknown effect", lambda d: _transition(d, "book").update(effects=["send_fax"]), "transitions[0].effects",
     "unknown effect 'send_fax'; known: hold_slot, issue_ticket, release_slot, stamp_arrival, stamp_call, "
     "stamp_start"),
    ("trigger named like a state", lambda d: _transition(d, "book").update(trigger="booked"),
     "transitions[0].trigger", "'booked' is also a state name; triggers are verbs"),
    ("same trigger twice from a source", lambda d: d["transitions"].append(copy.deepcopy(d["transitions"][0])),
     "transitions[15].source", "'book' from 'prescreened' is declared twice"),
    ("unreachable state", lambda d: d["states"].append(
        {"name": "lost", "label": {"zh": "丢失", "en": "Lost"}, "final": True}), "states.lost",
     "is not reachable from any entry state"),
    ("dead end", lambda d: _state(d, "completed").update(final=False), "states.completed",
     "has no way out and is not marked final"),
    ("final not a boolean", lambda d: _state(d, "completed").update(final="yes"), "states[7].final",
     "must be true or false"),
    ("transition not a mapping", lambda d: d["transitions"].append("book"), "transitions[15]",
     "must be a mapping with trigger, source, dest"),
    ("unknown transition key", lambda d: _transition(d, "book").update(when="always"), "transitions[0].when",
     "unknown key; expected conditions, dest, effects, label, source, trigger"),
]


@pytest.mark.parametrize(("case", "mutate", "key", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_workflow_is_refused_naming_file_and_key(
    tmp_path: Path, case: str, mutate: Mutation, key: str, message: str
) -> None:
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    path = tmp_path / "encounter.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigFileError) as error:
        load_workflow(path, effects=EFFECTS.keys())
    assert str(error.value) == f"{path}: {key}: {message}"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "encounter.yaml"
    path.write_text("name: encounter\nstates: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as error:
        load_workflow(path, effects=EFFECTS.keys())
    assert str(error.value).startswith(f"{path}: line ")
    assert "not valid YAML" in str(error.value)


def test_file_name_must_match_workflow_name(tmp_path: Path) -> None:
    path = tmp_path / "visit.yaml"
    path.write_text(yaml.safe_dump(GOOD, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigFileError) as error:
        load_workflow(path, effects=EFFECTS.keys())
    assert str(error.value) == f"{path}: name: must match the file name 'visit'"


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read the workflow file"):
        load_workflow(tmp_path / "encounter.yaml", effects=EFFECTS.keys())


def test_the_shipped_workflows_load() -> None:
    workflows = load_workflows(ROOT / "workflows", effects=EFFECTS.keys())
    assert set(workflows) == {"encounter"}
    encounter = workflows["encounter"]
    assert encounter.entries == ("prescreened", "arrived")
    for state in ("prescreened", "booked", "arrived", "triaged", "waiting", "called", "in_consultation",
                  "completed", "cancelled", "no_show", "left_without_being_seen", "referred"):
        assert state in encounter.states
