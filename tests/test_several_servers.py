"""Several servers on one PostgreSQL database, on hosts that share no disk: each server has
its own data dir and node name, and every server polls only once a minute, so what reaches
the others on time is carried by PostgreSQL's notifications."""

import asyncio
import contextlib
import random
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from httpx_sse import aconnect_sse

from collect_api.samples import responses, write_responses_csv
from tests.conftest import ROOT, ServerProcess
from tests.helpers import (
    dataset_rows,
    query,
    read_csv,
    start_import,
    table_names,
    wait_for,
    wait_progress,
)

ROWS = 20_000
# Far longer than any wait below: a change that reached the other server on time was
# notified, not polled. A control request answers within COLLECT_CONTROL_WAIT_S.
COMMON = {
    "COLLECT_POLL_INTERVAL_S": "60",
    "COLLECT_CONTROL_WAIT_S": "20",
    "COLLECT_CHUNK_ROWS": "20",
    "COLLECT_LEASE_S": "2",
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "responses.csv"
    write_responses_csv(path, ROWS, seed=41)
    return path


@pytest.fixture
def servers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Servers ``host-a`` and ``host-b`` (not started), each with a data dir of its own."""
    made = []
    for host in ("a", "b"):
        (tmp_path / host).mkdir()
        made.append(
            ServerProcess(
                tmp_path / host,
                database_url=postgres_url,
                COLLECT_NODE_NAME=f"host-{host}",
                **COMMON,
            )
        )
    a, b = made
    try:
        yield a, b
    finally:
        for server in made:
            if server.proc is not None:
                server.stop(signal.SIGKILL)


def client_for(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=60)


async def runner_of(database: str, job_id: str) -> str | None:
    """The node name of the server that runs the job now, if one does."""
    [(owner,)] = await query(database, "SELECT owner FROM job WHERE id = :id", id=job_id)
    return owner.partition("/")[0] if owner else None


async def not_running(
    database: str, job_id: str, via_a: httpx.AsyncClient, via_b: httpx.AsyncClient
) -> httpx.AsyncClient:
    """The client of the server that does not run the job now (A's if none does)."""
    return via_b if await runner_of(database, job_id) == "host-a" else via_a


def uploads(server: ServerProcess) -> list[str]:
    return sorted(p.name for p in (server.tmp_path / "data" / "uploads").glob("*"))


class Feed(list[dict[str, Any]]):
    """The events of a stream, as they arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def until(self, done: Callable[["Feed"], bool]) -> None:
        async with asyncio.timeout(30):
            while not done(self):
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def following(client: httpx.AsyncClient, job_id: str) -> AsyncIterator[Feed]:
    """The events of a job's stream through ``client``'s server, gathered while inside."""
    events = Feed()
    opened = asyncio.Event()

    async def follow() -> None:
        # Until the server stops (its stream ends) or dies (the connection breaks).
        with contextlib.suppress(httpx.TransportError):
            async with aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as sse:
                opened.set()
                async for event in sse.aiter_sse():
                    if event.event in ("state", "progress"):
                        events.append({"event": event.event, **event.json()})
                        events.arrived.set()

    task = asyncio.create_task(follow())
    try:
        async with asyncio.timeout(30):
            await opened.wait()
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def progress(events: list[dict[str, Any]]) -> list[int]:
    return [e["progress"]["done"] for e in events if e["event"] == "progress"]


def states(events: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in events if e["event"] == "state"]


async def test_an_upload_to_one_server_is_run_steered_streamed_and_taken_over_by_the_other(
    servers: tuple[ServerProcess, ServerProcess], postgres_url: str, source: Path
) -> None:
    a, b = servers
    a.start()
    async with client_for(a) as via_a, client_for(b) as via_b:
        job = await start_import(via_a, source, "shared")
        job_id = job["id"]
        await wait_progress(via_a, job_id, 1)
        assert await runner_of(postgres_url, job_id) == "host-a"
        b.start()
        assert uploads(b) == []  # B has never seen the file
        async with following(via_a, job_id) as on_a, following(via_b, job_id) as on_b:
            # B, which commits nothing meanwhile, streams the progress of the job A runs.
            await on_b.until(lambda feed: len(progress(feed)) >= 3)
            # Pause through B, which does not run the job: NOTIFY carries it to A.
            paused = await via_b.post(f"/jobs/{job_id}/pause")
            assert paused.status_code == 200, paused.text
            assert paused.json()["state"] == "paused"
            done = paused.json()["progress"]["done"]
            assert 0 < done < ROWS
            # A stops; B resumes the job from its checkpoint, with the upload it fetches.
            assert a.stop() in (0, -signal.SIGTERM)
            resumed = await via_b.post(f"/jobs/{job_id}/resume")
            assert resumed.json()["state"] in {"queued", "running"}
            await wait_progress(via_b, job_id, done + 100)
            assert await runner_of(postgres_url, job_id) == "host-b"
            assert uploads(b) == [f"{job_id}.csv"]
            # A comes back; B dies mid-job, and A takes the job over once B's lease runs out.
            a.start()
            await wait_progress(via_a, job_id, done + 300)
            assert b.stop(signal.SIGKILL) == -signal.SIGKILL
            ended = await wait_for(via_a, job_id, {"completed"}, timeout=120)
            assert ended["result"]["rows_imported"] == ROWS
            await asyncio.sleep(0.2)
        # Each stream saw the job pause and stop running on its own server's side.
        assert "paused" in states(on_b) and "paused" in states(on_a)
        history = (await via_a.get(f"/jobs/{job_id}/history")).json()["items"]
        assert any("process stopped" in (h["reason"] or "") for h in history)
        assert (await dataset_rows(via_a, "shared"))[1] == list(responses(ROWS, seed=41))
        assert not {t for t in await table_names(postgres_url) if t.startswith("stage_")}


async def test_terminate_and_resume_through_the_server_that_does_not_run_the_job(
    servers: tuple[ServerProcess, ServerProcess], postgres_url: str, source: Path
) -> None:
    a, b = servers
    a.start()
    b.start()
    async with client_for(a) as via_a, client_for(b) as via_b:
        for attempt in range(3):
            job = await start_import(via_a, source, f"doomed{attempt}")
            await wait_progress(via_a, job["id"], 1)
            other = await not_running(postgres_url, job["id"], via_a, via_b)
            if attempt == 1:  # a pause, then a resume, through the other server first
                assert (await other.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
                resumed = await other.post(f"/jobs/{job['id']}/resume")
                assert resumed.json()["state"] in {"queued", "running"}
                await wait_for(other, job["id"], {"running"})
                other = await not_running(postgres_url, job["id"], via_a, via_b)
            async with following(other, job["id"]) as events:
                ended = await other.post(f"/jobs/{job['id']}/terminate")
                assert ended.status_code == 200, ended.text
                assert ended.json()["state"] == "terminated"
                await asyncio.sleep(0.2)
            assert states(events)[-1] == "terminated"
            for via in (via_a, via_b):
                assert (await via.get(f"/datasets/doomed{attempt}")).status_code == 404
        assert not {t for t in await table_names(postgres_url) if t.startswith("stage_")}


async def test_an_export_resumed_and_downloaded_on_the_server_that_did_not_start_it(
    servers: tuple[ServerProcess, ServerProcess], postgres_url: str, source: Path
) -> None:
    a, b = servers
    a.start()
    async with client_for(a) as via_a, client_for(b) as via_b:
        imported = await start_import(via_a, source, "exported")
        await wait_for(via_a, imported["id"], {"completed"}, timeout=120)
        # An export that runs through without a stop, on A: the bytes to expect.
        whole = (await via_a.post("/exports", json={"dataset": "exported"})).json()
        await wait_for(via_a, whole["id"], {"completed"}, timeout=120)
        expected = (await via_a.get(f"/jobs/{whole['id']}/result")).content
        assert len(read_csv(expected)) == ROWS + 1
        # Another, paused on A midway; A stops, and B goes on from the part A wrote.
        job = (await via_a.post("/exports", json={"dataset": "exported"})).json()
        await wait_progress(via_a, job["id"], 1)
        paused = await via_a.post(f"/jobs/{job['id']}/pause")
        assert paused.json()["state"] == "paused"
        assert 0 < paused.json()["progress"]["done"] < ROWS
        assert a.stop() in (0, -signal.SIGTERM)
        b.start()
        await via_b.post(f"/jobs/{job['id']}/resume")
        await wait_for(via_b, job["id"], {"completed"}, timeout=120)
        assert (await via_b.get(f"/jobs/{job['id']}/result")).content == expected
        # B downloads the export A made, which it has never had, whole and in part.
        exports_b = b.tmp_path / "data" / "exports"
        assert not (exports_b / f"{whole['id']}.csv").exists()
        assert (await via_b.get(f"/jobs/{whole['id']}/result")).content == expected
        part = await via_b.get(f"/jobs/{whole['id']}/result", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == expected[10:100]


def test_compose_runs_postgresql_and_two_replicas_that_share_only_the_database() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if name != "postgres"}
    assert len(replicas) == 2 and "postgres" in services
    env = [s["environment"] for s in replicas.values()]
    assert {e["COLLECT_DATABASE_URL"] for e in env} == {
        "postgresql+asyncpg://collect:collect@postgres:5432/collect"
    }
    assert len({e["COLLECT_NODE_NAME"] for e in env}) == 2
    assert len({s["volumes"][0] for s in replicas.values()}) == 2  # a data dir each
    assert len({s["ports"][0] for s in replicas.values()}) == 2
    for replica in replicas.values():
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"


async def test_a_pause_and_a_resume_racing_through_the_other_server_lose_nothing(
    servers: tuple[ServerProcess, ServerProcess], postgres_url: str, source: Path
) -> None:
    """Whether the resume withdraws the pause before the runner stops, or after it stopped
    but before it recorded the pause, or once the job is paused: the job goes on, and ends
    exactly as if neither had been asked."""
    a, b = servers
    a.start()
    b.start()
    rng = random.Random(12)
    async with client_for(a) as via_a, client_for(b) as via_b:
        job = await start_import(via_a, source, "raced")
        job_id = job["id"]
        for _ in range(15):
            at = (await wait_progress(via_a, job_id, 1))["progress"]["done"]
            if at >= ROWS - 2_000:
                break
            other = await not_running(postgres_url, job_id, via_a, via_b)
            pause = asyncio.create_task(other.post(f"/jobs/{job_id}/pause"))
            await asyncio.sleep(rng.random() * 0.02)
            resumed = await other.post(f"/jobs/{job_id}/resume")
            assert resumed.status_code == 200, resumed.text
            paused = await pause
            assert paused.status_code == 200, paused.text
            if (await via_a.get(f"/jobs/{job_id}")).json()["state"] == "paused":
                await other.post(f"/jobs/{job_id}/resume")  # the pause came second
            await wait_progress(via_a, job_id, at + 200)
        ended = await wait_for(via_a, job_id, {"completed"}, timeout=120)
        assert ended["result"]["rows_imported"] == ROWS
        assert (await dataset_rows(via_b, "raced"))[1] == list(responses(ROWS, seed=41))
        history = (await via_a.get(f"/jobs/{job_id}/history")).json()["items"]
        assert sum(h["to_state"] == "pausing" for h in history) >= 10
