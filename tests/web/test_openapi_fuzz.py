"""Schemathesis fuzzes the JSON API from the OpenAPI description it serves at /api/v1/openapi.json.

One test per operation of the document, each on a fresh app and database, with a bounded number of
generated requests, valid and invalid by the document's schemas, sent with a real nurse's bearer token.
Path references are swapped for real cases (pre-screened, checked in, waiting in a queue) in about half
of the requests, so the success answers are checked too, not only the 404s. Every response must:

- never be a 5xx;
- carry a status code, content type and body that the document declares for the operation;
- refuse what the document says is invalid (4xx);
- when an operation that requires a token answers 2xx, answer 401 to the same request without it or with
  a wrong one.

Not checked: that every schema-valid request is accepted. The clinical rules (a baby's age in days, the
exposure questions online, a known referral facility...) cannot be written in JSON Schema, so the API
rightly answers 422 to some requests the document allows.

A failure means the API or its document is wrong: fix whichever is wrong, never the check.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORD
from tests.onsite_support import (
    always_open_app,  # noqa: F401 - the `app` fixture of this module
    db,
    prescreened,
    staff_actor,
    ticketed,
)
from triage.domain.policy import Stream
from triage.hospital import effective_policy, workflow
from triage.models import Role
from triage.services import create_user, issue_token, onsite
from triage.web import api_prescreen, api_staff  # noqa: F401 - their routes add their paths to the document
from triage.web.openapi import openapi_document

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, ignored_auth]
EXAMPLES_PER_OPERATION = 25  # x 11 operations: about 10 s in all

# What the app serves (test_the_fuzzed_document_is_the_one_served), loaded when the module is collected:
# Schemathesis's per-operation tests need the schema then. (Its lazy `from_fixture` loader does not run
# under pytest 9.2: it sets a private attribute pytest no longer has.)
DOCUMENT = json.loads(json.dumps(openapi_document()))
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture
def nurse_headers(app: Flask) -> dict[str, str]:
    """A real nurse's bearer token (English messages)."""
    with db(app) as s:
        user = create_user(s, username="fuzz-nurse", password=PASSWORD, role=Role.NURSE)
        return {"Authorization": f"Bearer {issue_token(s, user=user, label='fuzz')}", "Accept-Language": "en"}


@pytest.fixture
def references(app: Flask) -> list[str]:
    """Real cases in the states the staff endpoints act on: pre-screened, checked in, waiting in a queue."""
    with db(app) as s:
        found = [prescreened(s, name=f"预检{i}").reference for i in range(3)]
        for i in range(3):
            arrived = prescreened(s, name=f"到达{i}").reference
            onsite.check_in(s, code=arrived, policy=effective_policy(s), workflow=workflow(), actor=staff_actor(s))
            found.append(arrived)
        found += [ticketed(s, stream).reference for stream in (Stream.GENERAL, Stream.FEVER, Stream.EMERGENCY)]
        return found


def test_the_fuzzed_document_is_the_one_served(client: FlaskClient) -> None:
    assert client.get("/api/v1/openapi.json").json == DOCUMENT


@schema.given(real_case=st.booleans(), which=st.integers(min_value=0, max_value=8))
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_the_api_answers_as_its_openapi_document_says(case: Any, real_case: bool, which: int, app: Flask,
                                                      nurse_headers: dict[str, str],
                                                      references: list[str]) -> None:
    if real_case and "reference" in (case.path_parameters or {}):
        case.path_parameters["reference"] = references[which % len(references)]
    case.operation.schema.app = app  # this test's app, for the checks' own probes (ignored_auth) too
    case.call_and_validate(app=app, headers=nurse_headers, checks=CHECKS)
