"""Jobs and control requests: states, idempotency, errors, run slots, listing."""

import asyncio
from pathlib import Path

import httpx
import pytest

from collect_api.samples import responses, write_responses_csv
from collect_api.settings import Settings
from tests.helpers import dataset_rows, start_import, wait_for, wait_progress

pytestmark = pytest.mark.backends


@pytest.fixture
def big_csv(tmp_path: Path) -> Path:
    path = tmp_path / "big.csv"
    write_responses_csv(path, 5_000, seed=3)
    return path


@pytest.mark.settings(chunk_rows=2)  # long enough to steer whatever the machine's speed
async def test_control_calls_are_idempotent(client: httpx.AsyncClient, big_csv: Path) -> None:
    job = await start_import(client, big_csv, "idem")
    await wait_progress(client, job["id"], 1)
    resumed = await client.post(f"/jobs/{job['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "running"
    first = await client.post(f"/jobs/{job['id']}/pause")
    assert first.status_code == 200 and first.json()["state"] == "paused"
    second = await client.post(f"/jobs/{job['id']}/pause")
    assert second.status_code == 200 and second.json() == first.json()
    assert (await client.post(f"/jobs/{job['id']}/resume")).status_code == 200
    assert (await client.post(f"/jobs/{job['id']}/resume")).status_code == 200
    # 2,500 chunks, each committed (fsynced, on PostgreSQL) on its own: a while on a busy host.
    await wait_for(client, job["id"], {"completed"}, timeout=180)


async def test_impossible_transitions_answer_409(client: httpx.AsyncClient) -> None:
    job = await start_import(client, b"a\r\n1\r\n", "small")
    await wait_for(client, job["id"], {"completed"})
    for action in ("pause", "resume", "terminate"):
        response = await client.post(f"/jobs/{job['id']}/{action}")
        assert response.status_code == 409, action
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 409 and "completed" in problem["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/{id}"),
        ("POST", "/jobs/{id}/pause"),
        ("POST", "/jobs/{id}/resume"),
        ("POST", "/jobs/{id}/terminate"),
        ("GET", "/jobs/{id}/history"),
        ("GET", "/jobs/{id}/events"),
        ("GET", "/datasets/nothing"),
        ("GET", "/datasets/nothing/rows"),
        ("DELETE", "/datasets/nothing"),
    ],
)
async def test_unknown_things_answer_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path.format(id="01jzzzzzzzzzzzzzzzzzzzzzzz"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]


@pytest.mark.settings(chunk_rows=2, max_running_jobs=1)
async def test_a_paused_job_holds_no_slot_and_no_lock(
    client: httpx.AsyncClient, big_csv: Path
) -> None:
    paused_job = await start_import(client, big_csv, "first")
    await wait_progress(client, paused_job["id"], 1)
    paused = (await client.post(f"/jobs/{paused_job['id']}/pause")).json()
    assert paused["state"] == "paused"
    # With one run slot, another import runs to completion while the first is paused:
    # the paused job holds neither the slot nor a database lock.
    other = await start_import(client, b"x,y\r\n1,2\r\n3,4\r\n", "second")
    await wait_for(client, other["id"], {"completed"}, timeout=30)
    assert (await dataset_rows(client, "second"))[1] == [["1", "2"], ["3", "4"]]
    still = (await client.get(f"/jobs/{paused_job['id']}")).json()
    assert still["state"] == "paused" and still["progress"] == paused["progress"]
    await client.post(f"/jobs/{paused_job['id']}/resume")
    await wait_for(client, paused_job["id"], {"completed"}, timeout=180)
    assert (await dataset_rows(client, "first"))[1] == list(responses(5_000, seed=3))


@pytest.mark.settings(chunk_rows=10, max_running_jobs=2)
async def test_a_job_beyond_the_run_slots_waits_queued(
    client: httpx.AsyncClient, tmp_path: Path, settings: Settings
) -> None:
    # The first two are long enough (chunks of 10) to be running still when looked at.
    sizes = {11: 8_000, 12: 8_000, 13: 3_000}
    files = []
    for seed, rows in sizes.items():
        path = tmp_path / f"in{seed}.csv"
        write_responses_csv(path, rows, seed=seed)
        files.append(path)
    jobs = [await start_import(client, path, f"set{i}") for i, path in enumerate(files)]
    await wait_progress(client, jobs[0]["id"], 1)
    await wait_progress(client, jobs[1]["id"], 1)
    states = [(await client.get(f"/jobs/{j['id']}")).json()["state"] for j in jobs]
    assert states[:2] == ["running", "running"]
    assert states[2] == "queued"
    # First in, first out: the third starts once one of the two ends.
    for job in jobs:
        await wait_for(client, job["id"], {"completed"})
    ended = [(await client.get(f"/jobs/{j['id']}")).json() for j in jobs]
    assert ended[2]["started_at"] >= min(j["finished_at"] for j in ended[:2])
    for i, (seed, rows) in enumerate(sizes.items()):
        assert (await dataset_rows(client, f"set{i}"))[1] == list(responses(rows, seed=seed))


@pytest.mark.settings(chunk_rows=10)
async def test_two_imports_at_once_both_complete_exactly(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    paths = []
    for seed in (21, 22):
        path = tmp_path / f"c{seed}.csv"
        write_responses_csv(path, 4_000, seed=seed, lineterminator="\n")
        paths.append(path)
    first, second = await asyncio.gather(
        start_import(client, paths[0], "one"), start_import(client, paths[1], "two")
    )
    await wait_progress(client, first["id"], 1)
    await wait_progress(client, second["id"], 1)
    running = (await client.get("/jobs", params={"state": "running"})).json()["items"]
    assert {j["id"] for j in running} == {first["id"], second["id"]}
    await wait_for(client, first["id"], {"completed"})
    await wait_for(client, second["id"], {"completed"})
    assert (await dataset_rows(client, "one"))[1] == list(responses(4_000, seed=21))
    assert (await dataset_rows(client, "two"))[1] == list(responses(4_000, seed=22))


async def test_jobs_list_newest_first_filtered_and_paginated(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        job = await start_import(client, f"a\r\n{i}\r\n".encode(), f"d{i}")
        ids.append(job["id"])
    for job_id in ids:
        await wait_for(client, job_id, {"completed"})
    seen = []
    after = None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = (await client.get("/jobs", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == list(reversed(ids))
    completed = (await client.get("/jobs", params={"state": "completed", "kind": "import"})).json()
    assert len(completed["items"]) == 5
    assert (await client.get("/jobs", params={"state": "paused"})).json()["items"] == []
    assert (await client.get("/jobs", params={"state": "bogus"})).status_code == 422
    assert (await client.get("/jobs", params={"limit": 1001})).status_code == 422


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.settings(chunk_rows=2)
async def test_get_with_wait_answers_when_the_job_ends(
    client: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(client, big_csv, "waited")
    await wait_progress(client, job["id"], 1)
    # Terminated by another request while this one waits: the wait ends with it, not at 60 s.
    waiting = asyncio.create_task(client.get(f"/jobs/{job['id']}", params={"wait": 60}))
    assert (await client.post(f"/jobs/{job['id']}/terminate")).json()["state"] == "terminated"
    answer = await asyncio.wait_for(waiting, 30)
    assert answer.status_code == 200 and answer.json()["state"] == "terminated"
    assert answer.json() == (await client.get(f"/jobs/{job['id']}")).json()

    done = await start_import(client, b"a\r\n1\r\n", "quick")
    answer = await client.get(f"/jobs/{done['id']}", params={"wait": 60})
    assert answer.status_code == 200 and answer.json()["state"] == "completed"
    assert answer.json()["result"]["rows_imported"] == 1


@pytest.mark.settings(chunk_rows=2)
async def test_get_with_wait_answers_with_the_job_as_it_is_when_the_time_is_up(
    client: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(client, big_csv, "paused")
    await wait_progress(client, job["id"], 1)
    paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
    assert paused["state"] == "paused"
    loop = asyncio.get_running_loop()
    began = loop.time()
    answer = await client.get(f"/jobs/{job['id']}", params={"wait": 0.5})
    assert loop.time() - began >= 0.45  # it waited, since the job could not end meanwhile
    assert answer.status_code == 200 and answer.json() == paused
    await client.post(f"/jobs/{job['id']}/terminate")


async def test_get_with_wait_refuses_more_than_60_seconds(client: httpx.AsyncClient) -> None:
    job = await start_import(client, b"a\r\n1\r\n", "bounds")
    for wait in ("61", "-1", "soon"):
        answer = await client.get(f"/jobs/{job['id']}", params={"wait": wait})
        assert answer.status_code == 422, wait
        assert answer.headers["content-type"] == "application/problem+json"
        assert "wait" in answer.json()["detail"]
    unknown = await client.get("/jobs/01jzzzzzzzzzzzzzzzzzzzzzzz", params={"wait": 5})
    assert unknown.status_code == 404


@pytest.mark.settings(chunk_rows=2)
async def test_a_job_that_does_not_work_shows_no_rate_and_no_time_left(
    client: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(client, big_csv, "rated")
    deadline = asyncio.get_running_loop().time() + 30
    while (running := (await client.get(f"/jobs/{job['id']}")).json())["progress"][
        "rate_per_s"
    ] is None:
        assert asyncio.get_running_loop().time() < deadline, "no rate while running"
        await asyncio.sleep(0.01)
    assert running["state"] in {"running", "pausing"}
    paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
    assert paused["state"] == "paused"
    assert paused["progress"]["done"] > 0
    assert (paused["progress"]["rate_per_s"], paused["progress"]["eta_s"]) == (None, None)
    again = (await client.get(f"/jobs/{job['id']}")).json()
    assert (again["progress"]["rate_per_s"], again["progress"]["eta_s"]) == (None, None)
    ended = (await client.post(f"/jobs/{job['id']}/terminate")).json()
    assert ended["state"] == "terminated"
    assert (ended["progress"]["rate_per_s"], ended["progress"]["eta_s"]) == (None, None)
