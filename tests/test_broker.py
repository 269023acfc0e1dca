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
