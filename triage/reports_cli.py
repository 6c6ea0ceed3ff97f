"""`flask --app wsgi report daily|weekly`: the same reports as the supervisors' pages, as text or CSV."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from triage.db import session_scope
from triage.domain.errors import DomainError

report_cli = AppGroup("report", help="Daily and weekly reports (the same as the supervisors' pages).")


@contextmanager
def _database() -> Iterator[Session]:
    """A session; a missing or unreachable database is a one-line error, not a traceback."""
    try:
        with session_scope() as session:
            yield session
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"the database is not available or not set up ({type(getattr(exc, 'orig', None) or exc).__name__}); "
            "check TRIAGE_DATABASE_URL and run `flask --app wsgi db upgrade`") from None



@report_cli.command("daily")
@click.option("--day", default="", help="Local day, like 2026-11-22 (default: today).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a text table.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", help="Language of the labels.")
def daily_command(day: str, as_csv: bool, lang: str) -> None:
    """Print the daily report of DAY."""
    from triage.hospital import effective_policy
    from triage.models import utcnow
    from triage.services import reports

    with _database() as session:
        policy = effective_policy(session)
        try:
            parsed = reports.parse_day(day, today=policy.local(utcnow()).date())
        except DomainError as exc:
            raise click.BadParameter(exc.text(lang), param_hint="--day") from None
        report = reports.daily_report(session, policy=policy, day=parsed)
        tables = reports.daily_tables(report, lang)
        title = reports.daily_title(report, policy.hospital_name(lang), lang)
    click.echo(reports.tables_csv(title, tables) if as_csv else reports.tables_text(title, tables), nl=not as_csv)


@report_cli.command("weekly")
@click.option("--week", default="", help="ISO week, like 2026-W47 (default: the last complete week).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a text table.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", help="Language of the labels.")
def weekly_command(week: str, as_csv: bool, lang: str) -> None:
    """Print the weekly restoration report of WEEK."""
    from triage.hospital import effective_policy
    from triage.models import utcnow
    from triage.services import reports

    with _database() as session:
        policy = effective_policy(session)
        try:
            parsed = reports.parse_week(week, today=policy.local(utcnow()).date())
        except DomainError as exc:
            raise click.BadParameter(exc.text(lang), param_hint="--week") from None
        report = reports.weekly_report(session, policy=policy, week=parsed)
        tables = reports.weekly_tables(report, lang)
        title = reports.weekly_title(report, policy.hospital_name(lang), lang)
    click.echo(reports.tables_csv(title, tables) if as_csv else reports.tables_text(title, tables), nl=not as_csv)
