"""CSV import: exact, all-or-nothing, pausable, resumable, terminable."""

import asyncio
import itertools
import random
from pathlib import Path

import httpx
import pytest

from collect_api.samples import HEADER, responses, write_responses_csv
from collect_api.settings import Settings
from tests.helpers import (
    csv_bytes,
    dataset_rows,
    read_csv,
    start_import,
    table_names,
    upload,
    wait_for,
    wait_progress,
)

pytestmark = pytest.mark.backends

RECORDS = 50_000


@pytest.fixture(scope="module")
def nasty_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50,000 records with commas, quotes, CRLF and LF inside fields, a BOM and non-ASCII."""
    path = tmp_path_factory.mktemp("csv") / "responses.csv"
    write_responses_csv(path, RECORDS, seed=7, bom=True)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    for needle in (b'""', b",", "é".encode(), "日本".encode()):
        assert needle in data
    return path


@pytest.fixture(scope="module")
def expected_rows() -> list[list[str]]:
    return list(responses(RECORDS, seed=7))


# 200 chunks: a job goes about a chunk between two pauses, so each chunk's end is a place
# where a pause may land.
@pytest.mark.settings(chunk_rows=250)
async def test_import_is_exact_across_many_random_pauses(
    client: httpx.AsyncClient, nasty_csv: Path, expected_rows: list[list[str]]
) -> None:
    rng = random.Random(1)
    job = await start_import(client, nasty_csv, "responses")
    # The request as the job shows it; how the file is read is the job's own, not shown.
    assert set(job["params"]) == {
        "dataset",
        "mode",
        "on_error",
        "max_errors",
        "encoding",
        "delimiter",
        "filename",
        "columns",
        "bytes",
    }
    pauses = 0
    last_done = 0
    while True:
        await asyncio.sleep(rng.uniform(0, 0.03))
        response = await client.post(f"/jobs/{job['id']}/pause")
        if response.status_code == 409 and response.json()["state"] == "completed":
            break
        assert response.status_code == 200, response.text
        paused = response.json()
        if paused["state"] == "completed":
            break
        assert paused["state"] == "paused"
        pauses += 1
        # While paused: nothing is published and nothing moves.
        assert (await client.get("/datasets/responses")).status_code == 404
        assert paused["progress"]["done"] >= last_done
        last_done = paused["progress"]["done"]
        await asyncio.sleep(0.02)
        still = (await client.get(f"/jobs/{job['id']}")).json()
        assert still["state"] == "paused"
        assert still["progress"] == paused["progress"]
        resumed = await client.post(f"/jobs/{job['id']}/resume")
        assert resumed.status_code == 200
        assert resumed.json()["state"] in {"queued", "running", "completed"}
    assert pauses >= 10, f"only {pauses} pauses happened before the job completed"
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_imported"] == RECORDS
    assert done["progress"]["percent"] == 100
    columns, rows = await dataset_rows(client, "responses")
    assert columns == HEADER
    assert rows == expected_rows


async def test_history_records_every_transition_and_who_asked(
    client: httpx.AsyncClient, nasty_csv: Path
) -> None:
    job = await start_import(client, nasty_csv, "audited")
    await wait_progress(client, job["id"], 1)
    assert (await client.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
    await client.post(f"/jobs/{job['id']}/resume")
    await wait_for(client, job["id"], {"completed"})
    history = (await client.get(f"/jobs/{job['id']}/history")).json()["items"]
    moves = [(h["from_state"], h["to_state"]) for h in history]
    assert moves[0] == (None, "queued")
    assert ("running", "pausing") in moves
    assert ("pausing", "paused") in moves
    # Resumed in its own process with a run slot free: straight on, by the user's request.
    assert ("paused", "running") in moves
    assert moves[-1] == ("running", "completed")
    pause = next(h for h in history if h["to_state"] == "pausing")
    assert pause["actor"] == "default"
    resume = next(h for h in history if h["from_state"] == "paused")
    assert (resume["actor"], resume["reason"]) == ("default", "resume")
    assert all(a["at"] <= b["at"] for a, b in itertools.pairwise(history))


async def tables(settings: Settings) -> set[str]:
    """The dataset and staging tables in the database."""
    names = await table_names(settings.database_url)
    return {n for n in names if n.startswith(("ds_", "stage_"))}


def job_of(listing: httpx.Response) -> str:
    """The id of the oldest job listed: the one that made the dataset."""
    return str(listing.json()["items"][-1]["id"])


BEFORE = [["1", 'before, "quoted"'], ["2", "ça va\nbien"]]
NEW = [[str(i), f"new row {i}"] for i in range(3, 30_003)]


async def _prepare(client: httpx.AsyncClient, mode: str) -> list[list[str]] | None:
    """The dataset as it is before the job under test: absent for `create`."""
    if mode == "create":
        return None
    await start_import(client, csv_bytes(["id", "text"], BEFORE), "target")
    job = (await client.get("/jobs", params={"limit": 1})).json()["items"][0]
    await wait_for(client, job["id"], {"completed"})
    return BEFORE


@pytest.mark.settings(chunk_rows=10)
@pytest.mark.parametrize("mode", ["create", "append", "replace"])
@pytest.mark.parametrize("when", ["running", "paused"])
async def test_terminate_leaves_the_dataset_as_before(
    client: httpx.AsyncClient, settings: Settings, mode: str, when: str
) -> None:
    before = await _prepare(client, mode)
    job = await start_import(
        client, csv_bytes(["text", "id"], [[t, i] for i, t in NEW]), "target", mode=mode
    )
    running = await wait_progress(client, job["id"], 1)
    assert running["state"] in {"running", "pausing"}
    if when == "paused":
        assert (await client.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
    response = await client.post(f"/jobs/{job['id']}/terminate")
    assert response.status_code == 200
    assert response.json()["state"] == "terminated"
    if before is None:
        assert (await client.get("/datasets/target")).status_code == 404
    else:
        columns, rows = await dataset_rows(client, "target")
        assert columns == ["id", "text"]
        assert rows == before
    # Nothing of the job is left behind: no staging table, no upload file.
    assert list(settings.uploads_dir.iterdir()) == []
    published = {"ds_" + job_of(await client.get("/jobs"))} if before else set()
    assert await tables(settings) == published
    # Terminal is final.
    assert (await client.post(f"/jobs/{job['id']}/resume")).status_code == 409
    again = await client.post(f"/jobs/{job['id']}/terminate")
    assert again.status_code == 200 and again.json()["state"] == "terminated"


@pytest.mark.parametrize("mode", ["append", "replace"])
async def test_completed_modes_publish_in_source_order(
    client: httpx.AsyncClient, mode: str
) -> None:
    await _prepare(client, mode)
    extra = [["100", "x,y"], ["101", "z"]]
    job = await start_import(
        client, csv_bytes(["text", "id"], [[t, i] for i, t in extra]), "target", mode=mode
    )
    await wait_for(client, job["id"], {"completed"})
    columns, rows = await dataset_rows(client, "target")
    assert columns == ["id", "text"] if mode == "append" else ["text", "id"]
    if mode == "append":
        assert rows == BEFORE + extra
    else:
        assert rows == [[t, i] for i, t in extra]


async def test_create_refuses_an_existing_dataset(client: httpx.AsyncClient) -> None:
    await _prepare(client, "append")
    response = await upload(client, csv_bytes(["id", "text"], BEFORE), "target")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "mode=append" in response.json()["detail"]


async def test_append_needs_the_same_columns(client: httpx.AsyncClient) -> None:
    await _prepare(client, "append")
    response = await upload(
        client, csv_bytes(["id", "other"], [["1", "2"]]), "target", mode="append"
    )
    assert response.status_code == 422
    assert "text" in response.json()["detail"] and "other" in response.json()["detail"]


@pytest.mark.parametrize("content", [b"", b"\n\n\r\n  \n", b"\xef\xbb\xbf"])
async def test_empty_or_blank_file_is_refused(client: httpx.AsyncClient, content: bytes) -> None:
    response = await upload(client, content, "empty")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "empty" in response.json()["detail"]
    assert (await client.get("/jobs")).json()["items"] == []


async def test_header_only_file_completes_with_no_rows(client: httpx.AsyncClient) -> None:
    job = await start_import(client, b"a,b,c\r\n", "headers")
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_imported"] == 0
    dataset = (await client.get("/datasets/headers")).json()
    assert dataset["columns"] == ["a", "b", "c"] and dataset["row_count"] == 0
    assert (await client.get("/datasets/headers/rows")).json() == {
        "columns": ["a", "b", "c"],
        "rows": [],
        "next": None,
    }


async def test_a_ragged_row_fails_the_job_naming_the_line(client: httpx.AsyncClient) -> None:
    job = await start_import(client, b"a,b\r\n1,2\r\n3\r\n4,5\r\n", "ragged")
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["line"] == 3
    assert "1 fields" in failed["error"]["message"]
    assert (await client.get("/datasets/ragged")).status_code == 404


async def test_delete_dataset(client: httpx.AsyncClient) -> None:
    await _prepare(client, "append")
    assert (await client.delete("/datasets/target")).status_code == 204
    assert (await client.get("/datasets/target")).status_code == 404
    assert (await client.get("/datasets")).json() == {"items": [], "next": None}


async def test_skip_rejects_ragged_rows_and_lists_them(client: httpx.AsyncClient) -> None:
    content = b'a,b\r\n1,2\r\n3\r\n4,5\r\n6,7,"x,y"\r\n8,9\r\n'
    job = await start_import(client, content, "skipped", on_error="skip")
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_imported"] == 3
    assert done["result"]["rows_rejected"] == 2
    assert (await dataset_rows(client, "skipped"))[1] == [["1", "2"], ["4", "5"], ["8", "9"]]
    response = await client.get(f"/jobs/{job['id']}/errors")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = read_csv(response.content)
    assert rows[0] == ["line", "record", "column", "reason", "raw"]
    assert [r[:2] for r in rows[1:]] == [["3", "2"], ["5", "4"]]
    assert "1 fields" in rows[1][3] and rows[2][4] == '6,7,"x,y"'


async def test_skip_fails_past_max_errors(client: httpx.AsyncClient) -> None:
    content = b"a,b\r\n" + b"1\r\n" * 5 + b"2,3\r\n"
    job = await start_import(client, content, "many", on_error="skip", max_errors="3")
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["code"] == "too_many_errors"
    assert (await client.get("/datasets/many")).status_code == 404
