"""Control requests: pause, resume, terminate. Idempotent, and answered once they took effect.

Each request changes the job's row in one write transaction, so it works from any process.
A request for a running job records the wish (``control``) and a transitional state; the
job's runner applies it at its next safe point, and the request waits for that to show
(bounded by ``control_wait_s``). On PostgreSQL the transaction also notifies every server
(``db.notify``): the one that runs the job stops its chunk in flight at once, as for a
request made there, rather than at the chunk's commit.
"""

import asyncio
from collections.abc import Mapping
from typing import Protocol

from collect_api.db import Database, notify
from collect_api.errors import InvalidTransition
from collect_api.jobs import store
from collect_api.jobs.broker import Broker
from collect_api.jobs.models import SYSTEM, Control, Job, JobState
from collect_api.jobs.registry import JobKind

S = JobState


class Runner(Protocol):
    """What a control request needs of the jobs' runner in this process (the
    ``Supervisor``): its database, broker and kinds, how long a request waits, and the
    hooks by which a job running or parked here is stopped, resumed or woken at once."""

    @property
    def db(self) -> Database: ...

    @property
    def broker(self) -> Broker: ...

    @property
    def kinds(self) -> Mapping[str, JobKind]: ...

    @property
    def control_wait_s(self) -> float: ...

    def wake(self) -> None: ...

    def request_pause(
        self, job_id: str, *, tenant: str, actor: str
    ) -> "asyncio.Future[Job | None] | None": ...

    def withdraw_pause(self, job_id: str) -> bool: ...

    async def resume_parked(self, job_id: str, *, actor: str) -> Job | None: ...

    def release_parked(self, job_id: str) -> None: ...

    def cancel_for_terminate(self, job_id: str, *, actor: str) -> None: ...


# How long a resume waits to see the job claim a run slot before answering `queued`.
RESUME_WAIT_S = 2.0


async def _wait(
    *, db: Database, broker: Broker, tenant: str, job_id: str, away_from: set[str], wait_s: float
) -> Job:
    async def read() -> Job:
        return await store.read_job(db, job_id=job_id, tenant=tenant)

    await broker.wait_for(
        tenant=tenant,
        job_id=job_id,
        until=lambda doc: doc["state"] not in away_from,
        read=read,
        wait_s=wait_s,
    )
    return await store.read_job(db, job_id=job_id, tenant=tenant)


async def pause_job(*, runner: Runner, tenant: str, job_id: str) -> Job:
    db = runner.db
    pausing = runner.request_pause(job_id, tenant=tenant, actor=tenant)
    if pausing is not None:
        # It runs here: it stops at its next safe point, records the pause itself and
        # answers with the job as paused, with no read of the row.
        try:
            async with asyncio.timeout(runner.control_wait_s):
                paused = await asyncio.shield(pausing)
        except TimeoutError:
            paused = None  # still on its way to a safe point: answered as it stands
        if paused is not None:
            return paused
        job = await store.read_job(db, job_id=job_id, tenant=tenant)
        if job.state in (S.COMPLETED, S.FAILED):  # it ended before its safe point
            raise InvalidTransition(job.id, job.state, S.PAUSED)
        if job.state in (S.RUNNING, S.PAUSING, S.PAUSED):
            # Still stopping, or going on because a resume withdrew the pause.
            return job
    async with db.write() as conn:
        job = await store.get_job(conn, job_id=job_id, tenant=tenant)
        if job.state == S.QUEUED:
            return await store.transition(conn, job, S.PAUSED, actor=tenant, reason="pause")
        if job.state == S.RUNNING:
            job = await store.transition(
                conn, job, S.PAUSING, actor=tenant, reason="pause", control=Control.PAUSE
            )
            notify(conn, f"{Control.PAUSE.value} {job.id}")  # to the process that runs it
        elif job.state not in (S.PAUSED, S.PAUSING):
            raise InvalidTransition(job.id, job.state, S.PAUSED)
    if job.state == S.PAUSED:
        return job
    return await _wait(
        db=db,
        broker=runner.broker,
        tenant=tenant,
        job_id=job_id,
        away_from={S.PAUSING, S.RUNNING},
        wait_s=runner.control_wait_s,
    )


async def resume_job(*, runner: Runner, tenant: str, job_id: str) -> Job:
    db = runner.db
    await store.read_job(db, job_id=job_id, tenant=tenant)  # 404 for someone else's
    if not runner.withdraw_pause(job_id):
        # A pause asked here is being carried out: let it finish, then resume.
        await _wait(
            db=db,
            broker=runner.broker,
            tenant=tenant,
            job_id=job_id,
            away_from={S.PAUSING, S.RUNNING},
            wait_s=runner.control_wait_s,
        )
    # Parked here on its gate, with a run slot free: it goes on in its own task.
    resumed = await runner.resume_parked(job_id, actor=tenant)
    if resumed is not None:
        return resumed
    async with db.write() as conn:
        job = await store.get_job(conn, job_id=job_id, tenant=tenant)
        if job.state == S.PAUSED:
            job = await store.transition(conn, job, S.QUEUED, actor=tenant, reason="resume")
        elif job.state == S.PAUSING:
            # Resumed before it reached its safe point: it simply keeps running.
            notify(conn, f"resume {job.id}")  # the pause is withdrawn where it runs
            return await store.transition(
                conn, job, S.RUNNING, actor=tenant, reason="resume", control=None
            )
        elif job.state in (S.RUNNING, S.QUEUED):
            return job
        else:
            raise InvalidTransition(job.id, job.state, S.RUNNING)
    runner.wake()
    return await _wait(
        db=db,
        broker=runner.broker,
        tenant=tenant,
        job_id=job_id,
        away_from={S.QUEUED},
        wait_s=RESUME_WAIT_S,
    )


async def terminate_job(*, runner: Runner, tenant: str, job_id: str) -> Job:
    db = runner.db
    job = await store.read_job(db, job_id=job_id, tenant=tenant)
    if job.state in (S.RUNNING, S.PAUSING):
        # Running here: cancel it first. Its chunk in flight rolls back and gives the write
        # lock back, rather than this request waiting behind the job's chunks for the lock.
        runner.cancel_for_terminate(job_id, actor=tenant)
    async with db.write() as conn:
        job = await store.get_job(conn, job_id=job_id, tenant=tenant)
        if job.state in (S.QUEUED, S.PAUSED):
            # Nothing runs it: undo its writes and end it here, in this one transaction.
            kind = runner.kinds[job.kind]
            await kind.undo_writes(conn, job)
            job = await store.transition(conn, job, S.TERMINATING, actor=tenant, reason="terminate")
            job = await store.transition(
                conn, job, S.TERMINATED, actor=SYSTEM, reason="rolled back"
            )
            notify(conn, f"release {job.id}")  # its task parked elsewhere ends now
        elif job.state in (S.RUNNING, S.PAUSING):
            job = await store.transition(
                conn,
                job,
                S.TERMINATING,
                actor=tenant,
                reason="terminate",
                control=Control.TERMINATE,
            )
            notify(conn, f"{Control.TERMINATE.value} {job.id}")
        elif job.state == S.COMPLETED or job.state == S.FAILED:
            raise InvalidTransition(job.id, job.state, S.TERMINATED)
    if job.state == S.TERMINATED:
        runner.release_parked(job.id)
        runner.kinds[job.kind].delete_files(job)
        return job
    # In another process it stops at its next chunk.
    return await _wait(
        db=db,
        broker=runner.broker,
        tenant=tenant,
        job_id=job_id,
        away_from={S.RUNNING, S.PAUSING, S.TERMINATING},
        wait_s=runner.control_wait_s,
    )


__all__ = ["pause_job", "resume_job", "terminate_job"]
