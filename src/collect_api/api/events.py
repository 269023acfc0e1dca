"""Server-Sent Events: one job's changes, or all the caller's jobs' changes.

Every event's ``data`` is the job document (as ``GET /jobs/{id}``), its ``event`` says why it
was sent (``snapshot``, ``progress``, ``state``) and its ``id`` is the job's revision, which
increases with every change. A client reconnecting with ``Last-Event-ID`` first gets every
state change it missed, replayed from the audit trail, then the job as it is now.
"""

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.sse import EventSourceResponse, ServerSentEvent

from collect_api.api.deps import JobIdPath, Services, ServicesDep, TenantDep, row_key
from collect_api.api.docs import (
    DATABASE_BUSY,
    EXAMPLE_JOB_ID,
    JOB_NOT_FOUND,
    UNAUTHORIZED,
    documented,
)
from collect_api.jobs import store
from collect_api.jobs.broker import Subscription, encode
from collect_api.jobs.models import TERMINAL

router = APIRouter(tags=["events"])

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="the `id` of the last event received, when reconnecting: the state "
        "changes since then are sent first (browsers' EventSource sends it by itself)",
    ),
]

_STREAM_EXAMPLE = (
    "event: snapshot\n"
    f'data: {{"id": "{EXAMPLE_JOB_ID}", "kind": "import", "state": "running", …}}\n'
    "id: 23\n\n"
    "event: progress\n"
    f'data: {{"id": "{EXAMPLE_JOB_ID}", …, "progress": {{"done": 800, …}}, …}}\n'
    "id: 24\n\n"
)


_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data", "id"],
    "properties": {
        "event": {
            "type": "string",
            "enum": ["snapshot", "progress", "state"],
            "description": "why it was sent",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/JobPublic"},
            "description": "the job, as `GET /jobs/{id}` answers it",
        },
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "increases with every change; send it back as `Last-Event-ID`",
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _stream(what: str) -> dict[int, dict[str, Any]]:
    return {
        200: {
            "description": f"A `text/event-stream` of {what}.",
            "content": {
                "text/event-stream": {"itemSchema": _EVENT_SCHEMA, "example": _STREAM_EXAMPLE}
            },
        }
    }


_EVENTS = """
Every event's `data` is a job as JSON, the document `GET /jobs/{id}` answers; its `event`
says why it was sent: `snapshot` (the job as it is when the stream starts), `progress` (at
most every 250 ms per job while it runs) or `state` (every state change). Events carry
increasing `id`s: a client that reconnects with `Last-Event-ID` misses no state change.
Comments keep an idle connection open.
"""


def _event(kind: str, rev: int, document: dict[str, Any] | str) -> ServerSentEvent:
    """An event of ``kind`` at revision ``rev``; ``document`` may be already encoded."""
    encoded = document if isinstance(document, str) else encode(document)
    return ServerSentEvent(event=kind, id=str(rev), raw_data=encoded)


def _since(last_event_id: str | None) -> int:
    return row_key(last_event_id) or 0


@contextmanager
def _following(services: Services) -> Iterator[None]:
    """Count the stream among the SSE followers while it is open."""
    services.metrics.followers.inc()
    try:
        yield
    finally:
        services.metrics.followers.dec()


@dataclass
class _Followed:
    """A job's stream as it starts: the job, the state changes the client missed since
    the revision ``since``, and the subscription that has every change after them."""

    since: int
    job: store.Job
    missed: list[store.StateChange]
    sub: Subscription


async def _followed_job(
    job_id: JobIdPath,
    services: ServicesDep,
    tenant: TenantDep,
    last_event_id: LastEventId = None,
) -> AsyncIterator[_Followed]:
    """Subscribe, then read the job and the state changes missed, in one snapshot (a 404
    comes before the stream starts: once it has, the status is sent): whatever changes
    after that read reaches the subscription, which lasts as long as the stream."""
    since = _since(last_event_id)
    with _following(services), services.broker.subscribe(tenant=tenant, job_id=job_id) as sub:
        if since:
            async with services.db.read() as conn:
                job = await store.get_job(conn, job_id=job_id, tenant=tenant)
                missed = await store.states_since(conn, tenant=tenant, job_id=job_id, rev=since)
        else:  # nothing missed: the job alone, in one statement
            job = await store.read_job(services.db, job_id=job_id, tenant=tenant)
            missed = []
        yield _Followed(since, job, missed, sub)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    **documented(
        "Follow one job's progress, live",
        "Server-Sent Events for one job, from its snapshot to its end: the stream closes "
        "after the event of its final state (at once for a job already ended).\n" + _EVENTS,
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        DATABASE_BUSY,
        ok=_stream("the job's events, until it ends"),
    ),
)
async def job_events(
    followed: Annotated[_Followed, Depends(_followed_job)],
) -> AsyncIterable[ServerSentEvent]:
    job, last = followed.job, followed.since
    for row in followed.missed:
        yield _event("state", row.rev, row.snapshot)
        last = row.rev
    if job.rev > last:
        yield _event("snapshot", job.rev, store.job_document(job))
        last = job.rev
    if job.state in TERMINAL:
        return
    async for event in followed.sub.events():
        if event.rev <= last:
            continue
        yield _event(event.kind, event.rev, event.encoded)
        last = event.rev
        if event.kind == "state" and event.document["state"] in TERMINAL:
            return


@router.get(
    "/events",
    response_class=EventSourceResponse,
    **documented(
        "Follow all your jobs, live",
        "Server-Sent Events for all your jobs: a snapshot of each unfinished one, then every "
        "change of any of them, new jobs included. The stream does not end by itself.\n" + _EVENTS,
        UNAUTHORIZED,
        DATABASE_BUSY,
        ok=_stream("every change of your jobs"),
    ),
)
async def all_events(
    services: ServicesDep, tenant: TenantDep, last_event_id: LastEventId = None
) -> AsyncIterable[ServerSentEvent]:
    since = _since(last_event_id)
    with _following(services), services.broker.subscribe(tenant=tenant) as sub:
        # One snapshot: what is sent first, and the revision after which the subscription
        # takes over (it may also hold changes made before it opened; they are skipped).
        async with services.db.read() as conn:
            now = await store.last_rev(conn)
            jobs = await store.jobs_to_show(conn, tenant=tenant, changed_after=since)
            missed = await store.states_since(conn, tenant=tenant, rev=since)
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
            yield _event(event.kind, event.rev, event.encoded)
            last = event.rev
