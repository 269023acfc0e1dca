"""Reading and changing job rows. Every change bumps the job's ``rev``; every state change
also writes a history row holding the job as it became, in the same transaction.

The functions take an open connection: the caller owns the transaction, and changes must be
made in a write transaction (``Database.write``) so that reading the state and changing it
cannot be interleaved with another writer.
"""

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import JSON, ColumnElement, Update, bindparam, func, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database, announce, on_commit
from collect_api.errors import InvalidTransition, JobNotFound
from collect_api.ids import is_job_id, utcnow
from collect_api.jobs.models import (
    TERMINAL,
    Job,
    JobHistory,
    JobState,
    can_move,
)
from collect_api.jobs.progress import Progress

log = logging.getLogger("collect.jobs")

JOB = Job.__table__  # type: ignore[attr-defined]
HISTORY = JobHistory.__table__  # type: ignore[attr-defined]


# Parameters a kind keeps for itself (file paths and the like), never shown to users.
def job_document(job: Job) -> dict[str, Any]:
    """The job as the API shows it: ``GET /jobs/{id}``, SSE data, history snapshots."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "params": job.params,
        "progress": _progress_as_shown(job),
        "result": job.result,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }


# States in which a job works, so that a rate and a time left mean something.
_WORKING = frozenset({JobState.RUNNING, JobState.PAUSING})


def _progress_as_shown(job: Job) -> dict[str, Any]:
    """The stored progress, with no rate and no time left unless the job is working (or
    completed: its rate is that of its last run, its time left 0)."""
    progress = job.progress
    if job.state in _WORKING or job.state == JobState.COMPLETED or not progress:
        return progress
    if progress.get("rate_per_s") is None and progress.get("eta_s") is None:
        return progress
    return {**progress, "rate_per_s": None, "eta_s": None}


# What a change of state is called in the log, by the state it leaves and the one it enters;
# the others are called by the state entered.
_CHANGES: dict[tuple[str | None, str], str] = {
    (None, JobState.QUEUED): "submitted",
    (JobState.QUEUED, JobState.RUNNING): "started",
    (JobState.PAUSED, JobState.RUNNING): "resumed",
    (JobState.PAUSED, JobState.QUEUED): "resumed",
    (JobState.PAUSING, JobState.RUNNING): "resumed",
    (JobState.RUNNING, JobState.PAUSING): "pausing",
    (JobState.RUNNING, JobState.QUEUED): "interrupted",
    (JobState.PAUSING, JobState.QUEUED): "interrupted",
}


def _log_change(job: Job, from_state: str | None, actor: str, reason: str | None) -> None:
    """One INFO line for each committed change of a job's state (the log's formatter adds
    the job's id): its kind, the change, who made it, and why when it failed or was
    interrupted."""
    change = _CHANGES.get((from_state, job.state), str(job.state))
    because = ""
    if job.state == JobState.FAILED:
        because = f": {(job.error or {}).get('message') or reason}"
    elif change == "interrupted" and reason:
        because = f": {reason}"
    log.info("%s job %s by %s%s", job.kind, change, actor, because, extra={"job_id": job.id})


def job_of(row: Any) -> Job:
    """The job a row of ``JOB`` holds."""
    return Job.model_validate(dict(row._mapping))


async def next_rev(conn: AsyncConnection) -> int:
    """The next revision; revisions increase in commit order because writers are serialised."""
    value = await conn.scalar(select(func.coalesce(func.max(JOB.c.rev), 0)))
    return int(value or 0) + 1


async def claim_of(conn: AsyncConnection, *, job_id: str) -> tuple[str, str | None, str | None]:
    """A job's ``(state, owner, control)``: what a runner checks at each safe point."""
    row = (
        await conn.execute(
            select(JOB.c.state, JOB.c.owner, JOB.c.control).where(JOB.c.id == job_id)
        )
    ).one()
    return row.state, row.owner, row.control


# A job's row by its id, and by its id within a tenant, for ``Database.points``.
_COLUMNS = [column.name for column in JOB.columns]
_JSON_COLUMNS = frozenset(column.name for column in JOB.columns if isinstance(column.type, JSON))
_BY_ID = f"SELECT {', '.join(_COLUMNS)} FROM job WHERE id = ?"
_BY_TENANT_ID = f"{_BY_ID} AND tenant = ?"


async def read_job(db: Database, *, job_id: str, tenant: str | None = None) -> Job:
    """The job as it is now, read in one statement (``Database.points``): the same job as
    ``get_job`` in a read transaction gives, for the requests clients repeat."""
    if not is_job_id(job_id):
        raise JobNotFound(job_id)
    if tenant is None:
        row = await db.points.one(_BY_ID, job_id)
    else:
        row = await db.points.one(_BY_TENANT_ID, job_id, tenant)
    if row is None:
        raise JobNotFound(job_id)
    values = {
        name: json.loads(value) if name in _JSON_COLUMNS and value is not None else value
        for name, value in zip(_COLUMNS, row, strict=True)
    }
    return Job.model_validate(values)


async def get_job(conn: AsyncConnection, *, job_id: str, tenant: str | None = None) -> Job:
    if not is_job_id(job_id):
        raise JobNotFound(job_id)
    query = select(JOB).where(JOB.c.id == job_id)
    if tenant is not None:
        query = query.where(JOB.c.tenant == tenant)
    row = (await conn.execute(query)).first()
    if row is None:
        raise JobNotFound(job_id)
    return job_of(row)


class StateChange(NamedTuple):
    """A state change of the audit trail: its revision, and the job as it then was."""

    rev: int
    snapshot: dict[str, Any]


async def states_since(
    conn: AsyncConnection, *, tenant: str, rev: int, job_id: str | None = None
) -> list[StateChange]:
    """The state changes after revision ``rev`` (none for 0) of the tenant's jobs, or of
    one of them, in order: what an event stream that reconnects has missed."""
    if not rev:
        return []
    query = (
        select(HISTORY.c.rev, HISTORY.c.snapshot)
        .join(JOB, JOB.c.id == HISTORY.c.job_id)
        .where(JOB.c.tenant == tenant, HISTORY.c.rev > rev)
    )
    if job_id is not None:
        query = query.where(HISTORY.c.job_id == job_id)
    return [
        StateChange(r.rev, r.snapshot) for r in await conn.execute(query.order_by(HISTORY.c.rev))
    ]


async def last_rev(conn: AsyncConnection) -> int:
    """The revision of the latest change of any job."""
    return int(await conn.scalar(select(func.max(JOB.c.rev))) or 0)


async def jobs_to_show(conn: AsyncConnection, *, tenant: str, changed_after: int) -> list[Job]:
    """The tenant's jobs changed after revision ``changed_after``; with 0, those not yet
    final."""
    query = select(JOB).where(JOB.c.tenant == tenant)
    if changed_after:
        query = query.where(JOB.c.rev > changed_after)
    else:
        query = query.where(JOB.c.state.not_in(list(TERMINAL)))
    return [job_of(r) for r in await conn.execute(query)]


async def jobs_by_id(conn: AsyncConnection, *, ids: list[str]) -> dict[str, Job]:
    found: dict[str, Job] = {}
    for start in range(0, len(ids), 500):
        rows = await conn.execute(select(JOB).where(JOB.c.id.in_(ids[start : start + 500])))
        found.update({row.id: job_of(row) for row in rows})
    return found


async def completed_before(conn: AsyncConnection, *, kind: str, before: str) -> list[Job]:
    rows = await conn.execute(
        select(JOB).where(
            JOB.c.kind == kind, JOB.c.state == JobState.COMPLETED, JOB.c.finished_at < before
        )
    )
    return [job_of(row) for row in rows]


async def list_jobs(
    conn: AsyncConnection,
    *,
    tenant: str,
    state: str | None,
    kind: str | None,
    after: str | None,
    limit: int,
) -> list[Job]:
    query = select(JOB).where(JOB.c.tenant == tenant)
    if state is not None:
        query = query.where(JOB.c.state == state)
    if kind is not None:
        query = query.where(JOB.c.kind == kind)
    if after is not None:
        query = query.where(JOB.c.id < after)
    rows = await conn.execute(query.order_by(JOB.c.id.desc()).limit(limit))
    return [job_of(row) for row in rows]


async def insert_job(
    conn: AsyncConnection,
    *,
    job_id: str,
    tenant: str,
    kind: str,
    params: dict[str, Any],
    progress: Progress,
    actor: str,
    private: Mapping[str, Any] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> Job:
    rev = await next_rev(conn)
    now = utcnow()
    job = Job(
        id=job_id,
        tenant=tenant,
        kind=kind,
        state=JobState.QUEUED,
        params=params,
        private=dict(private or {}),
        progress=progress.document(),
        checkpoint=dict(checkpoint) if checkpoint is not None else None,
        queue_seq=rev,
        rev=rev,
        created_at=now,
        updated_at=now,
    )
    await conn.execute(insert(JOB).values(**job.model_dump()))
    await _record(conn, job=job, from_state=None, actor=actor, reason="submitted")
    announce(conn)  # for every server's scheduler, on PostgreSQL
    return job


async def update_job(conn: AsyncConnection, job: Job, **changes: Any) -> Job:
    """Change fields other than ``state`` (progress, checkpoint, lease, ...)."""
    assert "state" not in changes, "use transition() to change a job's state"
    values = {**changes, "rev": await next_rev(conn), "updated_at": utcnow()}
    await conn.execute(update(JOB).where(JOB.c.id == job.id).values(**values))
    return job.model_copy(update=values)


def checkpoint_update(
    *,
    job_id: str,
    owner: str,
    checkpoint: Mapping[str, Any],
    progress: Progress,
    lease_expires_at: float,
    provided: Sequence[ColumnElement[bool]] = (),
) -> Update:
    """``update_job`` of a checkpoint, to run in the transaction of the chunk it covers: it
    applies (and returns the new ``rev``) only while the job is running in the claim of
    ``owner`` with no control request waiting, and what the kind adds (``provided``) holds."""
    return _checkpoint_update(
        job_id=job_id,
        owner=owner,
        provided=provided,
        checkpoint=dict(checkpoint),
        progress=progress.document(),
        lease_expires_at=lease_expires_at,
        updated_at=utcnow(),
    )


def _checkpoint_update(
    *, job_id: str, owner: str, provided: Sequence[ColumnElement[bool]], **values: Any
) -> Update:
    return (
        update(JOB)
        .where(
            JOB.c.id == job_id,
            JOB.c.owner == owner,
            JOB.c.state == JobState.RUNNING.value,
            JOB.c.control.is_(None),
            *provided,
        )
        .values(
            **values,
            rev=select(func.coalesce(func.max(JOB.c.rev), 0) + 1).scalar_subquery(),
        )
        .returning(JOB.c.rev)
    )


# How the data plane's workers mark parameters: ``?`` on SQLite; ``$1::TYPE`` on PostgreSQL,
# whose casts also make JSON of the text the worker's driver binds.
_WORKER_DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": asyncpg.dialect()}


class CheckpointStatement:
    """``checkpoint_update`` of one run's chunks as SQL text and positional values, for the
    data plane's worker to run on its own connection to the ``backend`` database. It is
    compiled once, with what stays the same for the run (the job, its claim, ``provided``);
    each call gives the values of one chunk's checkpoint. Compiling took about as long as
    the rest of a chunk's work in this process."""

    _CHANGING = ("checkpoint", "progress", "lease_expires_at", "updated_at")

    def __init__(
        self,
        backend: str,
        *,
        job_id: str,
        owner: str,
        provided: Sequence[ColumnElement[bool]] = (),
    ) -> None:
        dialect = _WORKER_DIALECTS[backend]
        changing = {
            name: bindparam(f"new_{name}", type_=JOB.c[name].type) for name in self._CHANGING
        }
        compiled = _checkpoint_update(
            job_id=job_id, owner=owner, provided=provided, **changing
        ).compile(dialect=dialect)
        self._compiled = compiled
        self.sql = str(compiled)
        self._processors = [
            (key, compiled.binds[key].type.bind_processor(dialect))
            for key in compiled.positiontup or ()
        ]

    def __call__(
        self, *, checkpoint: Mapping[str, Any], progress: Progress, lease_expires_at: float
    ) -> tuple[str, list[Any]]:
        values = self._compiled.construct_params(
            {
                "new_checkpoint": dict(checkpoint),
                "new_progress": progress.document(),
                "new_lease_expires_at": lease_expires_at,
                "new_updated_at": utcnow(),
            }
        )
        return self.sql, [
            process(values[key]) if process else values[key] for key, process in self._processors
        ]


async def transition(
    conn: AsyncConnection,
    job: Job,
    to: JobState,
    *,
    actor: str,
    reason: str | None = None,
    **changes: Any,
) -> Job:
    """Move ``job`` (as just read in this transaction) to state ``to`` and record it."""
    src = JobState(job.state)
    if not can_move(src, to):
        raise InvalidTransition(job.id, src, to)
    rev = await next_rev(conn)
    now = utcnow()
    values: dict[str, Any] = {"state": to, "rev": rev, "updated_at": now, **changes}
    if to == JobState.RUNNING and job.started_at is None:
        values["started_at"] = now
    if to == JobState.QUEUED:
        values["queue_seq"] = rev
    if to in TERMINAL:
        values["finished_at"] = now
        values.setdefault("control", None)
        values.setdefault("owner", None)
        values.setdefault("lease_expires_at", None)
    await conn.execute(update(JOB).where(JOB.c.id == job.id).values(**values))
    new = job.model_copy(update=values)
    await _record(conn, job=new, from_state=src, actor=actor, reason=reason)
    announce(conn)  # waiters and streams of this process hear of it at once
    return new


async def history(conn: AsyncConnection, *, job_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(HISTORY).where(HISTORY.c.job_id == job_id).order_by(HISTORY.c.rev)
    )
    return [
        {
            "at": r.at,
            "from_state": r.from_state,
            "to_state": r.to_state,
            "actor": r.actor,
            "reason": r.reason,
        }
        for r in rows
    ]


async def _record(
    conn: AsyncConnection, *, job: Job, from_state: str | None, actor: str, reason: str | None
) -> None:
    on_commit(conn, functools.partial(_log_change, job, from_state, actor, reason))
    await conn.execute(
        insert(HISTORY).values(
            job_id=job.id,
            rev=job.rev,
            from_state=from_state,
            to_state=job.state,
            actor=actor,
            reason=reason,
            at=job.updated_at,
            snapshot=job_document(job),
        )
    )
