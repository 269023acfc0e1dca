"""``POST /imports``: upload a CSV and queue its import."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response, status

from collect_api.api.deps import ServicesDep, TenantDep
from collect_api.api.docs import (
    BAD_CSV,
    BAD_FORM,
    DATABASE_BUSY,
    DISK_FULL,
    UNAUTHORIZED,
    UPLOAD_TOO_LARGE,
    accepted,
    documented,
    refusal,
)
from collect_api.api.kinds import KindModule, runner_of
from collect_api.api.schemas import JobPublic
from collect_api.api.uploads import EarlyStart, accept_csv_job, csv_form
from collect_api.jobs.models import Job
from collect_api.kinds.csvsource import Upload
from collect_api.kinds.imports import EarlyImport, ImportKind

router = APIRouter(tags=["imports"])

IMPORT_DOC = documented(
    "Import a CSV into a dataset",
    """
Uploads a CSV file of records and queues a job that loads it into the dataset named by
`dataset`. The answer comes as soon as the file is stored: **202** with the job, and its URL in
`Location`. Follow it with `GET /jobs/{id}/events`, or steer it with `POST /jobs/{id}/pause`,
`/resume` and `/terminate`.

When the form fields come before the file (as `curl -F dataset=... -F file=@...` and the
`collect` client send them), the import begins while the file still arrives: the job's
`progress` may already count records when it is answered.

The rows become visible in the dataset only when the job completes; a failed or terminated
import leaves the dataset exactly as it was. With `on_error=skip`, bad records are set aside
and can be read with `GET /jobs/{id}/errors`.

To try it here: choose `sample_data/responses.csv` of the repository as `file` and type a
dataset name such as `responses`.
""",
    UNAUTHORIZED,
    refusal(
        404,
        "`mode=append` names a dataset that does not exist",
        "No dataset named 'responses' exists. List datasets with GET /datasets.",
        dataset="responses",
    ),
    refusal(
        409,
        "`mode=create` (the default) names a dataset that already exists",
        "dataset 'responses' already exists; use mode=append to add rows or mode=replace to "
        "replace it",
        dataset="responses",
    ),
    UPLOAD_TOO_LARGE,
    BAD_FORM,
    refusal(
        422,
        "`dataset` is missing or not a name Collect allows",
        "dataset name 'My data' is not allowed: use 1 to 63 lower-case letters, digits and "
        "underscores, starting with a letter",
        field="dataset",
    ),
    BAD_CSV,
    refusal(
        422,
        "with `mode=append`, the file's columns are not the dataset's",
        "the file's columns do not match dataset 'responses': missing ['age'], extra ['years']",
        missing=["age"],
        extra=["years"],
    ),
    DATABASE_BUSY,
    DISK_FULL,
    ok=accepted("The import"),
)


@router.post(
    "/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    openapi_extra=csv_form(
        "the CSV file; its first line names the columns",
        dataset={
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]{0,62}$",
            # Left empty for the user to fill in: a name generated from the pattern would
            # create a junk dataset when the example is executed.
            "example": "",
            "required": True,
            "description": "the dataset to import into: 1 to 63 lower-case letters, digits "
            "and `_`, starting with a letter (such as `responses`)",
        },
        mode={
            "type": "string",
            "enum": ["create", "append", "replace"],
            "default": "create",
            "description": "`create` a new dataset (refused if it exists), `append` the rows "
            "to an existing one with the same columns, or `replace` its rows",
        },
    ),
    **IMPORT_DOC,
)
async def create_import(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async def submit(job_id: str, upload: Upload, early: EarlyStart | None) -> Job:
        return await runner_of(services, ImportKind).submit(
            services.db,
            tenant=tenant,
            job_id=job_id,
            request=upload,
            staged=early.staged if isinstance(early, EarlyImport) else None,
        )

    def early_start(job_id: str, path: Path) -> EarlyImport:
        return EarlyImport(
            db=services.db,
            settings=services.settings,
            dataplane=services.dataplane,
            job_id=job_id,
            path=path,
        )

    services.dataplane.warm()  # its worker starts while the upload arrives
    return await accept_csv_job(request, response, services, submit, early_start=early_start)


KIND = KindModule(ImportKind, router)
