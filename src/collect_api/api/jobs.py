"""Jobs: list, read, control (pause · resume · terminate) and audit trail."""

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from collect_api.api.deps import AfterQuery, JobIdPath, LimitQuery, ServicesDep, TenantDep
from collect_api.api.docs import (
    BAD_PAGE,
    DATABASE_BUSY,
    DISK_FULL,
    EXAMPLE_JOB_ID,
    JOB_NOT_FOUND,
    UNAUTHORIZED,
    Refusal,
    documented,
    refusal,
)
from collect_api.api.schemas import (
    HistoryPublic,
    JobPublic,
    JobsPublic,
    State,
)
from collect_api.errors import Unprocessable
from collect_api.ids import is_job_id
from collect_api.jobs import control, store
from collect_api.jobs.models import TERMINAL, Job
from collect_api.storage import rejections

router = APIRouter(tags=["jobs"])


def _finished(to: str) -> Refusal:
    return refusal(
        409,
        f"the job cannot become {to} from its state: it is " + _CANNOT[to],
        f"Job {EXAMPLE_JOB_ID} is terminated and cannot become {to}. It is finished; "
        "submit a new job instead.",
        title="Invalid transition",
        job_id=EXAMPLE_JOB_ID,
        state="terminated",
    )


_CANNOT = {
    "paused": "`completed`, `failed`, `terminated` or `terminating`",
    "running": "`completed`, `failed`, `terminated` or `terminating`",
    "terminated": "`completed` or `failed`",
}


def _not_one_of(name: str, value: str, allowed: list[str]) -> RequestValidationError:
    """The 422 of a query parameter that is none of ``allowed``, as FastAPI words it."""
    quoted = [repr(a) for a in allowed]
    choices = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return RequestValidationError(
        [
            {
                "type": "literal_error",
                "loc": ("query", name),
                "msg": f"Input should be {choices}",
                "input": value,
            }
        ]
    )


@router.get(
    "/jobs",
    response_model=JobsPublic,
    **documented(
        "List jobs, newest first",
        "Your jobs, newest first, page by page; `state` and `kind` keep only those that are "
        "in that state or of that kind.",
        UNAUTHORIZED,
        BAD_PAGE,
        DATABASE_BUSY,
    ),
)
async def list_jobs(
    services: ServicesDep,
    tenant: TenantDep,
    state: State | None = Query(default=None, description="only the jobs in this state"),
    kind: str | None = Query(default=None, description="only the jobs of this kind"),
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> dict[str, Any]:
    if kind is not None and kind not in services.supervisor.kinds:
        raise _not_one_of("kind", kind, list(services.supervisor.kinds))
    if after is not None and not is_job_id(after):
        raise Unprocessable("'after' must be the 'next' cursor of a previous page", field="after")
    async with services.db.read() as conn:
        jobs = await store.list_jobs(
            conn, tenant=tenant, state=state, kind=kind, after=after, limit=limit + 1
        )
    page = jobs[:limit]
    return {
        "items": [store.job_document(j) for j in page],
        "next": page[-1].id if len(jobs) > limit else None,
    }


BAD_WAIT = refusal(
    422,
    "`wait` is not a number of seconds from 0 to 60",
    "wait: Input should be less than or equal to 60",
    errors=[{"loc": ["query", "wait"], "msg": "Input should be less than or equal to 60"}],
)
# The longest a request may wait for a job to end: long enough to save a client from
# polling, short enough for proxies' idle timeouts.
MAX_WAIT_S = 60


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    **documented(
        "One job",
        "The job as it is now: its state, parameters, progress, and its result or error. "
        "With `wait`, the answer comes as soon as the job has ended (completed, failed or "
        "terminated), or when the time is up, with the job as it then is.",
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        BAD_WAIT,
        DATABASE_BUSY,
    ),
)
async def get_job(
    job_id: JobIdPath,
    services: ServicesDep,
    tenant: TenantDep,
    wait: float = Query(
        default=0,
        ge=0,
        le=MAX_WAIT_S,
        description="seconds (at most 60) to wait for the job to end: the answer comes as soon "
        "as it is completed, failed or terminated, or when the time is up",
    ),
) -> dict[str, Any]:
    async def read() -> Job:
        return await store.read_job(services.db, job_id=job_id, tenant=tenant)

    if wait > 0:
        await services.broker.wait_for(
            tenant=tenant,
            job_id=job_id,
            until=lambda doc: doc["state"] in TERMINAL,
            read=read,
            wait_s=wait,
        )
    return store.job_document(await read())


@router.post(
    "/jobs/{job_id}/pause",
    response_model=JobPublic,
    **documented(
        "Pause a job",
        """
A queued job is paused at once. A running one stops at its next safe point, the end of the
chunk in flight, holding no lock or transaction; the answer comes then, with the job `paused`
(or still `pausing` if that takes longer than `COLLECT_CONTROL_WAIT_S`). A pause survives a
restart of the service. Pausing a paused job answers it as it is.
""",
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        _finished("paused"),
        DATABASE_BUSY,
        DISK_FULL,
        ok={200: {"description": "The job, `paused` (or still `pausing`), or as it was."}},
    ),
)
async def pause_job(job_id: JobIdPath, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    with services.metrics.control_seconds.labels("pause").time():
        job = await control.pause_job(runner=services.supervisor, tenant=tenant, job_id=job_id)
    return store.job_document(job)


@router.post(
    "/jobs/{job_id}/resume",
    response_model=JobPublic,
    **documented(
        "Resume a paused job",
        """
The job continues from its last checkpoint, without redoing work already done: it answers
`running`, or `queued` while it waits for a run slot. Resuming a running or queued job
answers it as it is; resuming a `pausing` job cancels the pause.
""",
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        _finished("running"),
        DATABASE_BUSY,
        DISK_FULL,
        ok={200: {"description": "The job, `running` or `queued`."}},
    ),
)
async def resume_job(job_id: JobIdPath, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    with services.metrics.control_seconds.labels("resume").time():
        job = await control.resume_job(runner=services.supervisor, tenant=tenant, job_id=job_id)
    return store.job_document(job)


@router.post(
    "/jobs/{job_id}/terminate",
    response_model=JobPublic,
    **documented(
        "Terminate a job, rolling back its writes",
        """
Stops the job for good and undoes what it wrote: a terminated import leaves its dataset as it
was before the job began, a terminated export leaves no file, a terminated teams job creates
no team. The answer comes once that is done, with the job `terminated` (or still
`terminating` if that takes longer than `COLLECT_CONTROL_WAIT_S`). Terminating a terminated
job answers it as it is. **This cannot be undone.**
""",
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        _finished("terminated"),
        DATABASE_BUSY,
        DISK_FULL,
        ok={200: {"description": "The job, `terminated` (or still `terminating`)."}},
    ),
)
async def terminate_job(
    job_id: JobIdPath, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    with services.metrics.control_seconds.labels("terminate").time():
        job = await control.terminate_job(runner=services.supervisor, tenant=tenant, job_id=job_id)
    return store.job_document(job)


@router.get(
    "/jobs/{job_id}/history",
    response_model=HistoryPublic,
    **documented(
        "A job's audit trail",
        "Every transition of the job, oldest first: when, from which state to which, who "
        "asked (the tenant of the API key, or `system` for the engine's own steps) and why.",
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        DATABASE_BUSY,
    ),
)
async def job_history(
    job_id: JobIdPath, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async with services.db.read() as conn:
        await store.get_job(conn, job_id=job_id, tenant=tenant)
        return {"items": await store.history(conn, job_id=job_id), "next": None}


@router.get(
    "/jobs/{job_id}/errors",
    response_class=StreamingResponse,
    **documented(
        "The records a job rejected, as CSV",
        """
The records an import or teams job with `on_error=skip` set aside (or the ones that made it
fail), as a CSV file with the columns `line` (where the record starts in the source),
`record` (its number), `column`, `reason` and `raw` (the record as written in the source).
A job that rejected nothing gives the header alone.
""",
        UNAUTHORIZED,
        JOB_NOT_FOUND,
        DATABASE_BUSY,
        ok={
            200: {
                "description": "The rejected records, in source order.",
                "content": {
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "line,record,column,reason,raw\r\n"
                        '3,2,,"the record has 3 fields; the header has 2",'
                        '"2,Grace,extra"\r\n',
                    }
                },
            }
        },
    ),
)
async def job_errors(
    job_id: JobIdPath, services: ServicesDep, tenant: TenantDep
) -> StreamingResponse:
    async with services.db.read() as conn:
        await store.get_job(conn, job_id=job_id, tenant=tenant)

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["line", "record", "column", "reason", "raw"])
        after = 0
        while True:
            async with services.db.read() as conn:
                page = await rejections.page(conn, job_id=job_id, after=after, limit=1000)
            for rejection in page:
                writer.writerow(
                    [
                        rejection.line,
                        rejection.record,
                        rejection.column or "",
                        rejection.reason,
                        rejection.raw,
                    ]
                )
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(page) < 1000:
                return
            after = page[-1].id or after

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-errors.csv"'},
    )
