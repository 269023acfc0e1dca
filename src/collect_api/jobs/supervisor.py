"""The supervisor: the one owner of every background task of a process.

State machine (``models.TRANSITIONS`` is the one table of allowed moves)::

    queued ──claim──▶ running ──finish──▶ completed
      │  ▲             │   │ └──error──▶ failed
      │  └──resume── paused ◀─safe point── pausing ◀─pause─┘
      └─────────── terminate ─▶ terminating ─rolled back─▶ terminated

Invariants:

- Only this module starts long-lived tasks. They are the scheduler loop, the broker's poll
  loop, the housekeeping loop, the WAL checkpoint loop, on PostgreSQL the listener of
  notifications (``Database.listen``), one task per job this process runs
  (``_running``: job id → task), and the settle tasks that write a job's final state
  (``_settling``). ``close()`` cancels and awaits every one of them. (An upload's early
  import, ``kinds.imports.EarlyImport``, is owned and awaited by its request.)
- A job runs in at most one process: a process claims it by moving it ``queued → running``
  with its owner id and a lease, in one write transaction (``BEGIN IMMEDIATE``; on
  PostgreSQL the write lock, and the job's row taken ``FOR UPDATE SKIP LOCKED``), and every
  chunk re-checks the claim. At most ``max_running_jobs`` jobs are ``running`` or ``pausing``
  across all processes; queued jobs are claimed first in, first out.
- Control requests are written to the job's row (``control``), so any process can make
  them; the runner applies them at its next safe point. Made through another server, they
  are also notified (``_heard``), and stop the chunk in flight at once, as when made here;
  a notification lost is made up for by the chunk's checkpoint, which refuses to commit
  while a control request waits. A terminate requested in this
  process also cancels the job's task so that it stops at its next ``await``; the job id is
  put in ``_terminating`` *before* ``task.cancel()``, so that the job boundary can tell a
  user's terminate from a shutdown.
- A paused job holds nothing: its chunk is committed or rolled back, its worker session is
  closed, it has no transaction, lock or open file, and it does not count against
  ``max_running_jobs``. Its task waits parked on a gate (``_parked``: job id → gate), and
  which path a resume takes depends on where it arrives:

  - through this process, with a run slot free and no job queued for one: one transaction
    moves it ``paused → running`` for this process and opens the gate; the same task goes
    on from its checkpoint (``resume_parked``);
  - otherwise it is re-queued (``paused → queued``); whichever process claims it runs it
    from its checkpoint. When this process claims it, it opens the gate rather than start
    a task (``_start``);
  - when another process claims it, or it is terminated, the parked task ends without
    writing (``_check_parked``, ``release_parked``); so it does when this process stops,
    and the job resumes after a restart exactly as after any stop.
- A job's coroutine ends in exactly one state whatever escapes it. ``_run_job`` is the one
  boundary; the final state is written by a settle task that a second cancellation cannot
  interrupt.
- A claim is renewed every ``lease_s / 3``; a claim that expired (its process died) is
  re-queued with one more attempt, and failed after ``max_attempts``.
"""

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database, is_disk_full, shielded
from collect_api.jobs import store
from collect_api.jobs.broker import Broker
from collect_api.jobs.context import (
    JobContext,
    LeaseLost,
    RunLost,
    SafePointStop,
    ServiceStopping,
)
from collect_api.jobs.failure import JobFailure
from collect_api.jobs.models import ACTIVE, SYSTEM, TERMINAL, Control, Job, JobState
from collect_api.jobs.registry import JobKind
from collect_api.jobs.store import JOB
from collect_api.metrics import Metrics
from collect_api.settings import Settings

log = logging.getLogger("collect.supervisor")

# How long a stop waits for running jobs to reach a safe point before cancelling them.
SAFE_STOP_S = 10.0
# A loop pass or a job's end that failed is tried again after a delay that doubles up to this.
RETRY_MAX_S = 10.0
# How often the WAL's size is looked at, and the size below which it is left alone (SQLite's
# own threshold: 1000 pages of 4 KiB).
CHECKPOINT_INTERVAL_S = 0.5
CHECKPOINT_IDLE_BYTES = 4 * 1024**2
# How often a process looks for jobs whose process died.
RECOVERY_INTERVAL_S = 1.0
# The job a scheduler pass starts next: one left terminating by a dead process (to finish
# rolling it back), else the oldest queued one, if any.
_WAITING = (
    "SELECT id, state FROM job WHERE state = 'queued' OR "
    "(state = 'terminating' AND owner IS NULL) ORDER BY state DESC, queue_seq LIMIT 1"
)
DISK_FULL = {
    "code": "disk_full",
    "message": "the disk is full, so the job could not go on; nothing committed was lost. "
    "Free some space, then submit the job again.",
}


def error_document(exc: BaseException) -> dict[str, Any]:
    """What a failed job's ``error`` says: a sentence a user can act on."""
    if isinstance(exc, JobFailure):
        return exc.document()
    if is_disk_full(exc):
        return DISK_FULL
    return {"code": "internal", "message": f"the job stopped on an unexpected error: {exc}"}


class _Gate:
    """Where a paused job's task waits: opened with the job claimed again for this process,
    or released, after which the task ends without writing."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._job: Job | None = None

    def open(self, job: Job) -> None:
        self._job = job
        self._event.set()

    def release(self) -> None:
        self._event.set()

    async def wait(self) -> Job | None:
        await self._event.wait()
        return self._job


class Supervisor:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        broker: Broker,
        kinds: dict[str, JobKind],
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.settings = settings
        self.broker = broker
        self.kinds = kinds
        self.owner = f"{settings.node_name}/{os.getpid()}/{os.urandom(4).hex()}"
        self._running: dict[str, asyncio.Task[None]] = {}
        self._contexts: dict[str, JobContext] = {}
        # Tasks of paused jobs (still in ``_running``, which owns them) waiting on their gate.
        self._parked: dict[str, _Gate] = {}
        # What pause requests made here wait on: resolved when the job's run has stopped
        # (``_paused``), at the latest when its ``_run_once`` returns.
        self._pausing: dict[str, asyncio.Future[Job | None]] = {}
        # Jobs this process is terminating, with who asked: set before ``task.cancel()``.
        self._terminating: dict[str, str] = {}
        self._settling: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._stopping = asyncio.Event()
        self._last_renewal = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # Jobs whose process is found dead are taken back before the first request is
        # served: from its first answer, the service does not show them running. A failure
        # here is logged, and the scheduler tries again within ``RECOVERY_INTERVAL_S``.
        await self._pass("recovery of abandoned jobs", self._recover_abandoned, 0)
        await self.broker.sync()
        self._loops = [
            asyncio.create_task(self._schedule_forever(), name="collect-scheduler"),
            asyncio.create_task(self._poll_forever(), name="collect-broker"),
            asyncio.create_task(self._housekeep_forever(), name="collect-housekeeping"),
            asyncio.create_task(self._checkpoint_forever(), name="collect-checkpoints"),
        ]
        if self.db.backend == "postgresql":
            self._loops.append(
                asyncio.create_task(self.db.listen(self._heard), name="collect-listener")
            )

    async def close(self, grace_s: float = 30.0) -> None:
        """Refuse new work, stop the loops, bring running jobs to a safe stop, await all."""
        self._closing = True
        for gate in self._parked.values():
            gate.release()  # parked jobs stay paused; their tasks end now
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        # Ask running jobs to stop at their next safe point, between two transactions; a job
        # that does not get there in time is cancelled: its chunk in flight rolls back and
        # its boundary re-queues it, as in the other case.
        self._stopping.set()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=SAFE_STOP_S)
        for task in self._running.values():
            task.cancel()
        pending = [*self._running.values(), *self._settling]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=grace_s)
            for task in still:  # a settle that could not finish in time; its job resumes later
                task.cancel()
            if still:
                await asyncio.wait(still)

    async def has_work(self) -> bool:
        """Whether any job waits for a run or is running (perhaps abandoned by a process
        that stopped)."""
        async with self.db.read() as conn:
            found = await conn.scalar(
                select(JOB.c.id)
                .where(JOB.c.state.in_([JobState.QUEUED, *ACTIVE, JobState.TERMINATING]))
                .limit(1)
            )
        return found is not None

    @property
    def control_wait_s(self) -> float:
        """How long a control request waits for its effect before it answers."""
        return self.settings.control_wait_s

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    # -- control requests ------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many jobs this process runs now (parked ones are paused, not running)."""
        return sum(
            1
            for job_id, task in self._running.items()
            if not task.done() and job_id not in self._parked
        )

    def runs(self, job_id: str) -> bool:
        """Whether this process runs the job now."""
        task = self._running.get(job_id)
        return task is not None and not task.done() and job_id not in self._parked

    def parks(self, job_id: str) -> bool:
        """Whether the job's task waits parked here."""
        return job_id in self._parked

    async def resume_parked(self, job_id: str, *, actor: str) -> Job | None:
        """Resume a job parked here, if a run slot is free and no job is queued for one: it
        moves ``paused → running`` for this process in one transaction, and its task goes on.
        None if it is not parked here or must wait: the caller then re-queues it."""
        if job_id not in self._parked or self._closing:
            return None
        async with self.db.write() as conn:
            job = await store.get_job(conn, job_id=job_id)
            if job.state != JobState.PAUSED:
                return None
            busy = await conn.scalar(
                select(func.count())
                .select_from(JOB)
                .where(JOB.c.state.in_([*ACTIVE, JobState.QUEUED]))
            )
            if (busy or 0) >= self.settings.max_running_jobs or await conn.scalar(
                select(func.count()).select_from(JOB).where(JOB.c.state == JobState.QUEUED)
            ):
                return None
            job = await store.transition(
                conn,
                job,
                JobState.RUNNING,
                actor=actor,
                reason="resume",
                owner=self.owner,
                lease_expires_at=time.time() + self.settings.lease_s,
            )
        self._start(job)  # opens its gate, or starts a task if the parked one has ended
        return job

    def release_parked(self, job_id: str) -> None:
        """End the parked task of a job that ended or went elsewhere."""
        gate = self._parked.get(job_id)
        if gate is not None:
            gate.release()

    def request_pause(
        self, job_id: str, *, tenant: str, actor: str
    ) -> "asyncio.Future[Job | None] | None":
        """Pause a job of ``tenant`` running here at its next safe point, rolling back the
        chunk in flight. The future gives the job as its pause was recorded, or None if its
        run ended otherwise (completed, failed, terminated, taken elsewhere; or the pause was
        withdrawn); None if the job does not run here for that tenant."""
        ctx = self._contexts.get(job_id)
        if (
            ctx is None
            or ctx.job.tenant != tenant
            or job_id in self._terminating
            or not self.runs(job_id)
        ):
            return None
        ctx.request_stop(Control.PAUSE, actor=actor)
        pausing = self._pausing.get(job_id)
        if pausing is None:
            pausing = self._pausing[job_id] = asyncio.get_running_loop().create_future()
        return pausing

    def withdraw_pause(self, job_id: str) -> bool:
        """Forget a pause asked of a job here that it has not acted on yet."""
        ctx = self._contexts.get(job_id)
        if ctx is None or ctx.withdraw_stop():
            self._paused(job_id, None)
            return True
        return False

    def _paused(self, job_id: str, job: Job | None) -> None:
        """Answer the pause requests waiting on a run of the job: ``job`` as paused, or None."""
        pausing = self._pausing.pop(job_id, None)
        if pausing is not None and not pausing.done():
            pausing.set_result(job)

    def cancel_for_terminate(self, job_id: str, *, actor: str) -> None:
        """Stop a job running here at its next await; its boundary rolls it back."""
        task = self._running.get(job_id)
        if task is not None and not task.done():
            self._terminating[job_id] = actor  # before cancel(): tells the boundary why
            task.cancel()

    def _heard(self, payload: str) -> None:
        """A notification from a server sharing the database (``Database.listen``): a change
        to look at now rather than at the next poll, or a control request made elsewhere for
        a job, acted on here as if it had been made here if this process runs the job."""
        if not payload:  # a chunk's progress: for streams only, and not more than they show
            self.broker.progressed()
            return
        self.broker.changed.set()
        self._wake.set()
        what, _, job_id = payload.partition(" ")
        if not job_id or job_id in self._terminating:
            return
        if what == Control.PAUSE and self.runs(job_id) and job_id in self._contexts:
            self._contexts[job_id].request_stop(Control.PAUSE, actor=None)
        elif what == "resume" and self.runs(job_id):
            self.withdraw_pause(job_id)
        elif what == Control.TERMINATE and self.runs(job_id):
            self.cancel_for_terminate(job_id, actor=SYSTEM)  # its row says who asked
        elif what == "release":
            self.release_parked(job_id)

    # -- scheduling --------------------------------------------------------------------------

    async def _schedule_forever(self) -> None:
        last_recovery = float("-inf")

        async def schedule() -> None:
            nonlocal last_recovery
            await self._renew_leases()
            # Looking for dead processes' jobs takes a query; once a second is soon enough.
            if time.monotonic() - last_recovery >= RECOVERY_INTERVAL_S:
                last_recovery = time.monotonic()
                await self._recover_abandoned()
                await self._check_parked()
            while not self._closing and await self._claim_next():
                pass

        failures = 0
        while True:
            failures = await self._pass("scheduler", schedule, failures)
            # Woken by a change (here, or notified from elsewhere), else after the poll
            # interval; leases are renewed and dead processes looked for on time however
            # long that interval is. After a failure, the growing delay.
            pause = self._delay(failures)
            if not failures:
                pause = min(pause, RECOVERY_INTERVAL_S, self.settings.lease_s / 3)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            self._wake.clear()

    async def _poll_forever(self) -> None:
        failures = 0
        changed = self.broker.changed
        while True:
            changed.clear()
            failures = await self._pass("event poll", self.broker.poll, failures)
            if failures:
                await asyncio.sleep(self._delay(failures))
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await changed.wait()  # a commit of this process, or the interval

    async def _housekeep_forever(self) -> None:
        while True:
            await asyncio.to_thread(self.db.keep_reserve, self.settings.disk_reserve_bytes)
            if self.db.disk_full and await self.db.recover_room(self.settings.disk_reserve_bytes):
                log.warning("the disk has room again; writes go on")
            for kind in self.kinds.values():
                housekeep = functools.partial(kind.housekeep, self.db)
                await self._pass(f"housekeeping of {kind.name} jobs", housekeep, 0)
            # While the disk is full, look for room again every second.
            interval = self.settings.housekeeping_interval_s
            await asyncio.sleep(min(interval, 1.0) if self.db.disk_full else interval)

    async def _checkpoint_forever(self) -> None:
        """Copy the WAL into the database file while no job runs here, or once it has grown
        past ``checkpoint_wal_bytes`` even while jobs run: a chunk's commit never waits for a
        checkpoint, and a long import pays for one only on a very large WAL."""
        failures = 0
        while True:
            await asyncio.sleep(self._delay(failures) if failures else CHECKPOINT_INTERVAL_S)
            wal = self.db.wal_bytes()
            if wal < CHECKPOINT_IDLE_BYTES or self.db.disk_full:
                continue
            if self.running and wal < self.settings.checkpoint_wal_bytes:
                continue

            async def checkpoint() -> None:
                await self.db.checkpoint()

            failures = await self._pass("WAL checkpoint", checkpoint, failures)

    async def _pass(self, what: str, work: Callable[[], Awaitable[None]], failures: int) -> int:
        """One pass of a loop, shielded, so that ``close()`` never cancels a driver call; the
        consecutive failures so far, logged the first time and then now and then."""
        try:
            await shielded(work)
        except Exception as exc:
            if is_disk_full(exc):
                self.db.disk_full = True
            if failures == 0:
                log.exception("%s failed; retrying", what)
            elif failures % 50 == 0:
                log.warning("%s still failing (%d times): %s", what, failures + 1, exc)
            return failures + 1
        if failures:
            log.warning("%s works again after %d failures", what, failures)
        return 0

    def _delay(self, failures: int) -> float:
        """The poll interval, doubled for each consecutive failure up to ``RETRY_MAX_S``."""
        interval = self.settings.poll_interval_s
        return min(interval * 2 ** min(failures, 16), max(interval, RETRY_MAX_S))

    async def _claim_next(self) -> bool:
        """Claim the oldest queued job if a run slot is free; True if one was started."""
        # Looked for in one statement (``Database.points``): most passes find nothing.
        waiting = await self.db.points.one(_WAITING)
        if waiting is None:
            return False
        waiting_id, waiting_state = waiting
        orphan = waiting_id if waiting_state == JobState.TERMINATING else None
        async with self.db.write() as conn:
            if orphan is not None:
                job = await store.get_job(conn, job_id=orphan)
                if job.state == JobState.TERMINATING and job.owner is None:
                    job = await store.update_job(
                        conn,
                        job,
                        owner=self.owner,
                        lease_expires_at=time.time() + self.settings.lease_s,
                    )
                    self._start(job)
                    return True
            active = await conn.scalar(
                select(func.count()).select_from(JOB).where(JOB.c.state.in_(list(ACTIVE)))
            )
            if (active or 0) >= self.settings.max_running_jobs:
                return False
            row = (
                await conn.execute(
                    select(JOB.c.id)
                    .where(JOB.c.state == JobState.QUEUED)
                    .order_by(JOB.c.queue_seq)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return False
            job = await store.get_job(conn, job_id=row.id)
            job = await store.transition(
                conn,
                job,
                JobState.RUNNING,
                actor=SYSTEM,
                reason="a run slot is free",
                owner=self.owner,
                lease_expires_at=time.time() + self.settings.lease_s,
            )
        self._start(job)
        return True

    async def _check_parked(self) -> None:
        """End the parked tasks of jobs that are no longer paused or queued here: claimed by
        another process, or terminated through one."""
        if not self._parked:
            return
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(JOB.c.id, JOB.c.state, JOB.c.owner).where(
                        JOB.c.id.in_(list(self._parked))
                    )
                )
            ).all()
        found = {row.id: row for row in rows}
        for job_id in list(self._parked):
            row = found.get(job_id)
            waiting = row is not None and row.state in (JobState.PAUSED, JobState.QUEUED)
            if not waiting and (row is None or row.owner != self.owner):
                self.release_parked(job_id)

    async def _renew_leases(self) -> None:
        now = time.time()
        if not self._running or now - self._last_renewal < self.settings.lease_s / 3:
            return
        self._last_renewal = now
        async with self.db.write() as conn:
            await conn.execute(
                update(JOB)
                .where(JOB.c.owner == self.owner, JOB.c.id.in_(list(self._running)))
                .values(lease_expires_at=now + self.settings.lease_s)
            )

    def _abandoned(
        self, job_id: str, owner: str, lease_expires_at: float | None, now: float
    ) -> bool:
        """Whether a claim's process is gone: its lease expired, or it ran on this host and
        its process no longer exists (found at once after a crash, without the lease). A
        claim of this process is abandoned only if no task runs the job and the lease ran
        out: its end could not be recorded (a full disk, say)."""
        expired = lease_expires_at is not None and lease_expires_at < now
        if owner == self.owner:
            return expired and job_id not in self._running
        if expired:
            return True
        host, _, rest = owner.partition("/")
        pid = rest.partition("/")[0]
        return host == self.settings.node_name and pid.isdigit() and not _pid_alive(int(pid))

    async def _recover_abandoned(self) -> None:
        """Take back jobs whose process died: re-queue them from their checkpoint with one
        more attempt, fail them after ``max_attempts``, finish their termination."""
        now = time.time()
        async with self.db.read() as conn:
            held = (
                await conn.execute(
                    select(JOB.c.id, JOB.c.owner, JOB.c.lease_expires_at).where(
                        JOB.c.owner.is_not(None)
                    )
                )
            ).all()
        candidates = [r.id for r in held if self._abandoned(r.id, r.owner, r.lease_expires_at, now)]
        if not candidates:
            return
        failed: list[Job] = []
        async with self.db.write() as conn:
            for job_id in candidates:
                job = await store.get_job(conn, job_id=job_id)
                if job.owner is None or not self._abandoned(
                    job.id, job.owner, job.lease_expires_at, now
                ):
                    continue  # another process got there first
                log.warning("job %s lost its process %s; taking it back", job.id, job.owner)
                attempts = job.attempts + 1
                if job.state == JobState.TERMINATING:
                    await store.update_job(conn, job, owner=None, lease_expires_at=None)
                elif attempts >= self.settings.max_attempts:
                    await self.kinds[job.kind].undo_writes(conn, job)
                    failed.append(
                        await store.transition(
                            conn,
                            job,
                            JobState.FAILED,
                            actor=SYSTEM,
                            reason="interrupted too often",
                            attempts=attempts,
                            error={
                                "code": "too_many_attempts",
                                "message": f"the job's process stopped {attempts} times while "
                                "running it (COLLECT_MAX_ATTEMPTS); it was given up. Check "
                                "the input and submit it again.",
                            },
                        )
                    )
                else:
                    await _release_claim(
                        conn,
                        job,
                        reason="its process stopped; it resumes from its last checkpoint",
                        attempts=attempts,
                    )
        for job in failed:
            self.kinds[job.kind].delete_files(job)
        self.wake()

    # -- running one job ---------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        """Run a job claimed for this process: on its parked task if it has one."""
        gate = self._parked.get(job.id)
        if gate is not None:
            gate.open(job)
            return
        task = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(functools.partial(self._forget, job.id))

    def _forget(self, job_id: str, _task: "asyncio.Task[None] | None" = None) -> None:
        self._running.pop(job_id, None)
        self._parked.pop(job_id, None)
        self._contexts.pop(job_id, None)
        self._terminating.pop(job_id, None)
        self.wake()  # a run slot is free

    async def _run_job(self, job: Job) -> None:
        """A job's task: runs of the job, parked on its gate between a pause and a resume."""
        while await self._run_once(job):
            claimed = await self._park(job.id)
            if claimed is None:
                return
            job = claimed

    async def _park(self, job_id: str) -> Job | None:
        """Wait paused for a resume here (the job claimed again for this process), or None
        when the task is to end: the job went elsewhere, ended, or this process stops."""
        if self._closing:
            return None
        gate = _Gate()
        self._parked[job_id] = gate
        self._contexts.pop(job_id, None)
        self.wake()  # its run slot is free
        try:
            return await gate.wait()
        finally:
            self._parked.pop(job_id, None)

    async def _run_once(self, job: Job) -> bool:
        """The job boundary: whatever happens, the job ends this run in exactly one state.
        True if it is now paused, its task free to park."""
        kind = self.kinds[job.kind]
        if job.state == JobState.TERMINATING:  # claimed only to finish a termination
            await self._settle(lambda: self._end(job.id, JobState.TERMINATED, reason="terminated"))
            return False
        ctx = JobContext(
            job=job,
            db=self.db,
            settings=self.settings,
            owner=self.owner,
            stopping=self._stopping,
            metrics=self.metrics,
        )
        self._contexts[job.id] = ctx
        try:
            return await self._run_kind(kind, ctx)
        finally:
            self._paused(job.id, None)  # if it did not pause, a pause request reads the row

    async def _run_kind(self, kind: JobKind, ctx: JobContext) -> bool:
        job = ctx.job
        try:
            await kind.run(ctx)
        except SafePointStop as stop:
            if stop.control == Control.PAUSE:
                actor = stop.actor
                paused: list[Job | None] = []

                async def pause() -> None:
                    paused.append(await self._pause(job.id, actor=actor))

                await self._settle(pause)
                if paused and paused[-1] is not None:
                    self._paused(job.id, paused[-1])
                    return True
                return False
            else:
                await self._settle(
                    lambda: self._end(job.id, JobState.TERMINATED, reason="terminated")
                )
        except ServiceStopping:
            await self._settle(lambda: self._interrupt(job.id))
        except RunLost as exc:
            if job.attempts + 1 >= self.settings.max_attempts:
                log.warning("job %s lost its run again (%s); giving up", job.id, exc)
                error = {
                    "code": "too_many_attempts",
                    "message": f"the job's run stopped {job.attempts + 1} times ({exc}); it was "
                    "given up. Check the input and submit it again.",
                }
                await self._settle(
                    lambda: self._end(
                        job.id, JobState.FAILED, reason="interrupted too often", error=error
                    )
                )
            else:
                log.warning("job %s lost its run (%s); it resumes from its checkpoint", job.id, exc)
                await self._settle(lambda: self._interrupt(job.id, lost=True))
        except LeaseLost:
            log.warning("job %s was taken over by another process; stopping here", job.id)
        except asyncio.CancelledError:
            if job.id in self._terminating:
                # The user's terminate: the chunk in flight has rolled back; undo the rest.
                await self._settle(
                    lambda: self._end(job.id, JobState.TERMINATED, reason="terminated")
                )
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                return False
            # The service is stopping: the job resumes from its checkpoint on the next start.
            await self._settle(lambda: self._interrupt(job.id))
            raise
        except Exception as exc:
            log.warning("job %s failed: %s", job.id, exc, exc_info=not _expected(exc))
            failure = error_document(exc)
            await self._settle(
                lambda: self._end(job.id, JobState.FAILED, reason="failed", error=failure)
            )
        else:
            self.kinds[job.kind].delete_files(ctx.job)
        return False

    async def _settle(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Record a job's new state (``make()``) to completion even if the caller is cancelled
        meanwhile. A database that refuses the write (a full disk, a lock held too long) is
        asked again with a growing delay until the service stops: the job stays this
        process's meanwhile, and nothing else takes it for abandoned."""

        async def settle() -> None:
            delay = self.settings.poll_interval_s
            while True:
                try:
                    return await make()
                except OperationalError as exc:
                    if self._closing:
                        raise
                    if is_disk_full(exc):
                        self.db.disk_full = True
                    log.error(
                        "a job's new state cannot be written (%s); trying again in %.1f s",
                        exc,
                        delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

        task = asyncio.create_task(shielded(settle))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        cancelled: asyncio.CancelledError | None = None
        while not task.done():
            try:
                # wait(), unlike awaiting the task, neither raises its error nor cancels it.
                await asyncio.wait({task})
            except asyncio.CancelledError as exc:
                cancelled = exc  # finish writing the state first, then honour it
        if cancelled is not None:
            raise cancelled
        if not task.cancelled() and task.exception() is not None:
            # The job stays as it was; its lease runs out and recovery takes it from there.
            log.error("could not record the end of a job", exc_info=task.exception())

    async def _pause(self, job_id: str, *, actor: str | None) -> Job | None:
        """Record the job paused at its safe point. ``actor`` asked for it in this process,
        so the job's row is still ``running``: the request is recorded here too. The job as
        paused, or None if it is not (terminated, or taken elsewhere)."""
        paused = None
        async with self.db.write() as conn:
            job = await store.get_job(conn, job_id=job_id)
            terminate = job.state == JobState.TERMINATING
            if job.state == JobState.RUNNING and actor is None and job.owner == self.owner:
                # Asked through another server, then withdrawn by a resume after this run's
                # chunk in flight had rolled back: the job goes on from its checkpoint in a
                # new run.
                await _release_claim(
                    conn, job, reason="resumed before its pause; it goes on from its checkpoint"
                )
                return None
            if job.state == JobState.RUNNING and actor is not None and job.owner == self.owner:
                job = await store.transition(
                    conn, job, JobState.PAUSING, actor=actor, reason="pause"
                )
            if job.state in ACTIVE and job.owner == self.owner:
                paused = await store.transition(
                    conn,
                    job,
                    JobState.PAUSED,
                    actor=SYSTEM,
                    reason="stopped at a safe point",
                    owner=None,
                    lease_expires_at=None,
                    control=None,
                )
        if terminate:  # a terminate overtook the pause: honour the terminate
            await self._end(job_id, JobState.TERMINATED, reason="terminated")
        return paused

    async def _interrupt(self, job_id: str, *, lost: bool = False) -> None:
        """Give the job's claim back: it resumes from its checkpoint, here or elsewhere.
        ``lost``: its run failed (not the service's stop), which counts as an attempt."""
        async with self.db.write() as conn:
            job = await store.get_job(conn, job_id=job_id)
            if job.owner != self.owner:
                return
            if job.state == JobState.TERMINATING:
                # Finish it on the next start (or in another process).
                await store.update_job(conn, job, owner=None, lease_expires_at=None)
            elif job.state in ACTIVE:
                await _release_claim(
                    conn,
                    job,
                    reason="its run failed; it resumes from its last checkpoint"
                    if lost
                    else "interrupted: the service stopped; it resumes from its checkpoint",
                    **({"attempts": job.attempts + 1} if lost else {}),
                )
        self.wake()

    async def _end(
        self, job_id: str, state: JobState, *, reason: str, error: dict[str, Any] | None = None
    ) -> None:
        """Roll the job's writes back and record its terminal state, in one transaction.

        When the disk is full, the reserve kept for this is given back and the end tried
        again; failing that, the end is recorded alone and the kind's housekeeping undoes the
        writes (invisible to users meanwhile) once there is room. If not even that fits, the
        end is tried again with a growing delay until it is written or the service stops:
        the job stays this process's, so nothing else takes it for abandoned.
        """
        delay = self.settings.poll_interval_s
        while True:
            try:
                job = await self._record_end(job_id, state, reason=reason, error=error, undo=True)
                break
            except OperationalError as exc:
                problem: OperationalError = exc
            if is_disk_full(problem):
                self.db.disk_full = True
                if await asyncio.to_thread(self.db.give_back_reserve):
                    log.warning("the disk is full while ending job %s: reserve given", job_id)
                    continue
                try:
                    job = await self._record_end(
                        job_id, state, reason=reason, error=error or DISK_FULL, undo=False
                    )
                    break
                except OperationalError as exc:
                    problem = exc
            if self._closing:
                log.error(
                    "job %s could not be ended (%s); it ends on the next start", job_id, problem
                )
                return
            log.error(
                "the end of job %s cannot be written (%s); trying again in %.1f s",
                job_id,
                problem,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        if job is not None:
            self.kinds[job.kind].delete_files(job)

    async def _record_end(
        self,
        job_id: str,
        state: JobState,
        *,
        reason: str,
        error: dict[str, Any] | None,
        undo: bool,
    ) -> Job | None:
        async with self.db.write() as conn:
            job = await store.get_job(conn, job_id=job_id)
            if job.state in TERMINAL:
                return None
            if undo:
                await self.kinds[job.kind].undo_writes(conn, job)
            if job.state == JobState.TERMINATING:  # a user's terminate wins over a failure
                state, error = JobState.TERMINATED, None
            if job.state != JobState.TERMINATING and state == JobState.TERMINATED:
                job = await store.transition(
                    conn,
                    job,
                    JobState.TERMINATING,
                    actor=self._terminating.get(job_id, SYSTEM),
                    reason="terminate",
                )
            return await store.transition(
                conn, job, state, actor=SYSTEM, reason=reason, error=error
            )


async def _release_claim(conn: AsyncConnection, job: Job, *, reason: str, **changes: Any) -> None:
    """A running job its process gave up: queued to run again from its checkpoint, or
    paused if a pause was asked for."""
    await store.transition(
        conn,
        job,
        JobState.PAUSED if job.control == Control.PAUSE else JobState.QUEUED,
        actor=SYSTEM,
        reason=reason,
        owner=None,
        lease_expires_at=None,
        control=None,
        **changes,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _expected(exc: BaseException) -> bool:
    return isinstance(exc, JobFailure)
