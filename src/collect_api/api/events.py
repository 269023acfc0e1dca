"""Server-Sent Events: one job's changes, or all the caller's jobs' changes.

Every event's ``data`` is the job document (as ``GET /jobs/{id}``), its ``event`` says why it
was sent (``snapshot``, ``progress``, ``state``) and its ``id`` is the job's revision, which
increases with every change. A client reconnecting with ``Last-Event-ID`` first gets every
state change it missed, replayed from the audit trail, then the job as it is now.
"""

from collections.abc import AsyncIterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import func, select

from collect_api.api.deps import ServicesDep, TenantDep, row_key
from collect_api.api.schemas import PROBLEM_RESPONSES
from collect_api.jobs import store
from collect_api.jobs.models import TERMINAL
from collect_api.jobs.store import HISTORY, JOB

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


def _event(kind: str, rev: int, document: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(event=kind, id=str(rev), data=document)


async def _existing_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> str:
    """404 before the stream starts: once it has, the status is sent."""
    async with services.db.read() as conn:
        await store.get_job(conn, job_id=job_id, tenant=tenant)
    return job_id


def _since(last_event_id: str | None) -> int:
    return row_key(last_event_id) or 0


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Follow one job: a snapshot, then progress and state events until it ends",
)
async def job_events(
    job_id: Annotated[str, Depends(_existing_job)],
    services: ServicesDep,
    tenant: TenantDep,
    last_event_id: LastEventId = None,
) -> AsyncIterable[ServerSentEvent]:
    since = _since(last_event_id)
    with services.broker.subscribe(tenant=tenant, job_id=job_id) as sub:
        # Read after subscribing: whatever changes from here on reaches the subscription.
        async with services.db.read() as conn:
            job = await store.get_job(conn, job_id=job_id, tenant=tenant)
            missed = (
                (
                    await conn.execute(
                        select(HISTORY.c.rev, HISTORY.c.snapshot)
                        .where(HISTORY.c.job_id == job_id, HISTORY.c.rev > since)
                        .order_by(HISTORY.c.rev)
                    )
                ).all()
                if since
                else []
            )
        last = since
        for row in missed:
            yield _event("state", row.rev, row.snapshot)
            last = row.rev
        if job.rev > last:
            yield _event("snapshot", job.rev, store.job_document(job))
            last = job.rev
        if job.state in TERMINAL:
            return
        async for event in sub.events():
            if event.rev <= last:
                continue
            yield _event(event.kind, event.rev, event.document)
            last = event.rev
            if event.kind == "state" and event.document["state"] in TERMINAL:
                return


@router.get(
    "/events",
    response_class=EventSourceResponse,
    summary="Follow all your jobs: snapshots of unfinished jobs, then every change",
)
async def all_events(
    services: ServicesDep, tenant: TenantDep, last_event_id: LastEventId = None
) -> AsyncIterable[ServerSentEvent]:
    since = _since(last_event_id)
    with services.broker.subscribe(tenant=tenant) as sub:
        # One snapshot: what is sent first, and the revision after which the subscription
        # takes over (it may also hold changes made before it opened; they are skipped).
        async with services.db.read() as conn:
            now = int(await conn.scalar(select(func.max(JOB.c.rev))) or 0)
            query = select(JOB).where(JOB.c.tenant == tenant)
            if since:
                query = query.where(JOB.c.rev > since)
            else:
                query = query.where(JOB.c.state.not_in(list(TERMINAL)))
            jobs = [store.Job.model_validate(dict(r._mapping)) for r in await conn.execute(query)]
            missed = (
                (
                    await conn.execute(
                        select(HISTORY.c.rev, HISTORY.c.snapshot)
                        .join(JOB, JOB.c.id == HISTORY.c.job_id)
                        .where(JOB.c.tenant == tenant, HISTORY.c.rev > since)
                    )
                ).all()
                if since
                else []
            )
        replayed = {row.rev for row in missed}
        first = [_event("state", row.rev, row.snapshot) for row in missed] + [
            _event("snapshot", job.rev, store.job_document(job))
            for job in jobs
            if job.rev not in replayed
        ]
        for sse in sorted(first, key=lambda e: int(e.id or 0)):
            yield sse
        last = max(since, now)
        async for event in sub.events():
            if event.rev <= last:
                continue
            yield _event(event.kind, event.rev, event.document)
            last = event.rev
