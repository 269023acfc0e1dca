"""Guarantee 8, for bad requests: a clean 4xx problem naming what is wrong, and nothing lost.

Form fields and JSON bodies of the wrong type or value, hostile dataset names and job ids,
uploads and bodies over their limits: each is refused with an RFC 9457 problem naming the
field, before any job exists. Each test checks that the dataset ``keep``, imported before the
bad request (the ``keep`` fixture), and the job that made it are exactly as they were; that
``/healthz`` still answers; and that no response of the test was a 5xx.

Bad CSV content is in ``test_bad_csv.py``.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from collect_api.settings import Settings
from tests.helpers import (
    PROBLEM,
    Keep,
    assert_no_new_job,
    assert_unharmed,
    csv_bytes,
    problem,
    start_import,
    upload,
    wait_for,
)

pytestmark = pytest.mark.backends

# --- Import form fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"max_errors": "abc"}, "max_errors"),
        ({"max_errors": "-1"}, "max_errors"),
        ({"max_errors": "1.5"}, "max_errors"),
        ({"mode": "bogus"}, "mode"),
        ({"mode": "CREATE"}, "mode"),
        ({"on_error": "x"}, "on_error"),
        ({"on_error": "ignore"}, "on_error"),
    ],
)
async def test_import_form_fields_of_the_wrong_type_are_refused_naming_the_field(
    client: httpx.AsyncClient,
    settings: Settings,
    keep: Keep,
    fields: dict[str, str],
    field_name: str,
) -> None:
    response = await upload(client, b"a,b\r\n1,2\r\n", "typed", **fields)
    body = problem(response, 422, repr(field_name), repr(fields[field_name]))
    assert body["field"] == field_name
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("klingon", "'klingon' is unknown"),
        ("utf-99", "'utf-99' is unknown"),
        ("cp1252", "not supported"),
        ("utf-32", "not supported"),
    ],
)
async def test_an_unknown_or_unsupported_encoding_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, name: str, reason: str
) -> None:
    response = await upload(client, b"a,b\r\n1,2\r\n", "encoded", encoding=name)
    body = problem(response, 422, "encoding", reason)
    assert "utf-8" in body["detail"] and "latin-1" in body["detail"]
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


@pytest.mark.parametrize("delimiter", ["ab", '"', "::", "comma"])
async def test_a_bad_explicit_delimiter_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, delimiter: str
) -> None:
    response = await upload(client, b"a,b\r\n1,2\r\n", "delimited", delimiter=delimiter)
    body = problem(response, 422, "'delimiter'", repr(delimiter))
    assert body["field"] == "delimiter"
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


async def test_an_import_without_a_file_or_form_is_refused_naming_file(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    no_file = await client.post("/imports", data={"dataset": "x"}, files={"other": b"a"})
    assert problem(no_file, 422, "'file'")["field"] == "file"
    as_json = await client.post("/imports", json={"dataset": "x"})
    assert problem(as_json, 422, "multipart/form-data")["field"] == "file"
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


# --- Hostile dataset names -----------------------------------------------------------------


BAD_DATASET_NAMES = [
    "Responses",
    "RESPONSES",
    "1abc",
    "_private",
    "../x",
    "..",
    "a;drop",
    "x; DROP TABLE jobs; --",
    "a b",
    "a-b",
    "a.b",
    "café",
    "a" * 64,
    "",
    "a\x00b",
]


@pytest.mark.parametrize("name", BAD_DATASET_NAMES)
async def test_a_hostile_dataset_name_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, name: str
) -> None:
    response = await upload(client, b"a,b\r\n1,2\r\n", name)
    body = problem(response, 422, "dataset")
    assert body["field"] == "dataset"
    await assert_no_new_job(client, keep, settings)
    assert [d["name"] for d in (await client.get("/datasets")).json()["items"]] == ["keep"]
    await assert_unharmed(client, keep)


async def test_the_longest_dataset_name_is_allowed(client: httpx.AsyncClient, keep: Keep) -> None:
    name = "a" + "b_9" * 20 + "cd"
    assert len(name) == 63
    job = await start_import(client, b"a,b\r\n1,2\r\n", name)
    await wait_for(client, job["id"], {"completed"})
    assert (await client.get(f"/datasets/{name}")).json()["row_count"] == 1
    await assert_unharmed(client, keep)


@pytest.mark.parametrize("name", ["Keep", "../keep", "keep;drop", "k" * 300, "%00"])
async def test_a_hostile_dataset_name_elsewhere_is_a_clean_4xx(
    client: httpx.AsyncClient, keep: Keep, name: str
) -> None:
    for response in (
        await client.get(f"/datasets/{name}"),
        await client.get(f"/datasets/{name}/rows"),
        await client.delete(f"/datasets/{name}"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
    problem(await client.post("/exports", json={"dataset": name}), 422, "dataset")
    await assert_unharmed(client, keep)


# --- Export bodies of the wrong type -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"gzip": "maybe"}, "gzip"),
        ({"gzip": [True]}, "gzip"),
        ({"columns": "age"}, "columns"),
        ({"columns": [1, 2]}, "columns"),
        ({"filters": {}}, "filters"),
        ({"filters": "id eq 1"}, "filters"),
        ({"filters": [{"column": "id", "op": "eq"}]}, "value"),
        ({"filters": [{"column": "id", "op": "like", "value": 1}]}, "operator 'like'"),
        ({"filters": [{"column": "nope", "op": "eq", "value": 1}]}, "column 'nope'"),
        ({"filters": [{"column": "id", "op": "in", "value": 3}]}, "'in'"),
        ({"dataset": 42}, "dataset"),
        ({"dataset": None}, "dataset"),
        ({"gzipp": True}, "gzipp"),
    ],
)
async def test_export_fields_of_the_wrong_type_are_refused_naming_the_field(
    client: httpx.AsyncClient, keep: Keep, body: dict[str, Any], field_name: str
) -> None:
    response = await client.post("/exports", json={"dataset": "keep", **body})
    problem(response, 422, field_name)
    assert [j["kind"] for j in (await client.get("/jobs")).json()["items"]] == ["import"]
    await assert_unharmed(client, keep)


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b'"keep"', b"", b'{"dataset": "keep",}'],
    ids=["text", "list", "string", "empty", "trailing-comma"],
)
async def test_an_export_body_that_is_not_an_object_is_refused(
    client: httpx.AsyncClient, keep: Keep, content: bytes
) -> None:
    response = await client.post(
        "/exports", content=content, headers={"content-type": "application/json"}
    )
    problem(response, 422)
    await assert_unharmed(client, keep)


# --- Job ids of the wrong shape ------------------------------------------------------------


BAD_JOB_IDS = ["..%2Fx", "%2E%2E", "%00", "a" * 500, "' OR 1=1 --", "1; DROP TABLE jobs", "%25"]


@pytest.mark.parametrize("job_id", BAD_JOB_IDS)
async def test_a_job_id_of_the_wrong_shape_is_404(
    client: httpx.AsyncClient, keep: Keep, job_id: str
) -> None:
    for method, suffix in [
        ("GET", ""),
        ("GET", "/history"),
        ("GET", "/errors"),
        ("GET", "/result"),
        ("GET", "/events"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/terminate"),
    ]:
        response = await client.request(method, f"/jobs/{job_id}{suffix}")
        problem(response, 404)
    await assert_unharmed(client, keep)


@pytest.mark.parametrize("cursor", ["%00", "a%00b", "..%2F", "' OR 1=1 --"])
async def test_a_cursor_that_is_no_pages_next_is_a_clean_422(
    client: httpx.AsyncClient, keep: Keep, cursor: str
) -> None:
    for path in ("/jobs", "/datasets", "/teams", "/datasets/keep/rows"):
        problem(await client.get(f"{path}?after={cursor}"), 422, "after")
    await assert_unharmed(client, keep)


@pytest.mark.parametrize("search", ["%00", "team%00", "%25", "_"])
async def test_a_search_for_any_text_answers_a_page(
    client: httpx.AsyncClient, keep: Keep, search: str
) -> None:
    response = await client.get(f"/teams?q={search}")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next": None}
    await assert_unharmed(client, keep)


async def test_a_dot_dot_job_path_is_404(client: httpx.AsyncClient, keep: Keep) -> None:
    problem(await client.get("/jobs/../x"), 404)
    problem(await client.post("/jobs/../x/pause"), 404)
    await assert_unharmed(client, keep)


# --- Uploads and bodies over their limits --------------------------------------------------


@pytest.mark.settings(max_upload_bytes=10_000)
async def test_an_upload_over_the_limit_is_413_and_leaves_no_file(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    big = csv_bytes(["id", "text"], [[str(i), "y" * 40] for i in range(300)])
    assert len(big) > 10_000
    problem(await upload(client, big, "big"), 413, "10000", "COLLECT_MAX_UPLOAD_BYTES")
    await assert_no_new_job(client, keep, settings)
    assert (await client.get("/datasets/big")).status_code == 404
    # Just under the limit is fine.
    small = big[: big.index(b"\r\n", 9_000) + 2]
    job = await start_import(client, small, "big")
    await wait_for(client, job["id"], {"completed"})
    await assert_unharmed(client, keep)


@pytest.mark.settings(max_upload_bytes=10_000)
async def test_an_oversized_upload_is_stopped_while_streaming(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    boundary = "collect-bad-input-test"
    total = 200 * 1024 * 1024
    block = b"1,abcdefghijklmnopqrstuvwxyz\r\n" * 2000
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="dataset"\r\n\r\nbig\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.csv"\r\nContent-Type: text/csv\r\n\r\nid,text\r\n'
        ).encode()
        while sent < total:
            sent += len(block)
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/imports",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    problem(response, 413, "COLLECT_MAX_UPLOAD_BYTES")
    assert sent < 2 * 1024 * 1024, f"the service read {sent} bytes before refusing"
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


async def test_an_oversized_json_body_is_413(client: httpx.AsyncClient, keep: Keep) -> None:
    columns = [f"column number {i}" for i in range(60_000)]
    content = f'{{"dataset": "keep", "columns": {columns!r}}}'.replace("'", '"').encode()
    assert len(content) > 1024 * 1024
    response = await client.post(
        "/exports", content=content, headers={"content-type": "application/json"}
    )
    problem(response, 413, "1048576")

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 64 * 1024):
            yield content[start : start + 64 * 1024]

    response = await client.post(
        "/exports", content=chunked(), headers={"content-type": "application/json"}
    )
    problem(response, 413, "1048576")
    assert [j["kind"] for j in (await client.get("/jobs")).json()["items"]] == ["import"]
    await assert_unharmed(client, keep)
