"""Guarantee 8, for bad CSV content: a clear error, and nothing lost.

Every file here is either refused with a 4xx problem before any job exists, or becomes a job
that fails (``on_error=abort``) or completes with the record rejected (``on_error=skip``).
Each test checks that the answer names the line, record or column; that the dataset ``keep``,
imported before the bad file (the ``keep`` fixture), and the job that made it are exactly as
they were; that ``/healthz`` still answers; and that no response of the test was a 5xx.

Bad requests are in ``test_bad_requests.py``; what the reader itself says of these files, in
``test_csvio.py`` and ``test_csvio_fast.py``.
"""

import codecs
from typing import Any

import httpx
import pytest

from collect_api.settings import Settings
from tests.csv_cases import (
    DELIMITED_HEADER,
    DELIMITED_ROWS,
    EMPTY_FILES,
    FIELDS_OVER_THE_LIMIT,
    HEADER_ONLY_FILES,
    NOT_TEXT,
    RAGGED,
    UNTERMINATED,
    UNTERMINATED_HEADER,
    delimited,
    over_the_field_limit,
)
from tests.helpers import (
    Keep,
    assert_no_new_job,
    assert_unharmed,
    csv_bytes,
    dataset_rows,
    problem,
    read_csv,
    start_import,
    upload,
    wait_for,
)

pytestmark = pytest.mark.backends


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


@pytest.mark.parametrize("content", EMPTY_FILES.values(), ids=EMPTY_FILES)
async def test_an_empty_or_blank_file_is_refused(
    client: httpx.AsyncClient, settings: Settings, keep: Keep, content: bytes
) -> None:
    body = problem(await upload(client, content, "empty"), 422, "empty", "line 1")
    assert body["line"] == 1
    await assert_no_new_job(client, keep, settings)
    await assert_unharmed(client, keep)


@pytest.mark.parametrize("content", HEADER_ONLY_FILES.values(), ids=HEADER_ONLY_FILES)
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
        await upload(client, UNTERMINATED_HEADER, "quotes"), 422, "line 1", "never closed"
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


# --- Field size limits ---------------------------------------------------------------------


@pytest.mark.settings(max_field_bytes=1000)
@pytest.mark.parametrize(
    ("field_text", "line"), FIELDS_OVER_THE_LIMIT.values(), ids=FIELDS_OVER_THE_LIMIT
)
async def test_a_field_over_the_limit_fails_naming_the_line(
    client: httpx.AsyncClient, keep: Keep, field_text: str, line: int
) -> None:
    assert len(field_text.encode()) > 1000
    content = over_the_field_limit(field_text, line)
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


# --- Delimiters ----------------------------------------------------------------------------


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


# --- Hostile column names ------------------------------------------------------------------


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
