"""The supervisor's lifecycle: a clean shutdown interrupts jobs safely, a start resumes them."""

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from collect_api.samples import responses, write_responses_csv
from tests.conftest import app_client, make_settings
from tests.helpers import dataset_rows, start_import, wait_for, wait_progress


def job_row(db: Path, job_id: str) -> tuple[str, str | None, str | None]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT state, owner, json_extract(checkpoint, '$.records') FROM job WHERE id = ?",
            (job_id,),
        ).fetchone()
    return row


async def test_shutdown_interrupts_running_jobs_and_the_next_start_resumes_them(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 8_000, seed=5)
    settings = make_settings(tmp_path, chunk_rows=10)
    async with app_client(settings) as client:
        running = await start_import(client, source, "resumed")
        paused = await start_import(client, b"a\r\n" + b"1\r\n" * 5000, "stays_paused")
        await wait_progress(client, running["id"], 100)
        await wait_progress(client, paused["id"], 1)
        assert (await client.post(f"/jobs/{paused['id']}/pause")).json()["state"] == "paused"
    # The lifespan has ended: the running job stopped at a safe point, was recorded as
    # interrupted by the system (queued, no owner), and kept its checkpoint.
    db = tmp_path / "collect.db"
    state, owner, records = job_row(db, running["id"])
    assert (state, owner) == ("queued", None)
    assert records is not None and 100 <= int(records) < 8_000
    assert job_row(db, paused["id"])[0] == "paused"

    async with app_client(settings) as client:
        done = await wait_for(client, running["id"], {"completed"})
        assert done["result"]["rows_imported"] == 8_000
        assert (await dataset_rows(client, "resumed"))[1] == list(responses(8_000, seed=5))
        history = (await client.get(f"/jobs/{running['id']}/history")).json()["items"]
        interrupted = [h for h in history if h["to_state"] == "queued" and h["actor"] == "system"]
        assert interrupted and "interrupted" in interrupted[0]["reason"]
        # A user's pause survives the restart.
        assert (await client.get(f"/jobs/{paused['id']}")).json()["state"] == "paused"
        await client.post(f"/jobs/{paused['id']}/resume")
        await wait_for(client, paused["id"], {"completed"})
        assert len((await dataset_rows(client, "stays_paused"))[1]) == 5000


@pytest.mark.settings(chunk_rows=10)
async def test_terminate_cancels_the_job_at_its_next_await(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 20_000, seed=9)
    job = await start_import(client, source, "cancelled")
    await wait_progress(client, job["id"], 50)
    ended = (await client.post(f"/jobs/{job['id']}/terminate")).json()
    assert ended["state"] == "terminated"
    # It stopped within a chunk or two of the request, not at the end of the file.
    assert ended["progress"]["done"] < 20_000
    history = (await client.get(f"/jobs/{job['id']}/history")).json()["items"]
    assert [h["to_state"] for h in history][-2:] == ["terminating", "terminated"]
    assert (await client.get("/datasets/cancelled")).status_code == 404


async def test_the_wal_is_checkpointed_once_no_job_runs_and_not_by_a_chunk(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 60_000, seed=11)  # about 6 MB: past the 4 MiB threshold
    db = tmp_path / "collect.db"
    settings = make_settings(tmp_path, chunk_rows=1_000)
    async with app_client(settings) as client:
        job = await start_import(client, source, "checkpointed")
        # Two thirds in, its chunks have written about 5.5 MB to the WAL: well past the
        # threshold whenever the pause lands (half-way, they had written just about 4 MiB).
        await wait_progress(client, job["id"], 40_000)
        # While it runs, its chunks' commits leave their pages in the WAL: none copies them.
        assert db.stat().st_size < 1024**2
        paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
        assert paused["state"] == "paused"
        # The chunks' commits left their pages in the WAL; a paused job does not run, so the
        # supervisor copies them into the database file within a few of its passes.
        grown = (tmp_path / "collect.db-wal").stat().st_size
        assert grown > 4 * 1024**2
        for _ in range(100):
            if db.stat().st_size > grown // 2:
                break
            await asyncio.sleep(0.1)
        assert db.stat().st_size > grown // 2
        await client.post(f"/jobs/{job['id']}/resume")
        done = await wait_for(client, job["id"], {"completed"})
        assert done["result"]["rows_imported"] == 60_000
        assert (await dataset_rows(client, "checkpointed"))[1] == list(responses(60_000, seed=11))
