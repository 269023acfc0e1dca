"""What a running job sees: its row, its settings, and the chunk transaction.

Every chunk is one write transaction: it first reads the job's row and stops at this safe
point if a control request (pause, terminate) is waiting or the job's claim was lost, then
runs the kind's writes inside a savepoint and commits them with the checkpoint that covers
them. A cancellation in the middle of a chunk rolls back the savepoint and the transaction:
either the chunk and its checkpoint are both committed, or neither is.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database
from collect_api.jobs import store
from collect_api.jobs.models import Control, Job, JobState
from collect_api.settings import Settings

RUNNABLE = frozenset({JobState.RUNNING, JobState.PAUSING, JobState.TERMINATING})


class SafePointStop(Exception):
    """Raised at a safe point to stop the job; the supervisor applies ``control``."""

    def __init__(self, control: Control) -> None:
        super().__init__(control)
        self.control = control


class LeaseLost(Exception):
    """Another process has taken the job over; this run must stop without writing."""


class ServiceStopping(Exception):
    """The service is stopping: the job stops at this safe point, to resume on the next start."""


class JobContext:
    def __init__(
        self,
        *,
        job: Job,
        db: Database,
        settings: Settings,
        owner: str,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.job = job
        self._stopping = stopping or asyncio.Event()
        self.db = db
        self.settings = settings
        self.owner = owner
        self._clock_start = time.monotonic()
        self._done_at_start = int(job.progress.get("done") or 0)

    @asynccontextmanager
    async def chunk(self) -> AsyncIterator[AsyncConnection]:
        """A chunk's transaction, opened at a safe point; commit it with ``save``."""
        if self._stopping.is_set():
            raise ServiceStopping(self.job.id)
        async with self.db.write() as conn:
            state, owner, control = await store.claim_of(conn, job_id=self.job.id)
            if owner != self.owner or state not in RUNNABLE:
                raise LeaseLost(self.job.id)
            if control is not None:
                raise SafePointStop(Control(control))
            async with conn.begin_nested():
                yield conn

    async def save(
        self, conn: AsyncConnection, *, checkpoint: dict[str, Any], progress: dict[str, Any]
    ) -> None:
        """Store the checkpoint and progress in the chunk's transaction."""
        self.job = await store.update_job(
            conn,
            self.job,
            checkpoint=checkpoint,
            progress=progress,
            lease_expires_at=time.time() + self.settings.lease_s,
        )

    async def finish(
        self, conn: AsyncConnection, *, result: dict[str, Any], progress: dict[str, Any]
    ) -> None:
        """Record completion in the transaction that published the job's writes."""
        self.job = await store.transition(
            conn,
            await store.get_job(conn, job_id=self.job.id),
            JobState.COMPLETED,
            actor="system",
            reason="finished",
            result=result,
            progress=progress,
        )

    def rate(self, done: int) -> float | None:
        """Units per second in this run (since the last start or resume)."""
        elapsed = time.monotonic() - self._clock_start
        if elapsed <= 0 or done <= self._done_at_start:
            return None
        return (done - self._done_at_start) / elapsed

    def elapsed(self) -> float:
        return time.monotonic() - self._clock_start
