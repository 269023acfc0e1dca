"""Jobs: list, read, control (pause · resume · terminate) and audit trail."""

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from collect_api.api.deps import AfterQuery, LimitQuery, ServicesDep, TenantDep
from collect_api.api.schemas import (
    PROBLEM_RESPONSES,
    HistoryPublic,
    JobPublic,
    JobsPublic,
    Kind,
    State,
)
from collect_api.jobs import control, store
from collect_api.jobs.models import TERMINAL

router = APIRouter(tags=["jobs"], responses=PROBLEM_RESPONSES)


@router.get("/jobs", response_model=JobsPublic, summary="List jobs, newest first")
async def list_jobs(
    services: ServicesDep,
    tenant: TenantDep,
    state: State | None = Query(default=None),
    kind: Kind | None = Query(default=None),
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> dict[str, Any]:
    async with services.db.read() as conn:
        jobs = await store.list_jobs(
            conn, tenant=tenant, state=state, kind=kind, after=after, limit=limit + 1
        )
    page = jobs[:limit]
    return {
        "items": [store.job_document(j) for j in page],
        "next": page[-1].id if len(jobs) > limit else None,
    }


# The longest a request may wait for a job to end: long enough to save a client from
# polling, short enough for proxies' idle timeouts.
MAX_WAIT_S = 60


@router.get("/jobs/{job_id}", response_model=JobPublic, summary="One job")
async def get_job(
    job_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    wait: float = Query(
        default=0,
        ge=0,
        le=MAX_WAIT_S,
        description="seconds to wait for the job to end: the answer comes as soon as it is "
        "completed, failed or terminated, or when the time is up, with the job as it then is",
    ),
) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with services.db.read() as conn:
            return store.job_document(await store.get_job(conn, job_id=job_id, tenant=tenant))

    if wait > 0:
        await services.broker.wait_for(
            tenant=tenant,
            job_id=job_id,
            until=lambda doc: doc["state"] in TERMINAL,
            read=read,
            wait_s=wait,
        )
    return await read()


@router.post(
    "/jobs/{job_id}/pause",
    response_model=JobPublic,
    summary="Pause a job; answers once it has stopped at a safe point",
)
async def pause_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    job = await control.pause_job(supervisor=services.supervisor, tenant=tenant, job_id=job_id)
    return store.job_document(job)


@router.post(
    "/jobs/{job_id}/resume",
    response_model=JobPublic,
    summary="Resume a paused job from its checkpoint",
)
async def resume_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    job = await control.resume_job(supervisor=services.supervisor, tenant=tenant, job_id=job_id)
    return store.job_document(job)


@router.post(
    "/jobs/{job_id}/terminate",
    response_model=JobPublic,
    summary="Terminate a job; answers once its writes are rolled back",
)
async def terminate_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    job = await control.terminate_job(supervisor=services.supervisor, tenant=tenant, job_id=job_id)
    return store.job_document(job)


@router.get("/jobs/{job_id}/history", response_model=HistoryPublic, summary="A job's audit trail")
async def job_history(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    async with services.db.read() as conn:
        await store.get_job(conn, job_id=job_id, tenant=tenant)
        return {"items": await store.history(conn, job_id=job_id), "next": None}


@router.get(
    "/jobs/{job_id}/errors",
    response_class=StreamingResponse,
    summary="Rejected records as CSV: line, record, column, reason, raw text",
    responses={200: {"content": {"text/csv": {}}}},
)
async def job_errors(job_id: str, services: ServicesDep, tenant: TenantDep) -> StreamingResponse:
    async with services.db.read() as conn:
        await store.get_job(conn, job_id=job_id, tenant=tenant)

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["line", "record", "column", "reason", "raw"])
        after = 0
        while True:
            async with services.db.read() as conn:
                page = await store.rejections(conn, job_id=job_id, after=after, limit=1000)
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
