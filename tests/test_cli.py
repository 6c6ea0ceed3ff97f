"""The fixed command-line interface: db upgrade, users, workflows, assess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from tests.conftest import PG_URL
from triage.config import ROOT

FLASK = str(Path(sys.executable).with_name("flask"))


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `flask --app wsgi ...` in a subprocess with the given environment."""
    full_env = {**os.environ, "TRIAGE_SECRET_KEY": "cli-test-secret", **env}
    return subprocess.run([FLASK, "--app", "wsgi", *args], cwd=ROOT, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def fresh_db(tmp_path: Path) -> dict[str, str]:
    """The environment for a fresh, migrated SQLite database."""
    env = {"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    result = run(["db", "upgrade"], env)
    assert result.returncode == 0, result.stderr
    return env


def test_db_upgrade_creates_exactly_the_models_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    result = run(["db", "upgrade"], {"TRIAGE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == [], "the models changed without a migration: run `flask --app wsgi db revision -m ...`"
    # Alembic does not compare partial indexes' conditions: the migrated ones must keep the models' rows.
    modelled = create_engine(f"sqlite:///{tmp_path / 'modelled.db'}")
    SQLModel.metadata.create_all(modelled)
    assert _index_conditions(url) == _index_conditions(str(modelled.url))
    modelled.dispose()


def _index_conditions(url: str) -> dict[str, str]:
    """Each index of a SQLite database with its WHERE condition ("" for a full index)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        conditions = {name: " ".join(sql.partition(" WHERE ")[2].split()) for name, sql in rows}
    engine.dispose()
    return conditions


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL pass only (TRIAGE_TEST_DATABASE_URL)")
@pytest.mark.db
def test_db_upgrade_works_on_postgresql() -> None:
    assert PG_URL is not None
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS migration_check CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA migration_check")
    url = PG_URL + ("&" if "?" in PG_URL else "?") + "options=-csearch_path%3Dmigration_check"
    try:
        result = run(["db", "upgrade"], {"TRIAGE_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        check = create_engine(url)
        assert set(SQLModel.metadata.tables) <= set(inspect(check).get_table_names())
        check.dispose()
        down = run(["db", "downgrade", "base"], {"TRIAGE_DATABASE_URL": url})
        assert down.returncode == 0, down.stderr
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS migration_check CASCADE")
        engine.dispose()


def test_users_create_reads_the_password_from_stdin_and_token_prints_it_last(fresh_db: dict[str, str]) -> None:
    created = run(["users", "create", "wang", "--role", "nurse"], fresh_db, stdin="a-good-password\n")
    assert created.returncode == 0, created.stderr
    assert "Created nurse wang." in created.stdout
    token = run(["users", "token", "wang"], fresh_db)
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().splitlines()[-1].startswith("trg_")


def test_users_create_refuses_bad_input_clearly(fresh_db: dict[str, str]) -> None:
    short = run(["users", "create", "wang", "--role", "nurse"], fresh_db, stdin="short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    bad_role = run(["users", "create", "wang", "--role", "janitor"], fresh_db, stdin="a-good-password\n")
    assert bad_role.returncode != 0 and "janitor" in bad_role.stderr
    run(["users", "create", "wang", "--role", "nurse"], fresh_db, stdin="a-good-password\n")
    again = run(["users", "create", "wang", "--role", "nurse"], fresh_db, stdin="a-good-password\n")
    assert again.returncode != 0 and "already taken" in again.stderr
    unknown = run(["users", "token", "nobody"], fresh_db)
    assert unknown.returncode != 0 and "No such user" in unknown.stderr


def test_users_create_refuses_a_display_name_with_control_characters(fresh_db: dict[str, str]) -> None:
    escaped = run(["users", "create", "wang", "--role", "nurse", "--display-name", "Wang\x1b[2J"], fresh_db,
                  stdin="a-good-password\n")
    assert escaped.returncode != 0 and "The name contains characters that cannot be used." in escaped.stderr
    created = run(["users", "create", "wang", "--role", "nurse", "--display-name", "王护士"], fresh_db,
                  stdin="a-good-password\n")
    assert created.returncode == 0, created.stderr  # nothing was left behind by the refusal


def test_workflows_check_and_draw() -> None:
    check = run(["workflows", "check"], {})
    assert check.returncode == 0, check.stderr
    assert "ok  encounter.yaml" in check.stdout and "ok  policy.yaml" in check.stdout
    draw = run(["workflows", "draw", "encounter"], {})
    assert draw.returncode == 0
    assert draw.stdout.startswith("stateDiagram-v2\n")
    assert "    waiting --> called : call" in draw.stdout
    unknown = run(["workflows", "draw", "nope"], {})
    assert unknown.returncode != 0 and "no workflow named 'nope'" in unknown.stderr


def test_a_broken_workflow_file_stops_the_app_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "encounter.yaml").write_text(
        (ROOT / "workflows" / "encounter.yaml").read_text(encoding="utf-8").replace("dest: booked", "dest: bookd", 1),
        encoding="utf-8")
    code = ("from triage import create_app\n"
            f"create_app({{'TESTING': True, 'WORKFLOWS_DIR': {str(tmp_path)!r}}})\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert f"Cannot start: {tmp_path / 'encounter.yaml'}: transitions[0].dest: unknown state 'bookd'" in result.stderr


@pytest.mark.parametrize("migrated", [True, False], ids=["migrated database", "no database yet"])
def test_assess_reads_json_lines_and_writes_one_line_each(tmp_path: Path, migrated: bool) -> None:
    env = {"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'assess.db'}"}
    if migrated:
        assert run(["db", "upgrade"], env).returncode == 0
    lines = [
        {"id": "a", "stage": "onsite", "age_years": 30, "sex": "M", "temperature_c": 38.2, "symptoms": ["cough"]},
        {"id": 2, "stage": "onsite", "age_years": 30, "sex": "M", "spo2": 120},
    ]
    source = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    result = run(["assess", "-", "--lang", "en"], env, stdin=source)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 3
    assert (out[0]["id"], out[0]["outcome"], out[0]["stream"]) == ("a", "route", "fever")
    assert (out[1]["id"], out[1]["outcome"]) == (2, "reject")
    assert out[1]["errors"][0]["field"] == "spo2"
    assert out[2]["outcome"] == "reject" and out[2]["errors"][0]["field"] == "line"
