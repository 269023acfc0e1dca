"""A paused job parks on its gate: a resume in the same process goes on in the same task,
with no trip through the queue; a resume elsewhere, a terminate, or a stop ends the parked
task without writing, and the job goes on from its checkpoint as after any stop."""

import asyncio
import random
import time
from pathlib import Path

import httpx
import pytest

from collect_api.samples import responses, write_responses_csv
from tests.conftest import ServerProcess, app_services, make_settings
from tests.helpers import dataset_rows, start_import, wait_for, wait_progress

pytestmark = pytest.mark.backends


async def states(client: httpx.AsyncClient, job_id: str) -> list[str]:
    history = (await client.get(f"/jobs/{job_id}/history")).json()["items"]
    return [h["to_state"] for h in history]


async def test_a_resume_in_the_same_process_goes_on_in_the_same_task(
    tmp_path: Path, database: str
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 30_000, seed=51)
    settings = make_settings(tmp_path, database_url=database, chunk_rows=50)
    async with app_services(settings) as (client, services):
        job = await start_import(client, source, "gated")
        await wait_progress(client, job["id"], 500)
        task = services.supervisor._running[job["id"]]
        paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
        assert paused["state"] == "paused"
        # The run answers with the job as it recorded the pause: the row says the same.
        assert (await client.get(f"/jobs/{job['id']}")).json() == paused
        await asyncio.sleep(0.1)
        assert services.supervisor.parks(job["id"]) and not task.done()
        assert services.supervisor.running == 0  # a parked job takes no run slot
        resumed = (await client.post(f"/jobs/{job['id']}/resume")).json()
        assert resumed["state"] == "running"
        assert services.supervisor._running[job["id"]] is task
        done = await wait_for(client, job["id"], {"completed"})
        assert done["result"]["rows_imported"] == 30_000
        assert (await dataset_rows(client, "gated"))[1] == list(responses(30_000, seed=51))
        assert await states(client, job["id"]) == [
            "queued",
            "running",
            "pausing",
            "paused",
            "running",
            "completed",
        ]
        await asyncio.sleep(0)
        assert task.done() and job["id"] not in services.supervisor._running


async def test_many_random_pauses_in_one_process_import_every_record_once(
    tmp_path: Path,
    database: str,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 20_000, seed=52)
    rng = random.Random(52)
    settings = make_settings(tmp_path, database_url=database, chunk_rows=100)
    async with app_services(settings) as (client, services):
        job = await start_import(client, source, "paused_often")
        task = None
        for _ in range(15):
            await asyncio.sleep(rng.random() * 0.05)
            paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
            if paused["state"] == "completed":
                break
            assert paused["state"] == "paused"
            task = task or services.supervisor._running[job["id"]]
            assert services.supervisor._running[job["id"]] is task
            assert (await client.post(f"/jobs/{job['id']}/resume")).json()["state"] == "running"
        done = await wait_for(client, job["id"], {"completed"})
        assert done["result"]["rows_imported"] == 20_000
        assert (await dataset_rows(client, "paused_often"))[1] == list(responses(20_000, seed=52))
        assert "queued" not in (await states(client, job["id"]))[1:]


async def test_with_no_run_slot_free_a_resumed_job_waits_queued_then_its_gate_opens(
    tmp_path: Path,
    database: str,
) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_responses_csv(first, 10_000, seed=53)
    write_responses_csv(second, 30_000, seed=54)  # chunks of 20: runs while the first waits
    settings = make_settings(tmp_path, database_url=database, chunk_rows=20, max_running_jobs=1)
    async with app_services(settings) as (client, services):
        parked = await start_import(client, first, "parked")
        await wait_progress(client, parked["id"], 200)
        task = services.supervisor._running[parked["id"]]
        assert (await client.post(f"/jobs/{parked['id']}/pause")).json()["state"] == "paused"
        other = await start_import(client, second, "other")
        await wait_progress(client, other["id"], 100)
        # The one slot is taken: the resume queues it, and its task stays parked.
        assert (await client.post(f"/jobs/{parked['id']}/resume")).json()["state"] == "queued"
        assert services.supervisor.parks(parked["id"])
        await wait_for(client, other["id"], {"completed"})
        await wait_for(client, parked["id"], {"completed"})
        assert services.supervisor._running.get(parked["id"]) in (task, None)
        # The job is completed once its last commit is seen; the task that ran it then
        # gives its worker back and ends, a moment later on a loaded machine.
        await asyncio.wait_for(asyncio.shield(task), timeout=30)
        assert task.exception() is None
        assert (await dataset_rows(client, "parked"))[1] == list(responses(10_000, seed=53))
        assert (await states(client, parked["id"]))[-4:] == [
            "paused",
            "queued",
            "running",
            "completed",
        ]


async def test_a_terminated_parked_job_ends_its_task(tmp_path: Path, database: str) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 10_000, seed=55)
    settings = make_settings(tmp_path, database_url=database, chunk_rows=50)
    async with app_services(settings) as (client, services):
        job = await start_import(client, source, "ended")
        await wait_progress(client, job["id"], 200)
        task = services.supervisor._running[job["id"]]
        assert (await client.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
        assert (await client.post(f"/jobs/{job['id']}/terminate")).json()["state"] == "terminated"
        await asyncio.wait_for(asyncio.shield(task), 5)
        assert not services.supervisor.parks(job["id"])
        assert (await client.get("/datasets/ended")).status_code == 404


def test_a_job_parked_in_one_server_and_resumed_through_another_goes_on_there(
    tmp_path: Path,
    database: str,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 40_000, seed=56)
    one = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="50").start()
    two = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="50").start()
    try:
        with (
            httpx.Client(base_url=one.url, timeout=30) as a,
            httpx.Client(base_url=two.url, timeout=30) as b,
        ):
            job = a.post(
                "/imports",
                data={"dataset": "moved"},
                files={"file": ("in.csv", source.read_bytes(), "text/csv")},
            ).json()
            while a.get(f"/jobs/{job['id']}").json()["progress"]["done"] < 500:
                pass
            paused = a.post(f"/jobs/{job['id']}/pause").json()
            assert paused["state"] == "paused"
            owner_before = a.get(f"/jobs/{job['id']}").json()
            assert owner_before["state"] == "paused"
            # Server two's resume queues it; either server may claim it, and goes on from
            # the checkpoint; a parked task in server one that loses the claim ends.
            resumed = b.post(f"/jobs/{job['id']}/resume")
            assert resumed.json().get("state") in {"queued", "running"}, resumed.text
            deadline = time.monotonic() + 120  # 800 chunks, each committed on its own
            while (done := b.get(f"/jobs/{job['id']}").json())["state"] != "completed":
                assert done["state"] in {"queued", "running"}, done
                assert time.monotonic() < deadline, "the job did not complete"
                time.sleep(0.01)
            assert done["result"]["rows_imported"] == 40_000
            rows, after = [], None
            while True:
                page = b.get(
                    "/datasets/moved/rows", params={"limit": 1000, "after": after} if after else {}
                )
                body = page.json()
                rows += body["rows"]
                after = body["next"]
                if after is None:
                    break
            assert rows == list(responses(40_000, seed=56))
    finally:
        one.stop()
        two.stop()
    assert "Traceback" not in one.log.read_text() + two.log.read_text()
