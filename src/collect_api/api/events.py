"""Server-Sent Events: one job's changes, or all the caller's jobs' changes.

Every event's ``data`` is the job document (as ``GET /jobs/{id}``), its ``event`` says why it
was sent (``snapshot``, ``progress``, ``state``) and its ``id`` is the job's revision, which
increases with every change. A client reconnecting with ``Last-Event-ID`` first gets every
state change it missed, replayed from the audit trail, then the job as it is now.
"""

from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT
from starlette.background import BackgroundTask

from collect_api.api.deps import JobIdPath, Services, ServicesDep, TenantDep, row_key
from collect_api.api.docs import (
    DATABASE_BUSY,
    EXAMPLE_JOB_ID,
    JOB_NOT_FOUND,
    UNAUTHORIZED,
    documented,
)
from collect_api.jobs import store
from collect_api.jobs.broker import Subscription, encode, sse_frame
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


class EventStream(StreamingResponse):
    """A ``text/event-stream`` of frames in ``fastapi.sse``'s wire format, sent as they are
    yielded. A change's frame is made once however many streams send it
    (``JobEvent.frame``), and each stream is one task that waits for its subscription:
    ``fastapi.sse``'s own response runs two more tasks a stream and makes every frame
    again for every stream, which cost an import followed by 200 streams a third of a core
    (``BENCHMARKS.md``, SSE). The stream sends a comment when it has been silent for
    ``COLLECT_SSE_PING_S``, as ``fastapi.sse`` does."""

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, background=background)
        self.headers["Cache-Control"] = "no-cache"
        self.headers["X-Accel-Buffering"] = "no"  # proxies such as nginx: do not buffer


def _event(kind: str, rev: int, document: dict[str, Any]) -> bytes:
    """The frame of an event of ``kind`` at revision ``rev``."""
    return sse_frame(kind, rev, encode(document))


async def _changes(
    sub: Subscription, *, after: int, ping_s: float, until_end: bool
) -> AsyncIterator[bytes]:
    """The frames of the subscription's changes after revision ``after``, a comment after
    every ``ping_s`` of silence; with ``until_end``, up to the job's final state."""
    async for event in sub.events(idle_s=ping_s):
        if event is None:
            yield KEEPALIVE_COMMENT
            continue
        if event.rev <= after:
            continue
        yield event.frame()
        after = event.rev
        if until_end and event.kind == "state" and event.document["state"] in TERMINAL:
            return


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
    response_class=EventStream,
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
    followed: Annotated[_Followed, Depends(_followed_job)], services: ServicesDep
) -> AsyncIterator[bytes]:
    job, last = followed.job, followed.since
    for row in followed.missed:
        yield _event("state", row.rev, row.snapshot)
        last = row.rev
    if job.rev > last:
        yield _event("snapshot", job.rev, store.job_document(job))
        last = job.rev
    if job.state in TERMINAL:
        return
    changes = _changes(
        followed.sub, after=last, ping_s=services.settings.sse_ping_s, until_end=True
    )
    async for frame in changes:
        yield frame


@router.get(
    "/events",
    response_class=EventStream,
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
) -> AsyncIterator[bytes]:
    since = _since(last_event_id)
    with _following(services), services.broker.subscribe(tenant=tenant) as sub:
        # One snapshot: what is sent first, and the revision after which the subscription
        # takes over (it may also hold changes made before it opened; they are skipped).
        async with services.db.read() as conn:
            now = await store.last_rev(conn)
            jobs = await store.jobs_to_show(conn, tenant=tenant, changed_after=since)
            missed = await store.states_since(conn, tenant=tenant, rev=since)
        replayed = {row.rev for row in missed}
        first = [("state", row.rev, row.snapshot) for row in missed] + [
            ("snapshot", job.rev, store.job_document(job))
            for job in jobs
            if job.rev not in replayed
        ]
        for kind, rev, document in sorted(first, key=lambda e: e[1]):
            yield _event(kind, rev, document)
        changes = _changes(
            sub, after=max(since, now), ping_s=services.settings.sse_ping_s, until_end=False
        )
        async for frame in changes:
            yield frame
