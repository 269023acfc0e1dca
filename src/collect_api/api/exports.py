"""``POST /exports`` and ``GET /jobs/{id}/result``: export a dataset, download the file."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from collect_api.api.deps import JobIdPath, ServicesDep, TenantDep
from collect_api.api.docs import (
    DATABASE_BUSY,
    DISK_FULL,
    EXAMPLE_JOB_ID,
    JOB_NOT_FOUND,
    JSON_TOO_LARGE,
    UNAUTHORIZED,
    accepted,
    documented,
    refusal,
)
from collect_api.api.kinds import KindModule, runner_of
from collect_api.api.schemas import JobPublic
from collect_api.errors import CollectError, Conflict, Gone, NotFound
from collect_api.ids import new_job_id
from collect_api.jobs import store
from collect_api.jobs.models import JobState
from collect_api.kinds.exports import ExportKind, ExportRequest, download_name
from collect_api.storage.filters import OPERATORS, Filter

router = APIRouter(tags=["exports"])

_SCALAR: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}]}
# The value's type is checked with the operator (check_filters), which says what is wrong
# better than a union's validation errors would; the schema documents what is allowed.
FilterValue = Annotated[
    Any, WithJsonSchema({"anyOf": [*_SCALAR["anyOf"], {"type": "array", "items": _SCALAR}]})
]


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="a column of the dataset, as written in its header")
    op: str = Field(
        description="`eq` `ne` `lt` `le` `gt` `ge` compare; `contains` finds a substring; "
        "`in` matches any of a list",
        json_schema_extra={"enum": list(OPERATORS)},
    )
    value: FilterValue = Field(
        description="a string or a number (a list of them for `in`, a string for "
        "`contains`); a number compares numerically, so `age gt 30` never compares text"
    )


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(max_length=63, description="the dataset to export (`GET /datasets`)")
    columns: list[str] | None = Field(
        default=None,
        description="the columns to write, each once, in this order; all of them if omitted",
    )
    filters: list[FilterIn] = Field(
        default_factory=list, description="the rows written are those for which all hold"
    )
    gzip: bool = Field(default=False, description="write the file gzip-compressed (`.csv.gz`)")


EXPORT_EXAMPLES: dict[str, Any] = {
    "all": {
        "summary": "All of dataset `responses`",
        "description": "Import `sample_data/responses.csv` as dataset `responses` first.",
        "value": {"dataset": "responses"},
    },
    "filtered": {
        "summary": "Some columns of `responses`, some rows, gzipped",
        "description": "Import `sample_data/responses.csv` as dataset `responses` first.",
        "value": {
            "dataset": "responses",
            "columns": ["response_id", "country", "age"],
            "filters": [
                {"column": "age", "op": "gt", "value": 30},
                {"column": "country", "op": "in", "value": ["France", "日本"]},
            ],
            "gzip": True,
        },
    },
}

EXPORT_DOC = documented(
    "Export a dataset, filtered and projected, to a CSV file",
    """
Queues a job that writes the rows of `dataset` for which every filter holds, with the chosen
columns, to a CSV file (RFC 4180, UTF-8), gzip-compressed if asked. The answer is **202** with
the job and its URL in `Location`; once the job is `completed`, its `result` has the rows and
bytes written and `download_url`, `GET /jobs/{id}/result`.

The export is a snapshot of the dataset as it was when the job started; a paused and resumed
export is byte-identical to an uninterrupted one. A terminated export leaves no file behind.
""",
    refusal(
        400,
        "the body is not text in UTF-8",
        "The body cannot be read: send a JSON object, encoded as UTF-8.",
    ),
    UNAUTHORIZED,
    JSON_TOO_LARGE,
    refusal(
        422,
        "the body is not JSON, or not such an object",
        "dataset: Field required",
        errors=[{"loc": ["body", "dataset"], "msg": "Field required"}],
    ),
    refusal(
        422,
        "the dataset does not exist",
        "No dataset named 'responses' exists. List datasets with GET /datasets.",
        field="dataset",
    ),
    refusal(
        422,
        "a column, an operator or a value does not fit the dataset (the problem's `field` "
        "names it)",
        "filters[0]: the dataset has no column 'years'; its columns are ['response_id', "
        "'submitted_at', 'respondent_email', 'country', 'age', 'score', 'consent', 'comment']",
        field="filters[0].column",
    ),
    DATABASE_BUSY,
    DISK_FULL,
    ok=accepted("The export"),
)


@router.post(
    "/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    **EXPORT_DOC,
)
async def create_export(
    body: Annotated[ExportCreate, Body(openapi_examples=EXPORT_EXAMPLES)],
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    job = await runner_of(services, ExportKind).submit(
        services.db,
        tenant=tenant,
        job_id=new_job_id(),
        request=ExportRequest(
            dataset=body.dataset,
            columns=body.columns,
            filters=[Filter(column=f.column, op=f.op, value=f.value) for f in body.filters],
            gzipped=body.gzip,
        ),
    )
    services.supervisor.wake()
    response.headers["Location"] = f"/jobs/{job.id}"
    return store.job_document(job)


class BadRange(CollectError):
    title = "Bad request"


class RangeRefused(CollectError):
    status = 416
    title = "Range not satisfiable"

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.headers = {"Content-Range": f"bytes */{size}"}


_FILE = {"schema": {"type": "string", "format": "binary"}}

RESULT_DOC = documented(
    "Download a completed export",
    """
Streams the file of a `completed` export, named as in its `Content-Disposition` header
(`<dataset>-<job id>.csv`, or `.csv.gz` with `gzip`). A `Range: bytes=START-END` header asks
for part of it (**206**), to resume an interrupted download.
""",
    refusal(
        400,
        "the `Range` header is malformed",
        "Malformed range header; send Range: bytes=START-END, or no Range header",
    ),
    UNAUTHORIZED,
    JOB_NOT_FOUND,
    refusal(
        404,
        "the job is not an export, or its file is no longer kept",
        f"job {EXAMPLE_JOB_ID} is an import job; only export jobs have a result file",
    ),
    refusal(
        409,
        "the export is not completed (yet)",
        f"export {EXAMPLE_JOB_ID} is running; its file can be downloaded once it is completed",
        state="running",
    ),
    refusal(
        410,
        "the file was deleted after `COLLECT_RESULT_TTL`",
        f"the file of export {EXAMPLE_JOB_ID} was deleted after COLLECT_RESULT_TTL (P7D); "
        "export the dataset again",
    ),
    refusal(
        416,
        "the `Range` starts at or beyond the end of the file",
        "The range starts beyond the end of the 98165-byte file.",
    ),
    DATABASE_BUSY,
    ok={
        200: {
            "description": "The whole file.",
            "content": {"text/csv": _FILE, "application/gzip": _FILE},
        },
        206: {
            "description": "The part of the file that `Range` asked for.",
            "content": {"text/csv": _FILE, "application/gzip": _FILE},
            "headers": {
                "Content-Range": {
                    "description": "`bytes START-END/SIZE`",
                    "schema": {"type": "string"},
                }
            },
        },
    },
)


def _check_range(request: Request, size: int) -> None:
    """Refuse a bad ``Range`` as a problem, as every error is, where FileResponse would
    answer plain text; a ``Range`` with ``If-Range`` may be ignored, so it is left to it."""
    asked = request.headers.get("range")
    if asked is None or "if-range" in request.headers:
        return
    try:
        FileResponse._parse_range_header(asked, size)
    except MalformedRangeHeader as exc:
        raise BadRange(
            f"{exc.content.rstrip('.')}; send Range: bytes=START-END, or no Range header"
        ) from None
    except RangeNotSatisfiable:
        raise RangeRefused(
            f"The range starts beyond the end of the {size}-byte file.", size=size
        ) from None


RangeHeader = Annotated[
    str | None,
    Header(
        alias="Range",
        description="`bytes=START-END` (END included, optional) for part of the file only",
    ),
]


class ResultFile(FileResponse):
    """A result file sent a mebibyte a read: each read is a hop to a thread and back, which
    at the default 64 KiB cost as much as the bytes themselves."""

    chunk_size = 1024 * 1024


@router.get(
    "/jobs/{job_id}/result",
    response_class=FileResponse,
    **RESULT_DOC,
)
async def job_result(
    job_id: JobIdPath,
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    _range: RangeHeader = None,  # read by FileResponse; a parameter for the document
) -> FileResponse:
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
    path = await runner_of(services, ExportKind).fetch(services.db, job)
    if path is None:
        raise NotFound(f"the file of export {job_id} is no longer kept; export the dataset again")
    _check_range(request, path.stat().st_size)
    return ResultFile(
        path,
        media_type="application/gzip" if job.params["gzip"] else "text/csv; charset=utf-8",
        filename=download_name(job),
    )


KIND = KindModule(ExportKind, router)
