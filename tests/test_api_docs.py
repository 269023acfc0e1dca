"""The API as documented: every operation explains itself and its errors, the examples work
as given, and /docs and /redoc are served from the package's own files."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import collect_api
from collect_api.app import create_app
from tests.conftest import ROOT, make_settings
from tests.helpers import TERMINAL, start_import, wait_for

DOCUMENT = create_app(make_settings(Path("never-started"))).openapi()
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
STATIC = Path(collect_api.__file__).parent / "static"


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in DOCUMENT["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.mark.parametrize(("method", "path", "operation"), operations())
def test_every_operation_says_what_it_does_and_when_each_error_happens(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    assert operation["summary"].strip()
    description = operation["description"]
    assert len(description) > 40, description
    errors = [status for status in operation["responses"] if int(status) >= 400]
    for status in errors:
        response = operation["responses"][status]
        assert f"**{status}** when" in description, f"{method} {path}: {status} not explained"
        assert list(response["content"]) == ["application/problem+json"]
        content = response["content"]["application/problem+json"]
        assert content["schema"] == PROBLEM_REF
        for example in content["examples"].values():
            assert example["value"]["status"] == int(status)
            assert example["value"]["detail"] != "string"
    if path != "/healthz":
        assert "401" in errors, f"{method} {path} answers 401 when keys are configured"


def test_one_problem_schema_and_no_other_error_schema() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert {"title", "status", "detail"} <= set(schemas["Problem"]["required"])
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


def test_the_statuses_listed_are_those_the_operation_can_answer() -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(DOCUMENT["paths"][path][method]["responses"])

    assert statuses("get", "/jobs/{job_id}") == {"200", "401", "404", "422", "503"}
    assert statuses("get", "/events") == {"200", "401", "503"}
    assert statuses("post", "/jobs/{job_id}/pause") == {"200", "401", "404", "409", "503", "507"}
    assert statuses("get", "/healthz") == {"200", "503"}
    assert "409" not in statuses("post", "/exports")
    assert "413" not in statuses("get", "/datasets")


def _described(schema: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """The fields under ``schema`` (through references, lists and unions) with no description."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _described(DOCUMENT["components"]["schemas"][name], name, seen)
    missing = []
    for name, field in schema.get("properties", {}).items():
        if "description" not in field and "$ref" not in field:
            missing.append(f"{where}.{name}")
        missing += _described(field, f"{where}.{name}", seen)
    for key in ("items", "anyOf", "oneOf", "allOf"):
        parts = schema.get(key)
        for part in parts if isinstance(parts, list) else [parts] if parts else []:
            missing += _described(part, where, seen)
    return missing


def test_every_parameter_form_field_and_body_field_is_described() -> None:
    missing = []
    for method, path, operation in operations():
        for parameter in operation.get("parameters", []):
            if not parameter.get("description"):
                missing.append(f"{method} {path} {parameter['name']}")
        for media in operation.get("requestBody", {}).get("content", {}).values():
            missing += _described(media["schema"], f"{method} {path}", set())
    assert missing == []


def test_every_202_documents_its_location_header() -> None:
    accepted = {p: o["responses"]["202"] for _, p, o in operations() if "202" in o["responses"]}
    assert set(accepted) == {"/imports", "/exports", "/teams/imports"}
    for response in accepted.values():
        assert response["headers"]["Location"]["required"] is True
        assert response["headers"]["Location"]["description"]


def test_the_dataset_form_field_offers_no_name_to_execute() -> None:
    form = DOCUMENT["paths"]["/imports"]["post"]["requestBody"]["content"]["multipart/form-data"]
    dataset = form["schema"]["properties"]["dataset"]
    # Swagger UI would otherwise fill in a random name generated from the pattern.
    assert dataset["example"] == ""
    assert "default" not in dataset


async def test_the_export_examples_work_as_given(client: httpx.AsyncClient) -> None:
    """After the import the description asks for, each example answers 202 and completes."""
    job = await start_import(client, ROOT / "sample_data" / "responses.csv", "responses")
    await wait_for(client, job["id"], {"completed"})
    body = DOCUMENT["paths"]["/exports"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]
    for example in body["examples"].values():
        response = await client.post("/exports", json=example["value"])
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/jobs/{response.json()['id']}"
        done = await wait_for(client, response.json()["id"], TERMINAL)
        assert done["state"] == "completed", done["error"]
        assert done["result"]["rows"] > 0


async def test_range_requests_that_cannot_be_served_answer_problems(
    client: httpx.AsyncClient,
) -> None:
    job = await start_import(client, ROOT / "sample_data" / "responses.csv", "ranged")
    await wait_for(client, job["id"], {"completed"})
    export = (await client.post("/exports", json={"dataset": "ranged"})).json()
    export = await wait_for(client, export["id"], {"completed"})
    url = f"/jobs/{export['id']}/result"
    size = export["result"]["bytes"]

    part = await client.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.content == (await client.get(url)).content[:10]

    beyond = await client.get(url, headers={"Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-type"] == "application/problem+json"
    assert beyond.headers["content-range"] == f"bytes */{size}"
    assert beyond.json()["status"] == 416

    malformed = await client.get(url, headers={"Range": "lines=1-2"})
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"
    assert "Range" in malformed.json()["detail"]


async def test_an_unreadable_json_body_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/exports", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("The body cannot be read")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_the_servers_own_files(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert urls
    for url in urls:
        assert url.startswith("/static/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert (STATIC / url.removeprefix("/static/")).is_file()
    assert "cdn." not in response.text
    assert "fonts.googleapis" not in response.text


def test_the_vendored_files_carry_their_licences() -> None:
    vendor = STATIC / "vendor"
    for directory in ("swagger-ui-5.35.0", "redoc-2.5.4"):
        assert (vendor / directory / "LICENSE").is_file()
    redoc = (vendor / "redoc-2.5.4" / "redoc.standalone.js").read_text(encoding="utf-8")
    assert "cdn.redoc.ly" not in redoc


async def test_the_dashboard_is_served_with_a_same_origin_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', response.text):
        assert (await client.get(url)).status_code == 200, url
