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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Update
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database, Interrupt, Interrupted, shielded
from collect_api.jobs import store
from collect_api.jobs.models import SYSTEM, Control, Job, JobState
from collect_api.jobs.progress import Progress
from collect_api.metrics import Metrics
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


class RunLost(Exception):
    """This run cannot go on (the worker doing its work died): the job resumes from its
    checkpoint, with one more attempt, as after its process died."""


class ServiceStopping(Exception):
    """The service is stopping: the job stops at this safe point, to resume on the next start."""


class _Refused(Exception):
    """A chunk's checkpoint statement applied to no row."""


class JobContext:
    def __init__(
        self,
        *,
        job: Job,
        db: Database,
        settings: Settings,
        owner: str,
        stopping: asyncio.Event | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.job = job
        self.metrics = metrics
        self._stopping = stopping or asyncio.Event()
        self.db = db
        self.settings = settings
        self.owner = owner
        self._clock_start = self._last_commit = time.monotonic()
        self._done_at_start = int(job.progress.get("done") or 0)
        # A control request made in this process, and the interrupt of the chunk in flight
        # (with what stops its work elsewhere, in the data plane's worker).
        # (None as the actor: asked through another server, and recorded in the job's row.)
        self._stop: tuple[Control, str | None] | None = None
        self._in_flight: Interrupt | None = None
        self._stop_elsewhere: Callable[[], None] | None = None

    def request_stop(self, control: Control, *, actor: str | None) -> None:
        """Stop at the next safe point: the chunk in flight rolls back at its next
        statement rather than commit. ``actor`` None: the request was recorded in the job's
        row by another server."""
        self._stop = (control, actor)
        if self._in_flight is not None:
            self._in_flight.requested = True
        if self._stop_elsewhere is not None:
            self._stop_elsewhere()

    def withdraw_stop(self) -> bool:
        """Forget a stop request the job has not acted on; False if it is too late."""
        if self._stop is None:
            return True
        if self._in_flight is not None and self._in_flight.requested:
            return False
        self._stop = None
        return True

    async def step(self, unit: Callable[[], Awaitable[T]], *, interrupt: Callable[[], None]) -> T:
        """Run ``unit``, a chunk written elsewhere (the data plane's worker) with the
        checkpoint statement of ``checkpoint_statement``, at a safe point. ``interrupt``
        stops that work at its next statement, rolling it back: a cancellation or a stop
        request calls it. A chunk whose checkpoint statement did not apply is ``refused``."""
        self._check_stops()
        self._in_flight = Interrupt()
        self._stop_elsewhere = interrupt
        try:
            return await shielded(unit, interrupt=self._in_flight, on_cancel=interrupt)
        except Interrupted:
            if self._stop is None:
                raise
            raise SafePointStop(*self._stop) from None  # rolled back at a stop request
        finally:
            self._in_flight = None
            self._stop_elsewhere = None

    def checkpoint_statement(
        self, *, provided: Sequence[ColumnElement[bool]] = ()
    ) -> Callable[..., tuple[str, list[Any]]]:
        """What makes the statement that commits a chunk's checkpoint with the chunk, as
        text for the data plane's worker: called with each chunk's ``checkpoint`` and
        ``progress``. It applies (and returns a row) only if the job is still this run's, no
        control request waits and ``provided`` holds. Compiled once, for the run."""
        compiled = store.CheckpointStatement(
            self.db.backend, job_id=self.job.id, owner=self.owner, provided=provided
        )

        def statement(
            *, checkpoint: Mapping[str, Any], progress: Progress
        ) -> tuple[str, list[Any]]:
            return compiled(
                checkpoint=checkpoint,
                progress=progress,
                lease_expires_at=time.time() + self.settings.lease_s,
            )

        return statement

    def _checkpoint_update(self, checkpoint: Mapping[str, Any], progress: Progress) -> Update:
        """``checkpoint_statement``, for a chunk written in this process."""
        return store.checkpoint_update(**self._checkpoint_claim(checkpoint, progress))

    def _checkpoint_claim(self, checkpoint: Mapping[str, Any], progress: Progress) -> Any:
        return {
            "job_id": self.job.id,
            "owner": self.owner,
            "checkpoint": checkpoint,
            "progress": progress,
            "lease_expires_at": time.time() + self.settings.lease_s,
        }

    def saved(self, *, checkpoint: Mapping[str, Any], progress: Progress) -> None:
        """Note a checkpoint that a ``step`` committed; count what it covers, and time the
        chunk from the previous commit (or the run's start) to this one."""
        now = time.monotonic()
        if self.metrics is not None:
            self.metrics.chunk_seconds.labels(self.job.kind).observe(now - self._last_commit)
            before = self.job.progress or {}
            self.metrics.count(
                self.job.kind,
                records=progress.done - int(before.get("done") or 0),
                bytes_=(progress.bytes_done or 0) - int(before.get("bytes_done") or 0),
            )
        self._last_commit = now
        self.job = self.job.model_copy(
            update={"checkpoint": checkpoint, "progress": progress.document()}
        )

    async def refused(self) -> None:
        """Raise what made a chunk's checkpoint statement apply to no row: a control request
        to apply at this safe point, or a claim this run no longer holds."""

        await self.read(self._check_claim)
        raise LeaseLost(self.job.id)

    def _check_stops(self) -> None:
        if self._stopping.is_set():
            raise ServiceStopping(self.job.id)
        if self._stop is not None:
            raise SafePointStop(*self._stop)

    async def chunk(
        self,
        write: Callable[[AsyncConnection], Awaitable[T]] | None = None,
        *,
        checkpoint: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> T | None:
        """One chunk: a transaction opened at a safe point, ``write(conn)`` in a savepoint.

        With a ``checkpoint`` (and its ``progress``), the chunk commits together with it,
        by the same conditional statement the data plane runs: only if this run still
        holds the job and no control request waits; otherwise nothing is committed and the
        reason is raised (``refused``). Without one (publishing, say), the claim is checked
        before ``write`` runs.
        """
        self._check_stops()

        async def unit() -> tuple[T | None, bool]:
            async with self.db.write() as conn:
                if checkpoint is None:
                    await self._check_claim(conn)
                result = None
                if write is not None:
                    async with conn.begin_nested():
                        result = await write(conn)
                if checkpoint is None:
                    return result, True
                assert progress is not None
                rows = (await conn.execute(self._checkpoint_update(checkpoint, progress))).all()
                if not rows:
                    raise _Refused
                return result, True

        self._in_flight = Interrupt()
        try:
            result, _ = await shielded(unit, interrupt=self._in_flight)
        except _Refused:
            await self.refused()
            raise
        except Interrupted:
            if self._stop is None:
                raise
            raise SafePointStop(*self._stop) from None  # rolled back at a stop request
        finally:
            self._in_flight = None
        if checkpoint is not None:
            assert progress is not None
            self.saved(checkpoint=checkpoint, progress=progress)
        return result

    async def _check_claim(self, conn: AsyncConnection) -> None:
        state, owner, control = await store.claim_of(conn, job_id=self.job.id)
        if owner != self.owner or state not in RUNNABLE:
            raise LeaseLost(self.job.id)
        if control is not None:
            raise SafePointStop(Control(control))

    async def read(self, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``query(conn)`` in a read-only snapshot."""

        async def unit() -> T:
            async with self.db.read() as conn:
                return await query(conn)

        return await shielded(unit)

    async def finish(
        self, conn: AsyncConnection, *, result: dict[str, Any], progress: Progress
    ) -> None:
        """Record completion in the transaction that published the job's writes."""
        self.job = await store.transition(
            conn,
            await store.get_job(conn, job_id=self.job.id),
            JobState.COMPLETED,
            actor=SYSTEM,
            reason="finished",
            result=result,
            progress=progress.document(),
        )

    def rate(self, done: int) -> float | None:
        """Units per second in this run (since the last start or resume)."""
        elapsed = time.monotonic() - self._clock_start
        if elapsed <= 0 or done <= self._done_at_start:
            return None
        return (done - self._done_at_start) / elapsed
