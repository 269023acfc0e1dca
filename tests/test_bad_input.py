"""Guarantee 8: bad input gets a clear error and loses nothing.

Every case is either refused with a 4xx problem before any job exists, or becomes a job that
fails (``on_error=abort``) or completes with the record rejected (``on_error=skip``). Each
test checks that the answer names the line, record, column or form field; that the dataset
``keep``, imported before the bad request, and the job that made it are exactly as they were;
that ``/healthz`` still answers; and that no response of the test was a 5xx.
"""

import codecs
import csv
import io
import random
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from collect_api.settings import Settings
from tests.helpers import (
    csv_bytes,
    dataset_rows,
    read_csv,
    start_import,
    upload,
    wait_for,
)

PROBLEM = "application/problem+json"
KEEP_HEADER = ["id", "text"]
KEEP_ROWS = [["1", 'kept, "quoted"'], ["2", "ça\r\nva"], ["3", ""]]


@dataclass
class Keep:
    """The dataset every test must leave alone, as it was before the bad request."""

    job: dict[str, Any]
    dataset: dict[str, Any]
    columns: list[str]
    rows: list[list[str]]
    server_errors: list[str] = field(default_factory=list)


@pytest.fixture
async def keep(client: httpx.AsyncClient) -> Keep:
    server_errors: list[str] = []

    async def no_5xx(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            server_errors.append(
                f"{response.request.method} {response.request.url}: {response.text}"
            )

    client.event_hooks["response"].append(no_5xx)
    job = await start_import(client, csv_bytes(KEEP_HEADER, KEEP_ROWS), "keep")
    done = await wait_for(client, job["id"], {"completed"})
    columns, rows = await dataset_rows(client, "keep")
    assert (columns, rows) == (KEEP_HEADER, KEEP_ROWS)
    dataset = (await client.get("/datasets/keep")).json()
    return Keep(done, dataset, columns, rows, server_errors)


async def assert_unharmed(client: httpx.AsyncClient, keep: Keep) -> None:
    """``keep`` and its job are untouched, the service answers, and nothing was a 5xx."""
    assert (await client.get("/datasets/keep")).json() == keep.dataset
    assert await dataset_rows(client, "keep") == (keep.columns, keep.rows)
    assert (await client.get(f"/jobs/{keep.job['id']}")).json() == keep.job
    health = await client.get("/healthz")
    assert health.status_code == 200, health.text
    assert keep.server_errors == []


def problem(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` whose detail holds ``needles``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    for needle in needles:
        assert needle in body["detail"], f"{needle!r} not in {body['detail']!r}"
    return body


async def assert_no_new_job(client: httpx.AsyncClient, keep: Keep, settings: Settings) -> None:
    """A refused request created no job and left no upload behind."""
    jobs = (await client.get("/jobs")).json()["items"]
    assert [j["id"] for j in jobs] == [keep.job["id"]]
    assert list(settings.uploads_dir.iterdir()) == []


async def failure(client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    """Why a bad file was not imported, whether it was refused at once or its job failed:
    ``{code, message, line?, record?, column?}``."""
    if response.status_code == 202:
        job = await wait_for(client, response.json()["id"], {"failed"})
        error: dict[str, Any] = job["error"]
        assert error["message"]
        return error
    body = problem(response, 422)
    return {**body, "message": body["detail"]}


def names_line(error: dict[str, Any], line: int, record: int | None = None) -> None:
    assert error["line"] == line, error
    assert f"line {line}" in error["message"], error
    if record is not None:
        assert error["record"] == record, error
        assert f"record {record}" in error["message"], error


# --- Not text, not CSV ---------------------------------------------------------------------


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("responses.csv", "a,b\r\n1,2\r\n")
    return out.getvalue()


def random_binary() -> bytes:
    rng = random.Random(5)
    return bytes(rng.randrange(256) for _ in range(4096))


NOT_TEXT = {
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "zip": zip_archive(),
    "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(40)),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64),
    "random": random_binary(),
    "nul-bytes": b"a,b\n1,2\n3,\x00\x00\x00\n",
    "utf-16-undeclared": "a,b\r\n1,2\r\n".encode("utf-16"),
}


@pytest.mark.parametrize("content", NOT_TEXT.values(), ids=NOT_TEXT.keys())
async def test_a_file_that_is_not_csv_text_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, content: bytes
) -> None:
    response = await upload(client, content, "binary")
    error = await failure(client, response)
    assert error["line"] >= 1 and f"line {error['line']}" in error["message"]
    assert "CSV" in error["message"] or "utf-8" in error["message"]
    assert (await client.get("/datasets/binary")).status_code == 404
    await assert_unharmed(client, keep)


async def test_a_known_binary_format_is_named(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    body = problem(await upload(client, NOT_TEXT["zip"], "binary"), 422, "ZIP", "line 1")
    assert body["line"] == 1
    body = problem(await upload(client, NOT_TEXT["nul-bytes"], "binary"), 422, "NUL", "line 3")
    assert body["line"] == 3
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


# --- Empty files and bad headers -----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"\r\n\r\n\r\n", b"\n\n\r\n  \n\t\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"],
    ids=["empty", "one-newline", "crlfs", "blank-and-spaces", "bom-only", "bom-and-newline"],
)
async def test_an_empty_or_blank_file_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, content: bytes
) -> None:
    body = problem(await upload(client, content, "empty"), 422, "empty", "line 1")
    assert body["line"] == 1
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


@pytest.mark.parametrize(
    "content",
    [b"a,b,c\r\n", b"\r\n\r\na,b,c", b"\xef\xbb\xbfa,b,c\n\n\n"],
    ids=["crlf", "blank-lines-then-header", "bom-and-trailing-blank-lines"],
)
async def test_a_header_only_file_completes_with_no_rows(
    client: httpx.AsyncClient, keep: Keep, content: bytes
) -> None:
    job = await start_import(client, content, "headers")
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_imported"] == 0
    assert await dataset_rows(client, "headers") == (["a", "b", "c"], [])
    await assert_unharmed(client, keep)


@pytest.mark.parametrize(
    ("content", "line", "column"),
    [
        (b"id,name,id\r\n1,2,3\r\n", 1, "id"),
        (b"\r\n\r\na,b,c,b\r\n1,2,3,4\r\n", 3, "b"),
        ('é,"x,y",é\n'.encode(), 1, "é"),
    ],
    ids=["plain", "after-blank-lines", "non-ascii"],
)
async def test_a_duplicate_column_name_is_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    keep: Keep,
    content: bytes,
    line: int,
    column: str,
) -> None:
    body = problem(
        await upload(client, content, "dupes"), 422, f"line {line}", repr(column), "more than once"
    )
    assert body["line"] == line
    assert body["column"] == column
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


@pytest.mark.parametrize(
    ("content", "index"),
    [(b"a,,c\r\n1,2,3\r\n", 2), (b",b\r\n", 1), (b"a,b,\r\n", 3), (b'a,"  ",c\r\n', 2)],
    ids=["middle", "first", "last", "spaces-only"],
)
async def test_an_empty_column_name_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, content: bytes, index: int
) -> None:
    body = problem(
        await upload(client, content, "unnamed"), 422, "line 1", f"column {index}", "no name"
    )
    assert body["line"] == 1
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


@pytest.mark.settings(max_columns=5)
async def test_more_columns_than_allowed_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    wide = csv_bytes([f"c{i}" for i in range(6)], [[str(i) for i in range(6)]])
    body = problem(await upload(client, wide, "wide"), 422, "line 1", "6 columns", "5")
    assert body["line"] == 1
    await assert_no_new_job(client, keep, settings)
    # Exactly the limit is fine.
    job = await start_import(client, csv_bytes(list("abcde"), [list("12345")]), "five")
    assert (await wait_for(client, job["id"], {"completed"}))["result"]["rows_imported"] == 1
    await assert_unharmed(client, keep)


# --- Ragged rows and unterminated quotes ---------------------------------------------------

RAGGED = {
    "fewer": (b"a,b\r\n1,2\r\n3\r\n4,5\r\n", 3, 2, "1 fields"),
    "more": (b"a,b\r\n1,2\r\n3,4\r\n5,6,7\r\n8,9\r\n", 4, 3, "3 fields"),
    "after-multiline-field": (b'a,b\r\n1,"x\r\ny\r\nz"\r\n\r\n3\r\n', 6, 2, "1 fields"),
    "far-in": (
        csv_bytes(["a", "b"], [[str(i), "v"] for i in range(450)]) + b"x,y,z\r\n1,2\r\n",
        452,
        451,
        "3 fields",
    ),
}


@pytest.mark.parametrize("mode", ["create", "append"])
@pytest.mark.parametrize(("content", "line", "record", "reason"), RAGGED.values(), ids=RAGGED)
async def test_a_ragged_row_fails_the_job_naming_line_and_record(
    client: httpx.AsyncClient,
    keep: Keep,
    mode: str,
    content: bytes,
    line: int,
    record: int,
    reason: str,
) -> None:
    # In append mode the file goes to a dataset of its own columns, imported first.
    if mode == "append":
        job = await start_import(client, b"a,b\r\nold,row\r\n", "ragged")
        await wait_for(client, job["id"], {"completed"})
    response = await upload(client, content, "ragged", mode=mode)
    assert response.status_code == 202, response.text
    error = await failure(client, response)
    assert error["code"] == "bad_record"
    names_line(error, line, record)
    assert reason in error["message"] and "on_error=skip" in error["message"]
    if mode == "create":
        assert (await client.get("/datasets/ragged")).status_code == 404
    else:
        assert (await dataset_rows(client, "ragged"))[1] == [["old", "row"]]
    await assert_unharmed(client, keep)


async def test_a_ragged_row_is_rejected_with_skip_and_listed(
    client: httpx.AsyncClient, keep: Keep
) -> None:
    content = (
        b"a,b\r\n"
        b"1,2\r\n"
        b"3\r\n"  # line 3, record 2: fewer
        b'4,"multi\r\nline"\r\n'
        b'5,6,"x,y"\r\n'  # line 6, record 4: more
        b"\r\n"
        b"7,8\r\n"
        b'"9\r\nnine",10,11,12\r\n'  # line 9, record 6: more, spanning two lines
        b"13,14\r\n"
    )
    job = await start_import(client, content, "skipped", on_error="skip")
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_imported"] == 4
    assert done["result"]["rows_rejected"] == 3
    assert (await dataset_rows(client, "skipped"))[1] == [
        ["1", "2"],
        ["4", "multi\r\nline"],
        ["7", "8"],
        ["13", "14"],
    ]
    response = await client.get(f"/jobs/{job['id']}/errors")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = read_csv(response.content)
    assert rows[0] == ["line", "record", "column", "reason", "raw"]
    assert [r[:3] for r in rows[1:]] == [["3", "2", ""], ["6", "4", ""], ["9", "6", ""]]
    assert all("the header has 2" in r[3] for r in rows[1:])
    assert [r[3].split(";")[0] for r in rows[1:]] == [
        f"the record has {n} fields" for n in (1, 3, 4)
    ]
    assert [r[4] for r in rows[1:]] == ["3", '5,6,"x,y"', '"9\r\nnine",10,11,12']
    await assert_unharmed(client, keep)


UNTERMINATED = {
    "in-a-row": (b'a,b\r\n1,2\r\n3,"never closed\r\n4,5\r\n6,7\r\n', 3, 2),
    "after-a-multiline-field": (b'a,b\r\n1,"two\r\nlines"\r\n3,"open\r\n4,5\r\n', 4, 2),
    "far-in": (
        csv_bytes(["a", "b"], [[str(i), "v"] for i in range(450)]) + b'x,"open\r\n1,2\r\n',
        452,
        451,
    ),
}


@pytest.mark.parametrize(("content", "line", "record"), UNTERMINATED.values(), ids=UNTERMINATED)
async def test_an_unterminated_quote_fails_naming_where_it_opens(
    client: httpx.AsyncClient, keep: Keep, content: bytes, line: int, record: int
) -> None:
    error = await failure(client, await upload(client, content, "quotes"))
    names_line(error, line, record)
    assert "never closed" in error["message"]
    assert (await client.get("/datasets/quotes")).status_code == 404
    await assert_unharmed(client, keep)


async def test_an_unterminated_quote_in_the_header_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    body = problem(
        await upload(client, b'a,"b\r\n1,2\r\n', "quotes"), 422, "line 1", "never closed"
    )
    assert body["line"] == 1
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


# --- Encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"a,b\r\n1,2\r\n3,\xff\xfe\r\n", 3),
        (b'a,b\r\n1,"x\r\ny"\r\n3,caf\xc3\r\n', 4),
        ("a,b\r\n1,é\r\n".encode() + "2,café\r\n".encode("latin-1"), 3),
        (b"\xe9t\xe9,b\r\n1,2\r\n", 1),
    ],
    ids=["invalid-bytes", "after-multiline-field", "latin-1-as-utf-8", "in-the-header"],
)
async def test_bytes_invalid_in_utf_8_fail_naming_the_line(
    client: httpx.AsyncClient, keep: Keep, content: bytes, line: int
) -> None:
    error = await failure(client, await upload(client, content, "mojibake"))
    assert error["code"] == "bad_encoding"
    names_line(error, line)
    assert "encoding" in error["message"]
    assert (await client.get("/datasets/mojibake")).status_code == 404
    await assert_unharmed(client, keep)


@pytest.mark.settings(chunk_rows=5000)
async def test_invalid_bytes_past_the_first_block_fail_naming_the_line(
    client: httpx.AsyncClient, keep: Keep
) -> None:
    rows = [[str(i), f"répondant numéro {i}"] for i in range(100_000)]
    content = csv_bytes(["id", "name"], rows) + b"100000,caf\xe9\r\n100001,ok\r\n"
    assert len(content) > 2 * 1024 * 1024
    error = await failure(client, await upload(client, content, "mojibake"))
    assert error["code"] == "bad_encoding"
    names_line(error, 100_002)
    assert (await client.get("/datasets/mojibake")).status_code == 404
    await assert_unharmed(client, keep)


LATIN_1_ROWS = [["1", "café"], ["2", "Ærø, naïve"], ["3", "£5 ½"]]
LATIN_1_TEXT = csv_bytes(["id", "name"], LATIN_1_ROWS).decode()
ENCODED = {
    "utf-16-le-bom": (codecs.BOM_UTF16_LE + LATIN_1_TEXT.encode("utf-16-le"), "utf-16"),
    "utf-16-be-bom": (codecs.BOM_UTF16_BE + LATIN_1_TEXT.encode("utf-16-be"), "utf-16"),
    "latin-1": (LATIN_1_TEXT.encode("latin-1"), "latin-1"),
    "utf-8-bom": (codecs.BOM_UTF8 + LATIN_1_TEXT.encode(), "utf-8"),
    "utf-8-default": (LATIN_1_TEXT.encode(), ""),
}


@pytest.mark.parametrize(("content", "encoding"), ENCODED.values(), ids=ENCODED)
async def test_declared_encodings_are_read_exactly(
    client: httpx.AsyncClient, keep: Keep, content: bytes, encoding: str
) -> None:
    fields = {"encoding": encoding} if encoding else {}
    job = await start_import(client, content, "encoded", **fields)
    done = await wait_for(client, job["id"], {"completed"})
    assert done["params"]["encoding"] == (encoding or "utf-8")
    # No BOM is left on the first column's name.
    assert await dataset_rows(client, "encoded") == (["id", "name"], LATIN_1_ROWS)
    await assert_unharmed(client, keep)


async def test_utf_16_without_a_bom_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    content = LATIN_1_TEXT.encode("utf-16-le")
    body = problem(await upload(client, content, "encoded", encoding="utf-16"), 422, "BOM")
    assert body["line"] == 1
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


async def test_latin_1_sent_as_utf_8_fails_naming_the_line(
    client: httpx.AsyncClient, keep: Keep
) -> None:
    error = await failure(client, await upload(client, LATIN_1_TEXT.encode("latin-1"), "encoded"))
    assert error["code"] == "bad_encoding"
    names_line(error, 2)
    assert "utf-8" in error["message"] and "encoding" in error["message"]
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


# --- Size limits ---------------------------------------------------------------------------


@pytest.mark.settings(max_field_bytes=1000)
@pytest.mark.parametrize(
    ("field_text", "line"),
    [("x" * 1001, 3), ("é" * 501, 3), ("x" * 1001, 1)],
    ids=["ascii", "multi-byte", "in-the-header"],
)
async def test_a_field_over_the_limit_fails_naming_the_line(
    client: httpx.AsyncClient, keep: Keep, field_text: str, line: int
) -> None:
    assert len(field_text.encode()) > 1000
    if line == 1:
        content = csv_bytes(["id", field_text], [["1", "2"]])
    else:
        rows = [["1", "x" * 1000, "y"], ["2", field_text, "y"], ["3", "z", "y"]]
        content = csv_bytes(["id", "text", "more"], rows)
    error = await failure(client, await upload(client, content, "huge"))
    assert "COLLECT_MAX_FIELD_BYTES" in error["message"]
    if line == 1:
        names_line(error, 1)
    else:
        # The field is in record 2 (line 3), column 'text'.
        names_line(error, 3, 2)
        assert error["column"] == "text" and "'text'" in error["message"]
    assert (await client.get("/datasets/huge")).status_code == 404
    await assert_unharmed(client, keep)


@pytest.mark.settings(max_field_bytes=1000)
async def test_a_field_at_the_limit_is_imported(client: httpx.AsyncClient, keep: Keep) -> None:
    rows = [["1", "x" * 1000], ["2", "€" * 333]]
    job = await start_import(client, csv_bytes(["id", "text"], rows), "limit")
    await wait_for(client, job["id"], {"completed"})
    assert (await dataset_rows(client, "limit"))[1] == rows
    await assert_unharmed(client, keep)


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


# --- Delimiters ----------------------------------------------------------------------------

DELIMITED_HEADER = ["id", "name", "note"]
DELIMITED_ROWS = [
    ["1", "Ann, Jr", "semi;colon"],
    ["2", "tab\there", "pipe|d"],
    ["3", 'say "hi"', ""],
    ["4", "line\nbreak", "é"],
]


def delimited(delimiter: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(DELIMITED_HEADER)
    writer.writerows(DELIMITED_ROWS)
    return out.getvalue().encode()


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"], ids=["comma", "semi", "tab", "pipe"])
@pytest.mark.parametrize("given", ["auto", "explicit"])
async def test_delimiters_are_sniffed_or_taken_and_recorded(
    client: httpx.AsyncClient, keep: Keep, delimiter: str, given: str
) -> None:
    fields = {} if given == "auto" else {"delimiter": "tab" if delimiter == "\t" else delimiter}
    job = await start_import(client, delimited(delimiter), "delimited", **fields)
    assert job["params"]["delimiter"] == delimiter
    done = await wait_for(client, job["id"], {"completed"})
    assert done["params"]["delimiter"] == delimiter
    assert await dataset_rows(client, "delimited") == (DELIMITED_HEADER, DELIMITED_ROWS)
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


# --- Hostile names -------------------------------------------------------------------------

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


HOSTILE_COLUMNS = [
    '"; DROP TABLE jobs; --',
    "rowid",
    "ROWID",
    "oid",
    "_rowid_",
    "_row",
    "_job_id",
    "c0",
    "c1",
    "id",
    "Name",
    "name",
    "with space",
    " leading and trailing ",
    "🎉 party 🎉",
    "日本語",
    "x" * 300,
    'say "hi"',
    "a,b",
    "multi\nline",
    "NULL",
    "select",
    "[bracket]",
    "`tick`",
    "%s",
    "?",
    ":name",
]
HOSTILE_ROWS = [[f"r{r}-{i}" for i in range(len(HOSTILE_COLUMNS))] for r in range(3)] + [
    ["'); DELETE FROM datasets; --", "", " ", "NULL", "\r\n", *["z"] * (len(HOSTILE_COLUMNS) - 5)]
]


async def test_hostile_column_names_are_stored_and_exported_exactly(
    client: httpx.AsyncClient, keep: Keep
) -> None:
    assert all(len(r) == len(HOSTILE_COLUMNS) for r in HOSTILE_ROWS)
    job = await start_import(client, csv_bytes(HOSTILE_COLUMNS, HOSTILE_ROWS), "hostile")
    done = await wait_for(client, job["id"], {"completed"})
    assert done["params"]["columns"] == HOSTILE_COLUMNS
    assert done["result"]["rows_imported"] == len(HOSTILE_ROWS)
    dataset = (await client.get("/datasets/hostile")).json()
    assert dataset["columns"] == HOSTILE_COLUMNS
    assert dataset["row_count"] == len(HOSTILE_ROWS)
    assert await dataset_rows(client, "hostile") == (HOSTILE_COLUMNS, HOSTILE_ROWS)

    # All columns, then some chosen by their hostile names and filtered on one of them.
    full = await client.post("/exports", json={"dataset": "hostile"})
    assert full.status_code == 202, full.text
    await wait_for(client, full.json()["id"], {"completed"})
    result = await client.get(f"/jobs/{full.json()['id']}/result")
    assert result.status_code == 200
    assert read_csv(result.content) == [HOSTILE_COLUMNS, *HOSTILE_ROWS]

    chosen = ["x" * 300, '"; DROP TABLE jobs; --', "rowid", "name", "Name", "🎉 party 🎉"]
    at = [HOSTILE_COLUMNS.index(c) for c in chosen]
    some = await client.post(
        "/exports",
        json={
            "dataset": "hostile",
            "columns": chosen,
            "filters": [
                {"column": '"; DROP TABLE jobs; --', "op": "ne", "value": "r1-0"},
                {"column": "_job_id", "op": "in", "value": ["r0-6", "r1-6", "z"]},
            ],
        },
    )
    assert some.status_code == 202, some.text
    await wait_for(client, some.json()["id"], {"completed"})
    result = await client.get(f"/jobs/{some.json()['id']}/result")
    expected = [[HOSTILE_ROWS[r][i] for i in at] for r in (0, 3)]
    assert read_csv(result.content) == [chosen, *expected]
    await assert_unharmed(client, keep)


# --- Append with another header ------------------------------------------------------------


async def test_append_with_the_columns_in_another_order_is_fine(
    client: httpx.AsyncClient, keep: Keep
) -> None:
    job = await start_import(client, b"id,text\r\n1,one\r\n", "target")
    await wait_for(client, job["id"], {"completed"})
    job = await start_import(client, b"text,id\r\ntwo,2\r\n", "target", mode="append")
    await wait_for(client, job["id"], {"completed"})
    assert await dataset_rows(client, "target") == (["id", "text"], [["1", "one"], ["2", "two"]])
    await assert_unharmed(client, keep)


@pytest.mark.parametrize(
    ("header", "missing", "extra"),
    [
        (["id"], ["text"], []),
        (["id", "text", "more"], [], ["more"]),
        (["id", "other"], ["text"], ["other"]),
        (["ID", "text"], ["id"], ["ID"]),
        (["text ", "id"], ["text"], ["text "]),
    ],
    ids=["missing", "extra", "both", "case", "trailing-space"],
)
async def test_append_with_other_columns_is_refused_naming_both_lists(
    client: httpx.AsyncClient,
    settings: Settings,
    keep: Keep,
    header: list[str],
    missing: list[str],
    extra: list[str],
) -> None:
    response = await upload(client, csv_bytes(header, [["1"] * len(header)]), "keep", mode="append")
    body = problem(response, 422, f"missing {missing}", f"extra {extra}", "'keep'")
    assert body["missing"] == missing
    assert body["extra"] == extra
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


# --- on_error=skip and max_errors ----------------------------------------------------------


@pytest.mark.parametrize("rejected", [3, 4, 600])
async def test_skip_fails_the_job_past_max_errors(
    client: httpx.AsyncClient, keep: Keep, rejected: int
) -> None:
    content = b"a,b\r\n0,0\r\n" + b"1\r\n" * rejected + b"2,3\r\n"
    job = await start_import(client, content, "many", on_error="skip", max_errors="3")
    assert job["params"]["max_errors"] == 3
    if rejected <= 3:
        done = await wait_for(client, job["id"], {"completed"})
        assert done["result"]["rows_rejected"] == rejected
        assert (await dataset_rows(client, "many"))[1] == [["0", "0"], ["2", "3"]]
    else:
        failed = await wait_for(client, job["id"], {"failed"})
        assert failed["error"]["code"] == "too_many_errors"
        assert "more than 3" in failed["error"]["message"]
        assert "line" in failed["error"]["message"]
        assert f"/jobs/{job['id']}/errors" in failed["error"]["message"]
        assert (await client.get("/datasets/many")).status_code == 404
    await assert_unharmed(client, keep)


async def test_skip_past_max_errors_in_append_leaves_the_dataset_as_it_was(
    client: httpx.AsyncClient, keep: Keep
) -> None:
    content = b"text,id\r\nnew,9\r\n" + b"only-one\r\n" * 5
    job = await start_import(
        client, content, "keep", mode="append", on_error="skip", max_errors="2"
    )
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["code"] == "too_many_errors"
    await assert_unharmed(client, keep)


# --- Request fields of the wrong type ------------------------------------------------------


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


async def test_an_import_without_a_file_or_form_is_refused_naming_file(
    client: httpx.AsyncClient, settings: Settings, keep: Keep
) -> None:
    no_file = await client.post("/imports", data={"dataset": "x"}, files={"other": b"a"})
    assert problem(no_file, 422, "'file'")["field"] == "file"
    as_json = await client.post("/imports", json={"dataset": "x"})
    assert problem(as_json, 422, "multipart/form-data")["field"] == "file"
    await assert_no_new_job(client, keep, settings)
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


async def test_a_dot_dot_job_path_is_404(client: httpx.AsyncClient, keep: Keep) -> None:
    problem(await client.get("/jobs/../x"), 404)
    problem(await client.post("/jobs/../x/pause"), 404)
    await assert_unharmed(client, keep)


# --- Oversized JSON bodies -----------------------------------------------------------------


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
