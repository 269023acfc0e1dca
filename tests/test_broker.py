"""The broker on a real database: changes reach subscriptions in order, and a waiter acts
only on changes newer than what it has already read."""

import asyncio
from pathlib import Path

from collect_api import migrations
from collect_api.db import Database
from collect_api.ids import new_job_id
from collect_api.jobs import store
from collect_api.jobs.broker import Broker
from collect_api.jobs.models import Job, JobState
from collect_api.jobs.progress import Progress
from tests.conftest import make_settings

NO_PROGRESS = Progress(done=0, total=None, percent=0, unit="records")


async def _database(tmp_path: Path) -> Database:
    url = make_settings(tmp_path).database_url
    await migrations.upgrade(url)
    return Database(url)


async def _move(db: Database, job_id: str, *states: JobState) -> Job:
    async with db.write() as conn:
        job = await store.get_job(conn, job_id=job_id)
        for state in states:
            job = await store.transition(conn, job, state, actor="test")
    return job


async def test_a_waiter_ignores_changes_older_than_what_it_read(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    broker = Broker(db, progress_interval=0)
    await broker.sync()
    job_id = new_job_id()
    async with db.write() as conn:
        await store.insert_job(
            conn,
            job_id=job_id,
            tenant="t",
            kind="import",
            params={},
            progress=NO_PROGRESS,
            actor="t",
        )
    # queued → running → pausing, none of it polled yet: the broker is behind, as it is
    # between two polls.
    await _move(db, job_id, JobState.RUNNING, JobState.PAUSING)

    async def read() -> Job:
        async with db.read() as conn:
            return await store.get_job(conn, job_id=job_id)

    waiter = asyncio.create_task(
        broker.wait_for(
            tenant="t",
            job_id=job_id,
            until=lambda doc: doc["state"] not in {"pausing", "running"},
            read=read,
            wait_s=30,
        )
    )
    try:
        # The waiter has read `pausing`; now the poll catches up and delivers the older
        # `queued` and `running` changes, `queued` being a state that would end the wait.
        for _ in range(5000):  # until the waiter has subscribed and read the job
            if broker._subscriptions:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        await broker.poll()
        await asyncio.sleep(0.05)
        assert not waiter.done(), "a stale change ended the wait"

        await _move(db, job_id, JobState.PAUSED)
        await broker.poll()
        async with asyncio.timeout(5):
            await waiter
    finally:
        waiter.cancel()
        await db.dispose()


async def test_a_subscription_gets_every_state_change_in_order_and_only_its_tenants(
    tmp_path: Path,
) -> None:
    db = await _database(tmp_path)
    broker = Broker(db, progress_interval=0)
    await broker.sync()
    ids = [new_job_id() for _ in range(2)]
    async with db.write() as conn:
        for job_id, tenant in zip(ids, ("t", "other"), strict=True):
            await store.insert_job(
                conn,
                job_id=job_id,
                tenant=tenant,
                kind="k",
                params={},
                progress=NO_PROGRESS,
                actor="t",
            )
    with broker.subscribe(tenant="t") as sub:
        await _move(db, ids[0], JobState.RUNNING, JobState.PAUSED)
        await _move(db, ids[1], JobState.RUNNING)
        await broker.poll()
        seen = []
        async with asyncio.timeout(5):
            async for event in sub.events():
                seen.append((event.job_id, event.kind, event.document["state"], event.rev))
                if event.document["state"] == "paused":
                    break
    assert [s[:3] for s in seen] == [
        (ids[0], "state", "queued"),
        (ids[0], "state", "running"),
        (ids[0], "state", "paused"),
    ]
    assert [s[3] for s in seen] == sorted(s[3] for s in seen)
    await db.dispose()


async def test_a_stopping_service_sends_what_was_committed_before_it_ends_the_streams(
    tmp_path: Path,
) -> None:
    db = await _database(tmp_path)
    # Progress paced an hour apart: what the last poll finds would otherwise stay held.
    broker = Broker(db, progress_interval=3600)
    await broker.sync()
    ids = [new_job_id() for _ in range(2)]
    async with db.write() as conn:
        for job_id in ids:
            await store.insert_job(
                conn,
                job_id=job_id,
                tenant="t",
                kind="k",
                params={},
                progress=NO_PROGRESS,
                actor="t",
            )

    async def progress(job: Job, done: int) -> Job:
        async with db.write() as conn:
            return await store.update_job(conn, job, progress={**job.progress, "done": done})

    with broker.subscribe(tenant="t") as sub, broker.subscribe(tenant="t") as other:
        working, _pausing = [await _move(db, job_id, JobState.RUNNING) for job_id in ids]
        working = await progress(working, 1)
        await broker.poll()  # the first progress goes out at once, the next an hour later
        # A pause, then progress (held back: no later state change sends it along).
        await _move(db, ids[1], JobState.PAUSING, JobState.PAUSED)
        await progress(working, 5)
        # The stop is asked before any poll has seen these changes.
        broker.end_streams()
        assert not broker._closed, "the streams ended before the changes were polled"
        await broker.poll()
        assert broker._closed
        for stream in (sub, other):
            seen, done = [], []
            async with asyncio.timeout(5):
                async for event in stream.events():  # ends by itself: the stream was closed
                    doc = event.document
                    seen.append((ids.index(event.job_id), event.kind, doc["state"]))
                    done.append(doc["progress"]["done"] if event.kind == "progress" else None)
            # Unread, a stream holds only the newest progress of a job: the one held back.
            assert [s for s in seen if s[0] == 0] == [
                (0, "state", "queued"),
                (0, "state", "running"),
                (0, "progress", "running"),
            ]
            assert [d for d in done if d is not None] == [5]
            assert [s for s in seen if s[0] == 1][-2:] == [
                (1, "state", "pausing"),
                (1, "state", "paused"),
            ]
    # A stream subscribing now ends at once.
    with broker.subscribe(tenant="t") as sub:
        assert [e async for e in sub.events()] == []
    await db.dispose()


async def test_a_stopping_service_ends_its_streams_even_if_no_poll_gets_through(
    tmp_path: Path,
) -> None:
    db = await _database(tmp_path)
    broker = Broker(db, progress_interval=0)
    await broker.sync()
    with broker.subscribe(tenant="t") as sub:
        broker.end_streams(within_s=0.05)  # and the poll loop never polls again
        async with asyncio.timeout(5):
            assert [e async for e in sub.events()] == []
    assert broker._closed
    await db.dispose()
