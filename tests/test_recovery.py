"""Crashes, restarts and several processes, with real server processes on one database."""

import asyncio
import json
import random
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from collect_api.samples import TEAMS_HEADER, responses, team_rows, write_responses_csv
from tests.conftest import ServerProcess
from tests.helpers import (
    csv_bytes,
    dataset_rows,
    query,
    start_import,
    table_names,
    wait_for,
    wait_progress,
)
from tests.test_teams import all_teams, as_expected, expected_teams, start_teams

pytestmark = pytest.mark.backends

ROWS = 20_000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "responses.csv"
    write_responses_csv(path, ROWS, seed=31)
    return path


def document(value: Any) -> Any:
    """A JSON column's value as read: text on SQLite, decoded already on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def client_for(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=60)


@pytest.mark.parametrize("kind", ["import", "export", "teams"])
async def test_kill_9_mid_job_then_restart_completes_exactly(
    tmp_path: Path, database: str, source: Path, kind: str
) -> None:
    rng = random.Random(kind)
    server = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="20").start()
    expected_export = b""
    try:
        async with client_for(server) as client:
            if kind == "export":
                loaded = await start_import(client, source, "responses")
                await wait_for(client, loaded["id"], {"completed"})
                clean = (await client.post("/exports", json={"dataset": "responses"})).json()
                await wait_for(client, clean["id"], {"completed"})
                expected_export = (await client.get(f"/jobs/{clean['id']}/result")).content
                job = (await client.post("/exports", json={"dataset": "responses"})).json()
            elif kind == "import":
                job = await start_import(client, source, "responses")
            else:
                rows = [list(r) for r in team_rows(3_000, seed=5)]
                job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows))
            await wait_progress(client, job["id"], rng.randrange(100, 1_000))
    finally:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    # What the crash left is consistent with the checkpoint.
    [(state, checkpoint)] = await query(
        database, "SELECT state, checkpoint FROM job WHERE id = :id", id=job["id"]
    )
    assert state == "running"
    checkpoint = document(checkpoint)
    if kind == "import":
        [(staged,)] = await query(database, f'SELECT count(*) FROM "stage_{job["id"]}"')
        assert staged == checkpoint["rows"]
    elif kind == "export":
        assert (tmp_path / "data" / "exports" / f"{job['id']}.csv").stat().st_size >= checkpoint[
            "bytes"
        ]

    server = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="20").start()
    try:
        async with client_for(server) as client:
            done = await wait_for(client, job["id"], {"completed"}, timeout=120)
            history = (await client.get(f"/jobs/{job['id']}/history")).json()["items"]
            assert any("process stopped" in (h["reason"] or "") for h in history)
            if kind == "import":
                assert done["result"]["rows_imported"] == ROWS
                assert (await dataset_rows(client, "responses"))[1] == list(
                    responses(ROWS, seed=31)
                )
            elif kind == "export":
                result = await client.get(f"/jobs/{job['id']}/result")
                assert result.content == expected_export
            else:
                assert as_expected(await all_teams(client)) == expected_teams(rows)
    finally:
        server.stop()


async def test_graceful_stop_resumes_running_jobs_and_keeps_paused_ones(
    tmp_path: Path, database: str, source: Path
) -> None:
    server = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="20").start()
    try:
        async with client_for(server) as client:
            running = await start_import(client, source, "running")
            paused = await start_import(client, source, "paused")
            await wait_progress(client, running["id"], 200)
            await wait_progress(client, paused["id"], 1)
            assert (await client.post(f"/jobs/{paused['id']}/pause")).json()["state"] == "paused"
    finally:
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()
    states = dict(await query(database, "SELECT id, state FROM job"))
    assert states == {running["id"]: "queued", paused["id"]: "paused"}

    server = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="20").start()
    try:
        async with client_for(server) as client:
            await wait_for(client, running["id"], {"completed"}, timeout=120)
            assert (await dataset_rows(client, "running"))[1] == list(responses(ROWS, seed=31))
            assert (await client.get(f"/jobs/{paused['id']}")).json()["state"] == "paused"
            history = (await client.get(f"/jobs/{running['id']}/history")).json()["items"]
            assert [h["actor"] for h in history if h["to_state"] == "queued"][1:] == ["system"]
    finally:
        server.stop()


async def _owner(database: str, job_id: str) -> str | None:
    [(owner,)] = await query(database, "SELECT owner FROM job WHERE id = :id", id=job_id)
    return owner


async def test_two_servers_steer_each_others_jobs_and_take_over_a_dead_ones(
    tmp_path: Path, database: str, source: Path
) -> None:
    common = {"COLLECT_CHUNK_ROWS": "20", "COLLECT_LEASE_S": "2"}
    a = ServerProcess(tmp_path, database_url=database, COLLECT_NODE_NAME="host-a", **common).start()
    b = ServerProcess(tmp_path, database_url=database, COLLECT_NODE_NAME="host-b", **common)
    try:
        async with client_for(a) as via_a:
            job = await start_import(via_a, source, "steered")
            await wait_progress(via_a, job["id"], 1)
            assert (await _owner(database, job["id"]) or "").startswith("host-a/")
            b.start()
            async with client_for(b) as via_b:
                # B follows the job that A runs, and steers it.
                events: list[dict[str, Any]] = []
                streaming_progress = asyncio.Event()

                async def follow() -> None:
                    async with aconnect_sse(via_b, "GET", f"/jobs/{job['id']}/events") as sse:
                        async for event in sse.aiter_sse():
                            events.append({"event": event.event, **event.json()})
                            if len(progress_seen()) >= 3:
                                streaming_progress.set()

                def progress_seen() -> list[int]:
                    return [e["progress"]["done"] for e in events if e["event"] == "progress"]

                follower = asyncio.create_task(follow())
                try:
                    # B streams the progress of the job A runs.
                    async with asyncio.timeout(30):
                        await streaming_progress.wait()
                    assert (await _owner(database, job["id"]) or "").startswith("host-a/")
                    paused = await via_b.post(f"/jobs/{job['id']}/pause")
                    assert paused.json()["state"] == "paused"
                    resumed = await via_b.post(f"/jobs/{job['id']}/resume")
                    assert resumed.json()["state"] in {"queued", "running"}
                    await wait_progress(via_b, job["id"], paused.json()["progress"]["done"] + 100)
                    ended = await via_b.post(f"/jobs/{job['id']}/terminate")
                    assert ended.json()["state"] == "terminated"
                    async with asyncio.timeout(30):
                        await follower  # the stream closes after the terminal state
                finally:
                    follower.cancel()
                states = [e["state"] for e in events if e["event"] == "state"]
                assert states[-1] == "terminated" and "paused" in states
                done = progress_seen()
                assert len(done) >= 3 and done == sorted(done)
                assert (await via_b.get("/datasets/steered")).status_code == 404
        # Again, and A dies in the middle: B takes the job over once A's lease expires.
        b.stop()
        async with client_for(a) as via_a:
            job = await start_import(via_a, source, "taken_over")
            await wait_progress(via_a, job["id"], 500)
        b.start()
        a.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        async with client_for(b) as via_b:
            await wait_for(via_b, job["id"], {"completed"}, timeout=120)
            history = (await via_b.get(f"/jobs/{job['id']}/history")).json()["items"]
            takeover = next(h for h in history if "process stopped" in (h["reason"] or ""))
            assert takeover["to_state"] == "queued"
            assert time.monotonic() - killed_at >= 1.0  # not before the lease ran out
            assert (await _owner(database, job["id"])) is None
            assert (await dataset_rows(via_b, "taken_over"))[1] == list(responses(ROWS, seed=31))
    finally:
        a.stop()
        if b.proc is not None:
            b.stop()


async def test_fifty_control_requests_across_two_workers_all_take_effect(
    tmp_path: Path, database: str, source: Path
) -> None:
    server = ServerProcess(
        tmp_path,
        database_url=database,
        workers=2,
        COLLECT_CHUNK_ROWS="10",
        COLLECT_MAX_RUNNING_JOBS="8",
    ).start()
    rng = random.Random(50)
    try:
        async with client_for(server) as client:
            jobs = [(await start_import(client, source, f"w{i}"))["id"] for i in range(6)]
            for job_id in jobs:
                await wait_progress(client, job_id, 1)
            effect = {
                "pause": {"paused", "completed"},
                "resume": {"queued", "running", "completed"},
                "terminate": {"terminated"},
            }
            for _ in range(50):
                job_id = rng.choice(jobs)
                state = (await client.get(f"/jobs/{job_id}")).json()["state"]
                if state in {"running", "queued"}:
                    action = rng.choice(["pause"] * 4 + ["terminate"])
                else:
                    action = "resume"
                response = await client.post(f"/jobs/{job_id}/{action}")
                after = (await client.get(f"/jobs/{job_id}")).json()["state"]
                if state in {"completed", "terminated"}:  # final: refused, nothing changes
                    assert response.status_code == 409
                    assert after == state
                else:
                    assert response.status_code == 200, response.text
                    assert response.json()["state"] in effect[action]
                    # Whichever worker answers next sees the same state.
                    assert after in effect[action] | ({"running"} if action == "resume" else set())
            for job_id in jobs:
                if (await client.get(f"/jobs/{job_id}")).json()["state"] == "paused":
                    await client.post(f"/jobs/{job_id}/resume")
            for job_id in jobs:
                ended = await wait_for(client, job_id, {"completed", "terminated"}, timeout=180)
                name = ended["params"]["dataset"]
                if ended["state"] == "completed":
                    assert (await dataset_rows(client, name))[1] == list(responses(ROWS, seed=31))
                else:
                    assert (await client.get(f"/datasets/{name}")).status_code == 404
    finally:
        server.stop()


async def test_a_job_that_keeps_killing_its_process_fails_after_max_attempts(
    tmp_path: Path, database: str, source: Path
) -> None:
    env = {"COLLECT_CHUNK_ROWS": "20", "COLLECT_MAX_ATTEMPTS": "3"}
    job_id = None
    done = 0
    for attempt in range(1, 4):
        restarted = datetime.now(UTC)
        server = ServerProcess(tmp_path, database_url=database, **env).start()
        try:
            async with client_for(server) as client:
                if job_id is None:
                    job_id = (await start_import(client, source, "doomed"))["id"]
                else:
                    # From its first answer, a restarted server does not show the job its
                    # dead process ran as running: it was taken back before serving.
                    first = (await client.get(f"/jobs/{job_id}")).json()
                    changed = datetime.fromisoformat(first["updated_at"])
                    assert first["state"] in {"queued", "running"}
                    assert changed > restarted, f"attempt {attempt}: {first['state']} as before"
                # Claimed again by this server (a restart finds it queued first), and at work.
                await wait_for(client, job_id, {"running"})
                job = await wait_progress(client, job_id, done + 1)
                assert job["state"] == "running", f"attempt {attempt}"
                done = job["progress"]["done"]
        finally:
            server.stop(signal.SIGKILL)
    server = ServerProcess(tmp_path, database_url=database, **env).start()
    try:
        async with client_for(server) as client:
            assert job_id is not None
            failed = await wait_for(client, job_id, {"failed"}, timeout=30)
            assert failed["error"]["code"] == "too_many_attempts"
            assert "3 times" in failed["error"]["message"]
            assert (await client.get("/datasets/doomed")).status_code == 404
            assert not list((tmp_path / "data" / "uploads").iterdir())
            assert not {t for t in await table_names(database) if t.startswith("stage_")}
    finally:
        server.stop()
