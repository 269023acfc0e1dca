"""Server-Sent Events, against a real server: ASGITransport buffers whole responses, so only a
real socket shows what a client sees while a job runs."""

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from collect_api.samples import write_responses_csv
from tests.conftest import ServerProcess
from tests.helpers import TERMINAL, start_import, wait_for, wait_progress

pytestmark = pytest.mark.backends

KINDS = {"snapshot", "progress", "state"}
PROGRESS_INTERVAL_S = 0.25  # the server's default progress_interval_s
CHUNK_ROWS = 20
BIG = 15_000  # records: a few seconds of work in chunks of CHUNK_ROWS
SMALL = 2_000
STREAM_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "big.csv"
    write_responses_csv(path, BIG, seed=5)
    return path


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "small.csv"
    write_responses_csv(path, SMALL, seed=6)
    return path


@pytest.fixture
def server(tmp_path: Path, database: str) -> Iterator[ServerProcess]:
    """A real server whose jobs commit in small chunks, so they run for a while."""
    proc = ServerProcess(
        tmp_path, database_url=database, COLLECT_CHUNK_ROWS=str(CHUNK_ROWS)
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
async def control(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A second client, as another user or script steering the job while one watches."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@dataclass(frozen=True)
class Received:
    event: str
    id: int
    job: dict[str, Any]
    at: float  # time.monotonic() on arrival


@dataclass
class Feed:
    """An SSE stream read in the background; the test waits on what has arrived."""

    events: list[Received] = field(default_factory=list)
    content_type: str = ""
    closed_by_server: bool = False
    ended: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def follow(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        last_event_id: int | None = None,
        stop: Callable[["Feed"], bool] = lambda feed: False,
    ) -> None:
        """Read events until the server closes the stream, or ``stop(self)`` holds."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        try:
            async with aconnect_sse(http, "GET", url, headers=headers) as source:
                assert source.response.status_code == 200
                self.content_type = source.response.headers["content-type"]
                async with contextlib.aclosing(source.aiter_sse()) as events:
                    async for sse in events:
                        received = Received(
                            sse.event, int(sse.id), json.loads(sse.data), time.monotonic()
                        )
                        async with self._changed:
                            self.events.append(received)
                            self._changed.notify_all()
                        if stop(self):
                            return
            self.closed_by_server = True
        finally:
            async with self._changed:
                self.ended = True
                self._changed.notify_all()

    async def wait(self, predicate: Callable[[Received], bool]) -> Received:
        """The first event that satisfies ``predicate``, once it has arrived (callers bound
        the wait with ``asyncio.timeout``)."""

        def found() -> Received | None:
            return next((e for e in self.events if predicate(e)), None)

        async with self._changed:
            await self._changed.wait_for(lambda: self.ended or found() is not None)
        received = found()
        assert received is not None, f"the stream ended without it: {self.events[-3:]}"
        return received

    def states(self) -> list[tuple[str, str]]:
        """(state, updated_at) of each ``state`` event, as the history records them."""
        return [(e.job["state"], e.job["updated_at"]) for e in self.events if e.event == "state"]


def is_state(state: str, *, at: str | None = None) -> Callable[[Received], bool]:
    """A ``state`` event for ``state`` (made at ``at``, an updated_at, if given)."""

    def predicate(e: Received) -> bool:
        return (
            e.event == "state"
            and e.job["state"] == state
            and (at is None or e.job["updated_at"] == at)
        )

    return predicate


def progressed_after(mark: int) -> Callable[[Received], bool]:
    """A ``progress`` event with records done, later than event id ``mark``."""

    def predicate(e: Received) -> bool:
        return e.id > mark and e.event == "progress" and e.job["progress"]["done"] > 0

    return predicate


async def history_after(http: httpx.AsyncClient, job_id: str, after: str) -> list[tuple[str, str]]:
    """(to_state, at) of the job's transitions later than ``after`` (an updated_at)."""
    response = await http.get(f"/jobs/{job_id}/history")
    assert response.status_code == 200, response.text
    return [(h["to_state"], h["at"]) for h in response.json()["items"] if h["at"] > after]


def assert_ids_increase(events: list[Received]) -> None:
    ids = [e.id for e in events]
    assert all(a < b for a, b in itertools.pairwise(ids)), ids


def assert_percent_never_decreases(events: list[Received]) -> None:
    percents = [e.job["progress"]["percent"] for e in events]
    assert all(a <= b for a, b in itertools.pairwise(percents)), percents


async def test_a_job_stream_shows_snapshot_progress_and_every_state_then_closes(
    http: httpx.AsyncClient, control: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(http, big_csv, "watched")
    feed = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
        reading = tasks.create_task(feed.follow(http, f"/jobs/{job['id']}/events"))
        mark = 0
        for _ in range(2):
            await feed.wait(progressed_after(mark))
            paused = await control.post(f"/jobs/{job['id']}/pause")
            assert paused.status_code == 200, paused.text
            assert paused.json()["state"] == "paused"
            mark = (await feed.wait(is_state("paused", at=paused.json()["updated_at"]))).id
            resumed = await control.post(f"/jobs/{job['id']}/resume")
            assert resumed.status_code == 200, resumed.text
            assert resumed.json()["state"] in {"queued", "running"}
        await reading  # the stream ends by itself after the terminal state

    assert feed.closed_by_server
    assert feed.content_type.startswith("text/event-stream")
    document = (await http.get(f"/jobs/{job['id']}")).json()
    snapshot, *rest = feed.events
    assert snapshot.event == "snapshot"
    assert snapshot.job.keys() == document.keys()
    for e in feed.events:
        assert e.event in KINDS
        assert e.job.keys() == document.keys()
        assert e.job["id"] == job["id"]
    assert_ids_increase(feed.events)
    assert_percent_never_decreases(feed.events)

    # Every state change, in order, each once: exactly what the audit trail holds.
    states = feed.states()
    assert states == await history_after(http, job["id"], snapshot.job["updated_at"])
    names = [s for s, _ in states]
    assert names.count("paused") == 2
    paused_at = names.index("paused")
    assert names.index("pausing") < paused_at
    assert names[paused_at + 1] in {"queued", "running"}  # resumed: straight on, or queued
    assert "running" in names[paused_at + 1 :]
    assert names[-1] == "completed"
    last = feed.events[-1]
    assert (last.event, last.job) == ("state", document)
    assert document["progress"]["percent"] == 100

    # Progress is coalesced and paced: at most one per interval, plus those sent along
    # with a state change (a lenient bound, so that scheduling jitter cannot fail it).
    progress = [e for e in rest if e.event == "progress"]
    assert len(progress) >= 3
    elapsed = feed.events[-1].at - feed.events[0].at
    allowed = len(states) + 2 + elapsed / PROGRESS_INTERVAL_S * 1.2
    assert len(progress) <= allowed, (len(progress), elapsed)
    assert len(progress) < BIG / CHUNK_ROWS / 4, "progress events are not coalesced"


async def test_the_stream_of_a_finished_job_is_its_snapshot_alone(
    http: httpx.AsyncClient, small_csv: Path
) -> None:
    job = await start_import(http, small_csv, "finished")
    done = await wait_for(http, job["id"], {"completed"})
    feed = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        await feed.follow(http, f"/jobs/{job['id']}/events")
    assert feed.closed_by_server
    assert [(e.event, e.job) for e in feed.events] == [("snapshot", done)]


async def test_reconnecting_with_last_event_id_misses_no_state_change(
    http: httpx.AsyncClient, control: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(http, big_csv, "reconnect")
    url = f"/jobs/{job['id']}/events"
    first = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
        tasks.create_task(first.follow(http, url, stop=lambda f: is_state("paused")(f.events[-1])))
        await first.wait(progressed_after(0))
        assert (await control.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
    assert not first.closed_by_server
    last = first.events[-1]

    # Disconnected: the job goes on, and is steered.
    for _ in range(2):
        resumed = await control.post(f"/jobs/{job['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        moved = await wait_progress(control, job["id"], resumed.json()["progress"]["done"] + 1)
        assert moved["state"] == "running"
        assert (await control.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
    missed = await history_after(http, job["id"], last.job["updated_at"])
    assert [s for s, _ in missed].count("paused") == 2

    second = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
        reading = tasks.create_task(second.follow(http, url, last_event_id=last.id))
        # What happened while away arrives at once, before anything new happens.
        await second.wait(lambda e: e.event == "state" and e.job["updated_at"] == missed[-1][1])
        assert second.states() == missed
        assert (await control.post(f"/jobs/{job['id']}/resume")).status_code == 200
        await reading

    assert second.closed_by_server
    assert all(e.id > last.id for e in second.events)
    assert_ids_increase(second.events)
    assert_percent_never_decreases(first.events + second.events)
    everything = await history_after(http, job["id"], last.job["updated_at"])
    assert second.states() == everything
    assert everything[-1][0] == "completed"


def ended(f: Feed, job_ids: list[str]) -> bool:
    """Whether the feed has shown every one of ``job_ids`` reach a terminal state."""
    done = {e.job["id"] for e in f.events if e.event == "state" and e.job["state"] in TERMINAL}
    return bool(job_ids) and done >= set(job_ids)


async def test_the_all_jobs_stream_follows_every_job(
    http: httpx.AsyncClient, control: httpx.AsyncClient, small_csv: Path
) -> None:
    waiting = await start_import(http, small_csv, "waiting")
    assert (await control.post(f"/jobs/{waiting['id']}/pause")).json()["state"] == "paused"
    ids = [waiting["id"]]
    feed = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
        reading = tasks.create_task(feed.follow(http, "/events", stop=lambda f: ended(f, ids)))
        # An unfinished job is first shown as it is now ...
        snapshot = await feed.wait(lambda e: e.job["id"] == waiting["id"])
        assert (snapshot.event, snapshot.job["state"]) == ("snapshot", "paused")
        # ... and a job made after the stream opened, from its first state on.
        fresh = await start_import(http, small_csv, "fresh")
        ids.append(fresh["id"])
        assert (await control.post(f"/jobs/{waiting['id']}/resume")).status_code == 200
        await reading

    assert not feed.closed_by_server  # it follows every job, so it never ends by itself
    assert feed.content_type.startswith("text/event-stream")
    assert {e.job["id"] for e in feed.events} == set(ids)
    assert all(e.event in KINDS for e in feed.events)
    assert_ids_increase(feed.events)
    for job_id in ids:
        own = [e for e in feed.events if e.job["id"] == job_id]
        after = own[0].job["updated_at"] if own[0].event == "snapshot" else ""
        assert [(e.job["state"], e.job["updated_at"]) for e in own if e.event == "state"] == (
            await history_after(http, job_id, after)
        )
        assert_percent_never_decreases(own)
        assert any(e.event == "progress" for e in own)
        assert own[-1].event == "state"
        assert own[-1].job == (await http.get(f"/jobs/{job_id}")).json()
        assert own[-1].job["state"] == "completed"
        assert own[-1].job["result"]["rows_imported"] == SMALL
    fresh_events = [e for e in feed.events if e.job["id"] == fresh["id"]]
    assert (fresh_events[0].event, fresh_events[0].job["state"]) == ("state", "queued")


async def test_the_all_jobs_stream_does_not_replay_what_happened_before_it_opened(
    tmp_path: Path, database: str, small_csv: Path
) -> None:
    """A change committed before the stream opened is no event of it, even when the
    server's change poll has not picked it up yet. The poll is slowed down here so that the
    stream opens before it, as it does now and then at the default interval."""
    slow = ServerProcess(
        tmp_path,
        database_url=database,
        COLLECT_CHUNK_ROWS=str(CHUNK_ROWS),
        COLLECT_POLL_INTERVAL_S="2",
    ).start()
    try:
        async with httpx.AsyncClient(base_url=slow.url, timeout=30) as http:
            gone = await start_import(http, small_csv, "gone")
            assert (await http.post(f"/jobs/{gone['id']}/pause")).json()["state"] == "paused"
            assert (await http.post(f"/jobs/{gone['id']}/terminate")).json()["state"] == (
                "terminated"
            )
            ids: list[str] = []
            feed = Feed()
            async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
                reading = tasks.create_task(
                    feed.follow(http, "/events", stop=lambda f: ended(f, ids))
                )
                ids.append((await start_import(http, small_csv, "later"))["id"])
                await reading
    finally:
        slow.stop()
    assert {e.job["id"] for e in feed.events} == set(ids), [
        (e.event, e.job["id"], e.job["state"]) for e in feed.events
    ]


async def test_reconnecting_to_the_all_jobs_stream_misses_no_state_change(
    http: httpx.AsyncClient, control: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(http, big_csv, "roaming")
    first = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        await first.follow(http, "/events", stop=lambda f: progressed_after(0)(f.events[-1]))
    last = first.events[-1]

    # Disconnected: the job is paused, resumed and paused again.
    assert (await control.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
    resumed = await control.post(f"/jobs/{job['id']}/resume")
    await wait_progress(control, job["id"], resumed.json()["progress"]["done"] + 1)
    paused = await control.post(f"/jobs/{job['id']}/pause")
    assert paused.json()["state"] == "paused"
    missed = await history_after(http, job["id"], last.job["updated_at"])
    assert [s for s, _ in missed].count("paused") == 2

    second = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
        reading = tasks.create_task(
            second.follow(
                http, "/events", last_event_id=last.id, stop=lambda f: ended(f, [job["id"]])
            )
        )
        await second.wait(lambda e: e.job["updated_at"] == paused.json()["updated_at"])
        assert (await control.post(f"/jobs/{job['id']}/terminate")).status_code == 200
        await reading

    assert all(e.id > last.id for e in second.events)
    assert_ids_increase(second.events)
    assert second.states() == await history_after(http, job["id"], last.job["updated_at"])


async def test_a_terminated_job_stream_shows_terminating_then_terminated_and_closes(
    http: httpx.AsyncClient, control: httpx.AsyncClient, big_csv: Path
) -> None:
    job = await start_import(http, big_csv, "doomed")
    feed = Feed()
    async with asyncio.timeout(STREAM_TIMEOUT_S), asyncio.TaskGroup() as tasks:
        reading = tasks.create_task(feed.follow(http, f"/jobs/{job['id']}/events"))
        await feed.wait(progressed_after(0))
        terminated = await control.post(f"/jobs/{job['id']}/terminate")
        assert terminated.status_code == 200, terminated.text
        assert terminated.json()["state"] == "terminated"
        await reading

    assert feed.closed_by_server
    states = feed.states()
    assert [s for s, _ in states][-2:] == ["terminating", "terminated"]
    assert states == await history_after(http, job["id"], feed.events[0].job["updated_at"])
    assert (feed.events[-1].event, feed.events[-1].job) == ("state", terminated.json())
    assert_ids_increase(feed.events)


async def test_an_unknown_job_has_no_stream(client: httpx.AsyncClient) -> None:
    """A 404 is no stream, so the in-process app can show it."""
    response = await client.get("/jobs/nope/events", headers={"Accept": "text/event-stream"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


async def test_a_silent_stream_is_kept_open_by_comments_and_still_delivers(
    tmp_path: Path, database: str, small_csv: Path
) -> None:
    """A stream with nothing to send gets a comment every ``COLLECT_SSE_PING_S``, so that
    proxies keep it open; EventSource clients ignore comments, and the events still come."""
    quiet = ServerProcess(tmp_path, database_url=database, COLLECT_SSE_PING_S="0.3").start()
    try:
        async with (
            httpx.AsyncClient(base_url=quiet.url, timeout=30) as client,
            client.stream("GET", "/events") as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache"
            lines = stream.aiter_lines()
            started = time.monotonic()
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                pings = 0
                while pings < 3:
                    line = await anext(lines)
                    assert line in (": ping", ""), line  # no job: nothing but comments
                    pings += line == ": ping"
            assert time.monotonic() - started >= 0.6, "three pings, 0.3 s apart"
            job = await start_import(client, small_csv, "after_pings")
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                while True:
                    line = await anext(lines)
                    if line.startswith("data:") and json.loads(line[5:])["state"] == "completed":
                        assert json.loads(line[5:])["id"] == job["id"]
                        break
    finally:
        quiet.stop()
