"""``POST /imports``: upload a CSV and queue its import."""

from typing import Any

from fastapi import APIRouter, Request, Response, status

from collect_api.api.deps import ServicesDep, TenantDep
from collect_api.api.schemas import PROBLEM_RESPONSES, JobPublic
from collect_api.errors import PayloadTooLarge, Unprocessable
from collect_api.jobs import store
from collect_api.jobs.models import new_job_id
from collect_api.kinds.csvsource import upload_path
from collect_api.kinds.imports import submit_import
from collect_api.storage.uploads import UploadProblem, UploadTooLarge, discard_file, receive_upload

router = APIRouter(tags=["imports"], responses={**PROBLEM_RESPONSES, 413: PROBLEM_RESPONSES[422]})

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "dataset"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the CSV"},
                        "dataset": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
                        "mode": {
                            "type": "string",
                            "enum": ["create", "append", "replace"],
                            "default": "create",
                        },
                        "on_error": {
                            "type": "string",
                            "enum": ["abort", "skip"],
                            "default": "abort",
                        },
                        "max_errors": {"type": "integer", "minimum": 0, "default": 1000},
                        "encoding": {
                            "type": "string",
                            "enum": ["utf-8", "utf-16", "latin-1"],
                            "default": "utf-8",
                        },
                        "delimiter": {"type": "string", "default": ","},
                    },
                }
            }
        },
    }
}


@router.post(
    "/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Import a CSV into a dataset",
    openapi_extra=_FORM,
)
async def create_import(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    settings = services.settings
    job_id = new_job_id()
    path = upload_path(settings, job_id)
    try:
        upload = await receive_upload(
            request.stream(),
            content_type=request.headers.get("content-type", ""),
            dest=path,
            max_bytes=settings.max_upload_bytes,
        )
    except UploadTooLarge as exc:
        raise PayloadTooLarge(
            f"the file is larger than the {exc.limit}-byte upload limit "
            "(COLLECT_MAX_UPLOAD_BYTES); split it or raise the limit"
        ) from None
    except UploadProblem as exc:
        raise Unprocessable(str(exc), field="file") from None
    try:
        job = await submit_import(
            db=services.db, settings=settings, tenant=tenant, job_id=job_id, upload=upload
        )
    except BaseException:
        await discard_file(path)
        raise
    services.supervisor.wake()
    response.headers["Location"] = f"/jobs/{job.id}"
    return store.job_document(job)
