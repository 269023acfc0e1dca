"""``POST /exports`` and ``GET /jobs/{id}/result``: export a dataset, download the file."""

from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from collect_api.api.deps import ServicesDep, TenantDep
from collect_api.api.schemas import PROBLEM_RESPONSES, JobPublic
from collect_api.errors import Conflict, Gone, NotFound
from collect_api.jobs import store
from collect_api.jobs.models import JobState
from collect_api.kinds.exports import ExportKind, download_name, submit_export
from collect_api.storage.filters import OPERATORS, Filter

router = APIRouter(tags=["exports"], responses=PROBLEM_RESPONSES)


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="a column of the dataset, as written in its header")
    op: str = Field(description=f"one of {', '.join(OPERATORS)}", examples=["gt"])
    value: Any = Field(
        description="a string or number; a list of them for `in`; numbers compare numerically"
    )


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(max_length=63)
    columns: list[str] | None = Field(
        default=None, description="the columns to write, in this order (default: all)"
    )
    filters: list[FilterIn] = Field(default_factory=list, description="all must hold")
    gzip: bool = False


@router.post(
    "/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Export a dataset, filtered and projected, to a CSV file",
)
async def create_export(
    body: ExportCreate, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    job = await submit_export(
        db=services.db,
        tenant=tenant,
        dataset=body.dataset,
        columns=body.columns,
        filters=[Filter(column=f.column, op=f.op, value=f.value) for f in body.filters],
        gzipped=body.gzip,
    )
    services.supervisor.wake()
    response.headers["Location"] = f"/jobs/{job.id}"
    return store.job_document(job)


@router.get(
    "/jobs/{job_id}/result",
    response_class=FileResponse,
    summary="Download a completed export (supports Range requests)",
    responses={200: {"content": {"text/csv": {}, "application/gzip": {}}}},
)
async def job_result(job_id: str, services: ServicesDep, tenant: TenantDep) -> FileResponse:
    async with services.db.read() as conn:
        job = await store.get_job(conn, job_id=job_id, tenant=tenant)
    if job.kind != ExportKind.name:
        raise NotFound(f"job {job_id} is an {job.kind} job; only export jobs have a result file")
    if job.state != JobState.COMPLETED:
        raise Conflict(
            f"export {job_id} is {job.state}; its file can be downloaded once it is completed",
            state=job.state,
        )
    if (job.result or {}).get("expired"):
        raise Gone(
            f"the file of export {job_id} was deleted after COLLECT_RESULT_TTL "
            f"({services.settings.result_ttl}); export the dataset again"
        )
    kind = services.supervisor.kinds[ExportKind.name]
    assert isinstance(kind, ExportKind)
    path = kind.path(job)
    if not path.exists():
        raise NotFound(f"the file of export {job_id} is no longer kept; export the dataset again")
    return FileResponse(
        path,
        media_type="application/gzip" if job.params["gzip"] else "text/csv; charset=utf-8",
        filename=download_name(job),
    )
