"""What a running job sees: its row, its settings, and the chunk transaction.

Every chunk is one write transaction: it first reads the job's row and stops at this safe
point if a control request (pause, terminate) is waiting or the job's claim was lost, then
runs the kind's writes inside a savepoint and commits them with the checkpoint that covers
them. A cancellation in the middle of a chunk rolls back the savepoint and the transaction:
either the chunk and its checkpoint are both committed, or neither is.

All of a job's database work goes through ``chunk`` and ``read``, which run it ``shielded``:
a cancellation (terminate, or a stop that could not wait) waits for the driver call in
flight, then rolls the transaction back, and only then reaches the job's coroutine.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database, Interrupt, Interrupted, shielded
from collect_api.jobs import store
from collect_api.jobs.models import Control, Job, JobState
from collect_api.settings import Settings

T = TypeVar("T")
RUNNABLE = frozenset({JobState.RUNNING, JobState.PAUSING, JobState.TERMINATING})


class SafePointStop(Exception):
    """Raised at a safe point to stop the job; the supervisor applies ``control``, asked for
    by ``actor`` (None: asked for through the job's row, which says who)."""

    def __init__(self, control: Control, actor: str | None = None) -> None:
        super().__init__(control)
        self.control = control
        self.actor = actor


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
        # A control request made in this process, and the interrupt of the chunk in flight.
        self._stop: tuple[Control, str] | None = None
        self._in_flight: Interrupt | None = None

    def request_stop(self, control: Control, *, actor: str) -> None:
        """Stop at the next safe point: the chunk in flight rolls back at its next
        statement rather than commit."""
        self._stop = (control, actor)
        if self._in_flight is not None:
            self._in_flight.requested = True

    def withdraw_stop(self) -> bool:
        """Forget a stop request the job has not acted on; False if it is too late."""
        if self._stop is None:
            return True
        if self._in_flight is not None and self._in_flight.requested:
            return False
        self._stop = None
        return True

    async def chunk(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``write(conn)`` as one chunk: a transaction opened at a safe point, with the
        writes in a savepoint; ``write`` commits the checkpoint with ``save``."""
        if self._stopping.is_set():
            raise ServiceStopping(self.job.id)
        if self._stop is not None:
            raise SafePointStop(*self._stop)

        async def unit() -> T:
            async with self.db.write() as conn:
                state, owner, control = await store.claim_of(conn, job_id=self.job.id)
                if owner != self.owner or state not in RUNNABLE:
                    raise LeaseLost(self.job.id)
                if control is not None:
                    raise SafePointStop(Control(control))
                async with conn.begin_nested():
                    return await write(conn)

        self._in_flight = Interrupt()
        try:
            return await shielded(unit, interrupt=self._in_flight)
        except Interrupted:
            if self._stop is None:
                raise
            raise SafePointStop(*self._stop) from None  # rolled back at a stop request
        finally:
            self._in_flight = None

    async def read(self, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``query(conn)`` in a read-only snapshot."""

        async def unit() -> T:
            async with self.db.read() as conn:
                return await query(conn)

        return await shielded(unit)

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
