"""Property-based API testing: schemathesis against the app's own OpenAPI document.

Every operation gets generated requests, valid and invalid ones (schemathesis's positive and
negative modes): its coverage phase of boundary values, then ``MAX_EXAMPLES`` random ones.
Each response must not be a 5xx and must agree with the document: a documented status code,
a documented content type, documented headers, and a body matching that status's schema.
Every error must be problem details: ``application/problem+json``, its body valid against the
document's one ``Problem`` schema.

The app is real: ``create_app`` on a SQLite file in a temporary directory, with an API key
configured as in production, run with its lifespan. schemathesis's ASGI transport runs that
lifespan, on the event loop thread it sends every request from, so the seed requests go
through the same transport: the engine and the supervisor live on one loop. (Its pytest
plugin ends the lifespan after each test, and the next request starts it again on the same
database, as a restarted server would.)

The seed — datasets, teams, and ended jobs of every kind — lets the generated requests reach
existing resources as well as missing ones: the hooks below mix the valid key into the
generated ``Authorization`` headers, the seeded names and ids into the generated path
parameters, and the seeded dataset and its columns into export requests.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from collect_api.app import create_app
from collect_api.storage.filters import OPERATORS
from tests.conftest import ROOT, make_settings
from tests.helpers import TERMINAL, csv_bytes

MAX_EXAMPLES = 100
# A request that takes longer is a hang; a stream cut at this deadline keeps what it sent.
REQUEST_TIMEOUT_S = 30

# Building an app starts nothing: the document is what the app serves at /openapi.json (the
# fixture checks that the running app serves the same).
DOCUMENT = create_app(make_settings(Path("never-started"))).openapi()
PROBLEM = jsonschema_rs.validator_for(
    {"$ref": "#/components/schemas/Problem", "components": DOCUMENT["components"]}
)


def problem_details(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """An error is an RFC 9457 problem whose body the ``Problem`` schema accepts."""
    if response.status_code < 400:
        return
    media_type = response.headers.get("content-type", [""])[0].split(";")[0]
    assert media_type == "application/problem+json", (
        f"{response.status_code} answered {media_type!r}, not application/problem+json"
    )
    body = response.json()
    errors = [error.message for error in PROBLEM.iter_errors(body)]
    assert not errors, f"not a Problem: {errors}: {body}"
    assert body["status"] == response.status_code, body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    schemathesis.check(problem_details),
]

RESPONSES_CSV = ROOT / "sample_data" / "responses.csv"
TEAMS_CSV = ROOT / "sample_data" / "teams.csv"
# A small valid file for generated uploads, so that some of them queue a job that succeeds.
SMALL_CSV = csv_bytes(["id", "name", "score"], [["1", "Ada", "3.5"], ["2", "Grace", "4"]])
RAGGED_CSV = csv_bytes(["id", "name"], [["1", "Ada"], ["2", "Grace", "extra"], ["3", "Linus"]])
API_KEY = "openapi-test-key"
AUTHORIZATION = f"Bearer {API_KEY}"

# Filled by the `app` fixture; read by the strategies below only when they draw.
SEEDED: dict[str, list[Any]] = {}

schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(
    # The stream of all jobs follows every future change and never ends by itself: each
    # example would sit until the request deadline. The per-job stream is tested: it ends
    # once the job has (the seeded jobs have), and an unknown id gets a 404 before it starts.
    path="/events",
    method="GET",
)


def _wait(http: requests.Session, job: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it has ended; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while job["state"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job {job['id']} still {job['state']}"
        time.sleep(0.02)
        job = http.get(f"/jobs/{job['id']}").json()
    return job


def _submit(http: requests.Session, path: str, **kwargs: Any) -> dict[str, Any]:
    response = http.post(path, timeout=REQUEST_TIMEOUT_S, **kwargs)
    assert response.status_code == 202, response.text
    return _wait(http, response.json())


def _upload(http: requests.Session, path: str, content: bytes, **fields: str) -> dict[str, Any]:
    return _submit(http, path, files={"file": ("data.csv", content, "text/csv")}, data=fields)


def _seed(http: requests.Session) -> dict[str, list[Any]]:
    """Datasets, teams and ended jobs of every kind; the values to offer, by parameter."""
    jobs = [
        _upload(http, "/imports", RESPONSES_CSV.read_bytes(), dataset="responses"),
        _upload(http, "/imports", SMALL_CSV, dataset="scratch"),
        _upload(http, "/imports", RAGGED_CSV, dataset="rejects", on_error="skip"),
        _upload(http, "/imports", RAGGED_CSV, dataset="broken"),
        _upload(http, "/teams/imports", TEAMS_CSV.read_bytes()),
        _submit(http, "/exports", json={"dataset": "responses"}),
        _submit(
            http,
            "/exports",
            json={
                "dataset": "responses",
                "columns": ["response_id", "score"],
                "filters": [{"column": "score", "op": "gt", "value": 5}],
                "gzip": True,
            },
        ),
    ]
    states = [job["state"] for job in jobs]
    assert states == ["completed"] * 3 + ["failed"] + ["completed"] * 3, states
    teams = http.get("/teams", params={"limit": 5}).json()["items"]
    assert teams, "the teams import created no team"
    return {
        "job_id": [job["id"] for job in jobs],
        "name": ["responses", "rejects"],
        "team_id": [str(team["id"]) for team in teams],
        "columns": http.get("/datasets/responses").json()["columns"],
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    app = create_app(make_settings(tmp_path_factory.mktemp("openapi"), api_keys=f"acme:{API_KEY}"))
    try:
        with asgi.get_client(app) as http:
            http.headers["Authorization"] = AUTHORIZATION
            assert http.get("/openapi.json").json() == DOCUMENT
            SEEDED.update(_seed(http))
        yield app
    finally:
        SEEDED.clear()
        # The plugin ends the lifespan after each test; this ends the one the last test's
        # requests started again, or the seed's if seeding failed.
        asgi.shutdown_lifespans()


@schema.hook
def before_generate_headers(ctx: Any, strategy: Any) -> Any:
    def with_key(headers: Any) -> Any:
        return {**headers, "Authorization": AUTHORIZATION} if isinstance(headers, dict) else headers

    return st.one_of(strategy, strategy.map(with_key))


@schema.hook
def before_generate_path_parameters(ctx: Any, strategy: Any) -> Any:
    operation = ctx.operation
    names = [parameter.name for parameter in operation.path_parameters]
    if len(names) != 1 or names[0] not in ("job_id", "name", "team_id"):
        return strategy
    name = names[0]
    # Only the scratch dataset is deleted, so `responses` stays for the other operations.
    deleting = operation.method.upper() == "DELETE"
    seeded = st.deferred(
        lambda: st.sampled_from(["scratch"] if deleting else SEEDED[name]).map(
            lambda value: {name: value}
        )
    )
    return st.one_of(strategy, seeded)


@schema.hook
def before_generate_body(ctx: Any, strategy: Any) -> Any:
    operation = ctx.operation
    if operation.method.upper() != "POST":
        return strategy
    if operation.path == "/exports":
        return st.one_of(strategy, strategy.flatmap(_export_of_responses))
    if operation.path in ("/imports", "/teams/imports"):
        return st.one_of(strategy, strategy.map(_with_small_file))
    return strategy


def _export_of_responses(body: Any) -> Any:
    """The generated export, of the seeded dataset, with its real columns and operators."""
    if not isinstance(body, dict):
        return st.just(body)
    columns = SEEDED["columns"]
    value = st.one_of(
        st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10)
    )
    a_filter = st.fixed_dictionaries(
        {
            "column": st.sampled_from(columns),
            "op": st.sampled_from(OPERATORS),
            "value": st.one_of(value, st.lists(value, max_size=3)),
        }
    )
    return st.fixed_dictionaries(
        {
            **{key: st.just(v) for key, v in body.items()},
            "dataset": st.just("responses"),
            "columns": st.one_of(st.none(), st.lists(st.sampled_from(columns), min_size=1)),
            "filters": st.lists(a_filter, max_size=2),
        }
    )


def _with_small_file(body: Any) -> Any:
    return {**body, "file": SMALL_CSV} if isinstance(body, dict) else body


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    # An example is a whole request to an app with a database; and the seeded values mixed
    # in by the hooks make hypothesis discard more of its data than it expects.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_response_conforms_to_the_openapi_document(
    case: schemathesis.Case, app: FastAPI
) -> None:
    response = case.call_and_validate(app=app, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
    if response.status_code == 202:
        # Let the job it queued end before the next request: the plugin stops the app after
        # each test, and what a shutdown does to running jobs is the supervisor tests' subject.
        with asgi.get_client(app) as http:
            http.headers["Authorization"] = AUTHORIZATION
            _wait(http, response.json())
