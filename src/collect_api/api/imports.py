"""``POST /imports``: upload a CSV and queue its import."""

from typing import Any

from fastapi import APIRouter, Request, Response, status

from collect_api.api.deps import ServicesDep, TenantDep
from collect_api.api.schemas import PROBLEM_RESPONSES, JobPublic
from collect_api.api.uploads import accept_csv_job, csv_form
from collect_api.jobs.models import Job
from collect_api.kinds.imports import submit_import
from collect_api.storage.uploads import Upload

router = APIRouter(tags=["imports"], responses={**PROBLEM_RESPONSES, 413: PROBLEM_RESPONSES[422]})


@router.post(
    "/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Import a CSV into a dataset",
    openapi_extra=csv_form(
        dataset={"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$", "required": True},
        mode={"type": "string", "enum": ["create", "append", "replace"], "default": "create"},
    ),
)
async def create_import(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async def submit(job_id: str, upload: Upload) -> Job:
        return await submit_import(
            db=services.db,
            settings=services.settings,
            tenant=tenant,
            job_id=job_id,
            upload=upload,
        )

    return await accept_csv_job(request, response, services, submit)
