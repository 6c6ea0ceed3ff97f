"""The case workflow: YAML -> validated `transitions` Machine; fire(), available_triggers(), to_mermaid().

One shared Machine per workflow file; database rows are never bound as its model. A firing uses a
throw-away `Case` carrying the current state and the facts the conditions look at.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transitions import EventData, Machine

from triage.domain.errors import ConfigFileError, Conflict


@dataclass
class Case:
    """What a firing knows: the current state and the facts conditions test. Never a database row."""

    state: str
    reason: str | None = None
    slot_id: int | None = None
    is_visit_day: bool = True
    decision: Any = None
    ticket: str | None = None
    referral_target: str | None = None


@dataclass(frozen=True)
class Condition:
    """A named predicate over a Case, with the message shown when it does not hold."""

    test: Callable[[Case], bool]
    zh: str
    en: str


# Registry of condition names the YAML may use. The loader rejects any other name at start-up.
CONDITIONS: Mapping[str, Condition] = {
    "has_reason": Condition(lambda c: bool(c.reason and c.reason.strip()),
                            "请填写原因。", "A reason is required."),
    "has_slot": Condition(lambda c: c.slot_id is not None,
                          "请选择一个时段。", "Choose a time slot."),
    "is_visit_day": Condition(lambda c: c.is_visit_day,
                              "此预检仅在预约当天有效，请重新预检。",
                              "This pre-screen is valid only on its booked day; please pre-screen again."),
    "has_decision": Condition(lambda c: c.decision is not None,
                              "尚未作出分诊决定。", "No triage decision has been made."),
    "has_ticket": Condition(lambda c: bool(c.ticket),
                            "尚未发放号码。", "No ticket has been issued."),
    "has_referral_target": Condition(lambda c: bool(c.referral_target),
                                     "请选择转诊去向。", "Choose where the patient is referred to."),
}


class TransitionNotAllowed(Conflict):
    """The trigger is not allowed from the current state, or one of its conditions does not hold."""

    def __init__(self, trigger: str, state: str, *, zh: str, en: str, field: str | None = None) -> None:
        self.trigger = trigger
        self.state = state
        super().__init__(zh, en, field=field)


@dataclass(frozen=True)
class TransitionSpec:
    """One declared transition (one source)."""

    trigger: str
    source: str
    dest: str
    conditions: tuple[str, ...]
    effects: tuple[str, ...]
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class StateSpec:
    """One declared state."""

    name: str
    label_zh: str
    label_en: str
    final: bool


@dataclass
class Workflow:
    """A validated workflow and the one shared Machine built from it."""

    name: str
    version: str
    path: str
    entries: tuple[str, ...]
    states: Mapping[str, StateSpec]
    transitions: tuple[TransitionSpec, ...]
    machine: Machine = field(repr=False)

    def fire(self, trigger: str, case: Case) -> TransitionSpec:
        """Apply `trigger` to `case` (its state changes) or raise TransitionNotAllowed with the reason."""
        candidates = [t for t in self.transitions if t.trigger == trigger and t.source == case.state]
        if trigger not in self.machine.events or not candidates:
            state_zh, trigger_zh = self.state_label(case.state, "zh"), self.trigger_label(trigger, "zh")
            raise TransitionNotAllowed(
                trigger, case.state,
                zh=f"当前状态（{state_zh}）不允许此操作：{trigger_zh}。",
                en=f"'{self.trigger_label(trigger, 'en')}' is not allowed while the case is "
                   f"'{self.state_label(case.state, 'en')}'.",
                field="state",
            )
        if not self.machine.events[trigger].trigger(case):
            failed = next(
                name for t in candidates for name in t.conditions if not CONDITIONS[name].test(case)
            )
            condition = CONDITIONS[failed]
            raise TransitionNotAllowed(trigger, candidates[0].source, zh=condition.zh, en=condition.en,
                                       field=failed)
        return next(t for t in candidates if t.dest == case.state)

    def available_triggers(self, state: str) -> list[str]:
        """Triggers declared from `state`, in file order."""
        seen: dict[str, None] = {}
        for t in self.transitions:
            if t.source == state:
                seen.setdefault(t.trigger)
        return list(seen)

    def state_label(self, state: str, lang: str) -> str:
        """A state's label in the given language."""
        spec = self.states.get(state)
        if spec is None:
            return state
        return spec.label_en if lang == "en" else spec.label_zh

    def trigger_label(self, trigger: str, lang: str) -> str:
        """A trigger's label in the given language."""
        spec = next((t for t in self.transitions if t.trigger == trigger), None)
        if spec is None:
            return trigger
        return spec.label_en if lang == "en" else spec.label_zh

    def is_final(self, state: str) -> bool:
        """Whether `state` ends the encounter."""
        return self.states[state].final

    def to_mermaid(self, counts: Mapping[str, int] | None = None) -> str:
        """A Mermaid state diagram; with `counts`, each state shows how many cases are in it."""
        lines = ["stateDiagram-v2"]
        for entry in self.entries:
            lines.append(f"    [*] --> {entry}")
        for spec in self.states.values():
            label = spec.label_en
            if counts is not None:
                label = f"{label} ({counts.get(spec.name, 0)})"
            lines.append(f"    {spec.name} : {label}")
        for t in self.transitions:
            lines.append(f"    {t.source} --> {t.dest} : {t.trigger}")
        for spec in self.states.values():
            if spec.final:
                lines.append(f"    {spec.name} --> [*]")
        return "\n".join(lines) + "\n"


def _condition_callable(name: str) -> Callable[[EventData], bool]:
    test = CONDITIONS[name].test

    def check(event: EventData) -> bool:
        case = event.model
        assert isinstance(case, Case)
        return test(case)

    check.__name__ = name
    return check


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> ConfigFileError:
        return ConfigFileError(self.path, key, message)

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a name or a list of names")
        return tuple(value)

    def label(self, item: Mapping[str, Any], key: str) -> tuple[str, str]:
        label = item.get("label")
        if not isinstance(label, Mapping) or set(label) != {"zh", "en"} or not all(
            isinstance(label.get(lang), str) and label[lang].strip() for lang in ("zh", "en")
        ):
            raise self.fail(f"{key}.label", "must give a Chinese and an English label: {zh: ..., en: ...}")
        return label["zh"], label["en"]


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and name.islower()


def parse_workflow(data: Any, path: str, *, effects: Collection[str]) -> Workflow:
    """Validate a parsed workflow document and build its Machine; raise ConfigFileError on the first fault."""
    r = _Reader(path)
    if not isinstance(data, Mapping):
        raise r.fail("(top level)", "must be a mapping with name, version, entries, states, transitions")
    known_top = {"name", "version", "entries", "states", "transitions"}
    for key in data:
        if key not in known_top:
            raise r.fail(str(key), f"unknown key; expected one of {', '.join(sorted(known_top))}")
    name = data.get("name")
    if not isinstance(name, str) or not _is_identifier(name):
        raise r.fail("name", "must be a lower-case identifier such as 'encounter'")
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.strip():
        raise r.fail("version", "is required (a text such as \"1\")")

    raw_states = data.get("states")
    if not isinstance(raw_states, list) or not raw_states:
        raise r.fail("states", "must be a non-empty list")
    states: dict[str, StateSpec] = {}
    for i, item in enumerate(raw_states):
        key = f"states[{i}]"
        if not isinstance(item, Mapping):
            raise r.fail(key, "must be a mapping with name and label")
        for extra in sorted(set(item) - {"name", "label", "final"}):
            raise r.fail(f"{key}.{extra}", "unknown key; expected name, label, final")
        state = item.get("name")
        if not isinstance(state, str) or not _is_identifier(state):
            raise r.fail(f"{key}.name", "must be a lower-case identifier")
        if state in states:
            raise r.fail(f"{key}.name", f"duplicate state '{state}'")
        final = item.get("final", False)
        if not isinstance(final, bool):
            raise r.fail(f"{key}.final", "must be true or false")
        zh, en = r.label(item, key)
        states[state] = StateSpec(state, zh, en, final)

    entries = r.names(data.get("entries"), "entries")
    for entry in entries:
        if entry not in states:
            raise r.fail("entries", f"unknown state '{entry}'")

    raw_transitions = data.get("transitions")
    if not isinstance(raw_transitions, list) or not raw_transitions:
        raise r.fail("transitions", "must be a non-empty list")
    specs: list[TransitionSpec] = []
    allowed = {"trigger", "source", "dest", "conditions", "effects", "label"}
    for i, item in enumerate(raw_transitions):
        key = f"transitions[{i}]"
        if not isinstance(item, Mapping):
            raise r.fail(key, "must be a mapping with trigger, source, dest")
        for extra in sorted(set(item) - allowed):
            raise r.fail(f"{key}.{extra}", f"unknown key; expected {', '.join(sorted(allowed))}")
        trigger = item.get("trigger")
        if not isinstance(trigger, str) or not _is_identifier(trigger):
            raise r.fail(f"{key}.trigger", "must be a lower-case identifier (a verb such as 'check_in')")
        if trigger in states:
            raise r.fail(f"{key}.trigger", f"'{trigger}' is also a state name; triggers are verbs")
        sources = r.names(item.get("source"), f"{key}.source")
        dest = item.get("dest")
        if not isinstance(dest, str):
            raise r.fail(f"{key}.dest", "must be a state name")
        if dest not in states:
            raise r.fail(f"{key}.dest", f"unknown state '{dest}'")
        for source in sources:
            if source not in states:
                raise r.fail(f"{key}.source", f"unknown state '{source}'")
            if states[source].final:
                raise r.fail(f"{key}.source", f"'{source}' is a final state; nothing leaves it")
        conditions = r.names(item["conditions"], f"{key}.conditions") if "conditions" in item else ()
        for condition in conditions:
            if condition not in CONDITIONS:
                raise r.fail(f"{key}.conditions", f"unknown condition '{condition}'; known: "
                                                  f"{', '.join(sorted(CONDITIONS))}")
        effect_names = r.names(item["effects"], f"{key}.effects") if "effects" in item else ()
        for effect in effect_names:
            if effect not in effects:
                raise r.fail(f"{key}.effects", f"unknown effect '{effect}'; known: {', '.join(sorted(effects))}")
        zh, en = r.label(item, key)
        for source in sources:
            if any(s.trigger == trigger and s.source == source for s in specs):
                raise r.fail(f"{key}.source", f"'{trigger}' from '{source}' is declared twice")
            specs.append(TransitionSpec(trigger, source, dest, conditions, effect_names, zh, en))

    reachable = _reachable(entries, specs)
    for state in states:
        if state not in reachable:
            raise r.fail(f"states.{state}", "is not reachable from any entry state")
    for spec in states.values():
        if not spec.final and not any(t.source == spec.name for t in specs):
            raise r.fail(f"states.{spec.name}", "has no way out and is not marked final")

    machine = Machine(
        model=None,
        states=[{"name": s.name, "final": s.final} for s in states.values()],
        transitions=[
            {"trigger": t.trigger, "source": t.source, "dest": t.dest,
             "conditions": [_condition_callable(c) for c in t.conditions]}
            for t in specs
        ],
        initial=entries[0],
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
    )
    return Workflow(name, version.strip(), path, entries, states, tuple(specs), machine)


def _reachable(entries: Iterable[str], specs: Iterable[TransitionSpec]) -> set[str]:
    edges: dict[str, set[str]] = {}
    for t in specs:
        edges.setdefault(t.source, set()).add(t.dest)
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo.extend(edges.get(state, ()))
    return seen


def load_workflow(path: str | Path, *, effects: Collection[str]) -> Workflow:
    """Read and validate one workflow file; raise ConfigFileError naming file and key."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(name, "", f"cannot read the workflow file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(name, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    workflow = parse_workflow(data, name, effects=effects)
    if workflow.name != Path(path).stem:
        raise ConfigFileError(name, "name", f"must match the file name '{Path(path).stem}'")
    return workflow


def load_workflows(directory: str | Path, *, effects: Collection[str]) -> dict[str, Workflow]:
    """Load every workflow file in `directory` (all YAML files except policy files)."""
    workflows = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        if path.stem == "policy" or path.stem.startswith("policy"):
            continue
        workflow = load_workflow(path, effects=effects)
        workflows[workflow.name] = workflow
    return workflows
