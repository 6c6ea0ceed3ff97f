"""The hospital's data at run time: the validated workflows and the effective policy."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Row
from sqlmodel import Session, col, select

from triage.db import reading
from triage.domain.errors import ConfigFileError
from triage.domain.policy import Policy, RiskLevel, Stream, load_policy
from triage.models import PolicyChange
from triage.services import EFFECTS
from triage.workflow import Workflow, load_workflows


class StartupError(RuntimeError):
    """A hospital data file is broken; the app refuses to start."""


@dataclass
class HospitalData:
    """What was loaded at start-up."""

    policy: Policy
    workflows: dict[str, Workflow]


def init_app(app: Flask) -> None:
    """Load the workflow files and the policy; stop start-up with a message naming file and key."""
    try:
        workflows = load_workflows(app.config["WORKFLOWS_DIR"], effects=EFFECTS.keys())
        policy = load_policy(app.config["POLICY_PATH"])
    except ConfigFileError as exc:
        raise StartupError(f"Cannot start: {exc}") from None
    if "encounter" not in workflows:
        raise StartupError(f"Cannot start: {app.config['WORKFLOWS_DIR']}/encounter.yaml is missing")
    app.extensions["triage.hospital"] = HospitalData(policy=policy, workflows=workflows)


def _data() -> HospitalData:
    data: HospitalData = current_app.extensions["triage.hospital"]
    return data


def workflow(name: str = "encounter") -> Workflow:
    """A loaded workflow."""
    return _data().workflows[name]


def base_policy() -> Policy:
    """The policy as the YAML file states it."""
    return _data().policy


# Supervisors' changes live in the database so every worker on every host sees them; a worker
# re-reads them at most this often.
_CACHE_SECONDS = 2.0
_cache: dict[int, tuple[float, Policy]] = {}
_LATEST_CHANGE = select(PolicyChange).order_by(col(PolicyChange.id).desc()).limit(1)


def effective_policy(session: Session) -> Policy:
    """The policy file with the latest supervisor change (risk level, capacities) applied."""
    base = base_policy()
    key = id(current_app._get_current_object())  # type: ignore[attr-defined]
    hit = _cache.get(key)
    if hit and time.monotonic() - hit[0] < _CACHE_SECONDS and hit[1].source == base.source:
        return hit[1]
    # Read apart from a write request's transaction: on SQLite its first statement takes the write lock.
    with reading(session) as connection:
        policy = apply_change(base, connection.execute(_LATEST_CHANGE).first())
    _cache[key] = (time.monotonic(), policy)
    return policy


def apply_change(base: Policy, change: PolicyChange | Row[Any] | None) -> Policy:
    """The base policy with a supervisor change applied (if any)."""
    if change is None:
        return base
    return base.with_overrides(
        region_risk_level=RiskLevel(change.region_risk_level),
        capacities={Stream(k): v for k, v in change.capacities.items()},
        version=f"{base.version}+{change.id}",
    )


def forget_cached_policy() -> None:
    """Drop the cached effective policy (after a change, and in tests)."""
    _cache.clear()
