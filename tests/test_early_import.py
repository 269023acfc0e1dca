"""An import that starts while its upload still arrives: chunks are staged from the bytes
received so far, the job begins where they end, and an upload that does not become a job
leaves nothing behind.

Uploads are sent a slice at a time, from a generator, so that the test knows how much of the
file the service has when it looks at the database.
"""

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from collect_api.samples import responses, write_responses_csv
from tests.conftest import ServerProcess, app_client, make_settings
from tests.helpers import dataset_rows, query, table_names, wait_for

pytestmark = pytest.mark.backends

BOUNDARY = "collect-test-boundary"
SLICE = 256 * 1024


def multipart_head(dataset: str, **fields: str) -> bytes:
    """The form fields, then the file part's headers: the file's bytes come next."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in {"dataset": dataset, **fields}.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="responses.csv"\r\nContent-Type: text/csv\r\n\r\n'
    )
    return "".join(parts).encode()


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


async def stage_rows(database: str) -> int:
    """Rows in staging tables now, over every job."""
    tables = [t for t in await table_names(database) if t.startswith("stage_")]
    return sum([(await query(database, f'SELECT count(*) FROM "{t}"'))[0][0] for t in tables])


async def until_staged(database: str, timeout: float = 30) -> int:  # noqa: ASYNC109
    """Wait until rows are staged while the upload is still being sent; how many."""
    deadline = time.monotonic() + timeout
    while (staged := await stage_rows(database)) == 0:
        assert time.monotonic() < deadline, "nothing staged while the upload arrived"
        await asyncio.sleep(0.02)
    return staged


async def leftovers(tmp_path: Path, database: str) -> tuple[list[str], int, list[str]]:
    """Staging tables, jobs and upload files there are."""
    tables = sorted(t for t in await table_names(database) if t.startswith("stage_"))
    [(jobs,)] = await query(database, "SELECT count(*) FROM job")
    uploads = tmp_path / "data" / "uploads"
    return tables, jobs, sorted(os.listdir(uploads)) if uploads.exists() else []


async def test_an_import_starts_while_its_upload_arrives(tmp_path: Path, database: str) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 60_000, seed=31)  # about 6 MB
    data = source.read_bytes()
    seen_while_arriving: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield multipart_head("early")
        for start in range(0, len(data), SLICE):
            yield data[start : start + SLICE]
            await asyncio.sleep(0.03)
            if start > len(data) // 2 and not seen_while_arriving:
                # Half the file is there: its whole records are being staged already.
                seen_while_arriving.append(await until_staged(database))
        yield TAIL

    async with app_client(
        make_settings(tmp_path, database_url=database, chunk_rows=2_000)
    ) as client:
        response = await client.post(
            "/imports", content=body(), headers={"content-type": CONTENT_TYPE}
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert seen_while_arriving and seen_while_arriving[0] > 0
        # The job begins where the chunks staged during the upload end.
        assert 0 < job["progress"]["done"] <= 60_000
        assert job["state"] == "queued"
        done = await wait_for(client, job["id"], {"completed"})
        assert done["result"]["rows_imported"] == 60_000
        assert (await dataset_rows(client, "early"))[1] == list(responses(60_000, seed=31))
        history = (await client.get(f"/jobs/{job['id']}/history")).json()["items"]
        assert [h["to_state"] for h in history] == ["queued", "running", "completed"]


async def test_a_bad_record_found_while_the_upload_arrives_fails_the_job_at_its_line(
    tmp_path: Path,
    database: str,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 40_000, seed=32)
    lines = source.read_bytes().split(b"\r\n")
    lines[30_001] = lines[30_001] + b",extra"  # record 30,001 has a field too many
    data = b"\r\n".join(lines)
    line = data[: data.index(b",extra")].count(b"\n") + 1

    async def body() -> AsyncIterator[bytes]:
        yield multipart_head("bad")
        for start in range(0, len(data), SLICE):
            yield data[start : start + SLICE]
            await asyncio.sleep(0.01)
        yield TAIL

    async with app_client(
        make_settings(tmp_path, database_url=database, chunk_rows=2_000)
    ) as client:
        response = await client.post(
            "/imports", content=body(), headers={"content-type": CONTENT_TYPE}
        )
        assert response.status_code == 202, response.text
        failed = await wait_for(client, response.json()["id"], {"failed"})
        assert failed["error"]["line"] == line
        assert (await client.get("/datasets/bad")).status_code == 404
    assert (await leftovers(tmp_path, database))[0] == []


async def test_an_upload_refused_at_its_end_leaves_nothing_staged(
    tmp_path: Path, database: str
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 40_000, seed=33)
    data = source.read_bytes()

    async def body() -> AsyncIterator[bytes]:
        yield multipart_head("taken")
        for start in range(0, len(data), SLICE):
            yield data[start : start + SLICE]
            await asyncio.sleep(0.02)
        await until_staged(database)
        yield TAIL

    settings = make_settings(tmp_path, database_url=database, chunk_rows=2_000)
    async with app_client(settings) as client:
        first = await client.post(
            "/imports",
            files={"file": ("a.csv", b"x,y\r\n1,2\r\n", "text/csv")},
            data={"dataset": "taken"},
        )
        await wait_for(client, first.json()["id"], {"completed"})
        # The dataset exists already: the submission refuses this one once it is whole.
        response = await client.post(
            "/imports", content=body(), headers={"content-type": CONTENT_TYPE}
        )
        assert response.status_code == 409, response.text
    tables, jobs, uploads = await leftovers(tmp_path, database)
    assert (tables, jobs, uploads) == ([], 1, [])


async def test_an_upload_past_the_limit_leaves_nothing_staged(
    tmp_path: Path, database: str
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 60_000, seed=34)
    data = source.read_bytes()

    async def body() -> AsyncIterator[bytes]:  # sent without a length: cut off at the limit
        yield multipart_head("too_big")
        for start in range(0, len(data), SLICE):
            if start == 8 * SLICE:
                await until_staged(database)
            yield data[start : start + SLICE]
            await asyncio.sleep(0.01)
        yield TAIL

    settings = make_settings(
        tmp_path, database_url=database, chunk_rows=2_000, max_upload_bytes=4 * 1024**2
    )
    async with app_client(settings) as client:
        response = await client.post(
            "/imports", content=body(), headers={"content-type": CONTENT_TYPE}
        )
        assert response.status_code == 413, response.text
    assert await leftovers(tmp_path, database) == ([], 0, [])


async def test_a_file_sent_before_the_form_fields_is_imported_once_whole(
    tmp_path: Path,
    database: str,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 20_000, seed=35)
    data = source.read_bytes()
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="r.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body += data + f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="dataset"'.encode()
    body += f"\r\n\r\nlate_fields\r\n--{BOUNDARY}--\r\n".encode()
    async with app_client(
        make_settings(tmp_path, database_url=database, chunk_rows=2_000)
    ) as client:
        response = await client.post(
            "/imports", content=body, headers={"content-type": CONTENT_TYPE}
        )
        assert response.status_code == 202, response.text
        assert response.json()["progress"]["done"] == 0
        await wait_for(client, response.json()["id"], {"completed"})
        assert (await dataset_rows(client, "late_fields"))[1] == list(responses(20_000, seed=35))


def test_a_client_that_hangs_up_mid_upload_leaves_nothing_staged(
    tmp_path: Path, database: str
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 60_000, seed=36)
    data = source.read_bytes()
    server = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="2000").start()
    try:
        head = multipart_head("hung_up")
        length = len(head) + len(data) + len(TAIL)
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(
                f"POST /imports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {CONTENT_TYPE}\r\n"
                f"Content-Length: {length}\r\n\r\n".encode()
                + head
            )
            sent = 0
            deadline = time.monotonic() + 30
            while asyncio.run(stage_rows(database)) == 0:  # the service stages what it has
                assert time.monotonic() < deadline, "nothing staged while the upload arrived"
                if sent < len(data) // 2:
                    conn.sendall(data[sent : sent + SLICE])
                    sent += SLICE
                time.sleep(0.02)
        # Hung up: the request ends, and what was staged for it goes.
        deadline = time.monotonic() + 30
        while (left := asyncio.run(leftovers(tmp_path, database))) != ([], 0, []):
            assert time.monotonic() < deadline, f"left behind: {left}"
            time.sleep(0.05)
        assert httpx.get(f"{server.url}/jobs").json()["items"] == []
    finally:
        server.stop()
