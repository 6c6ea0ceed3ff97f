"""The "try again" answer when the database cannot be reached, in-process and fast, on either database.

The page around the message reads the database itself (the logged-in nurse, the patient pages' live policy); it
must not fail in turn and leave a bare 500. test_database_outage.py cuts the database under the real server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from triage.db import Database
from triage.hospital import forget_cached_policy
from triage.models import Role
from triage.services import issue_token

TRY_AGAIN = {"zh": "系统繁忙或暂时不可用。您的信息没有丢失，请稍后再试。",
             "en": "The system is busy or briefly unavailable. Nothing was lost; please try again in a moment."}


@pytest.fixture
def unreachable(app: Flask, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Call it to make the app's database unreachable (a server nobody listens on, a file that cannot be opened)."""
    kept = app.extensions["triage.db"]

    def cut() -> None:
        url = "sqlite:///" + str(tmp_path / "missing" / "triage.db") if kept.is_sqlite else \
            kept.url.set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
        app.extensions["triage.db"] = Database(url)
        forget_cached_policy()

    yield cut
    app.extensions["triage.db"].dispose()
    app.extensions["triage.db"] = kept


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("path", ["/desk/", "/queues/", "/prescreen/s/" + "x" * 43, "/"])
def test_pages_answer_try_again_when_the_database_is_unreachable_even_for_a_logged_in_nurse(
        login: Callable[[Role], FlaskClient], unreachable: Callable[[], None], path: str, lang: str) -> None:
    nurse = login(Role.NURSE)
    unreachable()
    response = nurse.get(path, headers={"Accept-Language": lang})
    assert response.status_code == 503, response.text[:500]
    assert TRY_AGAIN[lang] in response.text and "Traceback" not in response.text
    assert response.content_type.startswith("text/html")


def test_the_api_answers_503_json_when_the_database_is_unreachable(
        app: Flask, make_user: Callable[..., object], unreachable: Callable[[], None]) -> None:
    user = make_user("api-nurse", Role.NURSE)
    with app.app_context():
        s = app.extensions["triage.db"].session()
        token = issue_token(s, user=user, label="test")  # type: ignore[arg-type]
        s.close()
    unreachable()
    response = app.test_client().get("/api/v1/queues/general", headers={"Authorization": f"Bearer {token}",
                                                                       "Accept-Language": "en"})
    assert response.status_code == 503
    assert response.json == {"message": TRY_AGAIN["en"], "errors": []}
