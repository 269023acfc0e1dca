"""The API's documents, as they appear in the OpenAPI schema."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from collect_api.jobs.progress import Progress

State = Literal[
    "queued", "running", "pausing", "paused", "terminating", "completed", "failed", "terminated"
]


class JobError(BaseModel):
    code: str = Field(description="a stable, machine-readable reason, such as `bad_record`")
    message: str = Field(description="what went wrong, in a sentence a user can act on")
    line: int | None = Field(default=None, description="the source line at fault, 1-based")
    record: int | None = Field(default=None, description="the record at fault, 1-based")
    column: str | None = Field(default=None, description="the column at fault")


JOB_EXAMPLE: dict[str, Any] = {
    "id": "01m8115b00jfbms03498rncvpd",
    "kind": "import",
    "state": "running",
    "params": {
        "dataset": "responses",
        "mode": "create",
        "on_error": "abort",
        "max_errors": 1000,
        "encoding": "utf-8",
        "delimiter": ",",
        "filename": "responses.csv",
        "columns": ["response_id", "submitted_at", "country", "age", "score"],
        "bytes": 98165,
    },
    "progress": {
        "done": 800,
        "total": None,
        "percent": 80.06,
        "unit": "records",
        "bytes_done": 78599,
        "bytes_total": 98165,
        "rate_per_s": 11069.8,
        "eta_s": 0.2,
    },
    "result": None,
    "error": None,
    "created_at": "2026-11-22T07:04:58.495611Z",
    "started_at": "2026-11-22T07:04:58.501200Z",
    "updated_at": "2026-11-22T07:04:58.573914Z",
    "finished_at": None,
}


class JobPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: str = Field(description="opaque, URL-safe; sorts by creation time")
    # Any kind the service runs (`app.KINDS`): the document lists them as the enum.
    kind: str = Field(
        description="what the job does: `import`, `export`, `teams`, or another "
        "kind the service runs"
    )
    state: State = Field(
        description="`queued` → `running` → `completed`; or `paused` (via `pausing`), "
        "`failed`, `terminated` (via `terminating`). `completed`, `failed` and `terminated` "
        "are final, and a failed or terminated job's writes are rolled back"
    )
    params: dict[str, Any] = Field(
        description="what the job was asked to do: for an import `dataset`, `mode`, "
        "`on_error`, `max_errors`, `encoding`, `delimiter`, `filename`, `columns`, `bytes`; "
        "for an export `dataset`, `columns`, `filters`, `gzip`"
    )
    progress: Progress
    result: dict[str, Any] | None = Field(
        description="once completed: for an import `rows_imported`, `rows_rejected`, "
        "`dataset_rows`; for an export `rows`, `bytes`, `filename`, `download_url`; for "
        "teams `teams_created`, `members_added`, `members_already_present`, `rows_rejected`"
    )
    error: JobError | None = Field(description="why the job failed; null otherwise")
    created_at: str = Field(description="RFC 3339, UTC")
    started_at: str | None = Field(description="when it first ran; RFC 3339, UTC")
    updated_at: str = Field(description="its last change; RFC 3339, UTC")
    finished_at: str | None = Field(description="when it reached a final state; RFC 3339, UTC")


class JobsPublic(BaseModel):
    items: list[JobPublic] = Field(description="newest first")
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class HistoryEntry(BaseModel):
    at: str = Field(description="RFC 3339, UTC")
    from_state: State | None = Field(description="null for the submission")
    to_state: State
    actor: str = Field(
        description="who asked: the tenant of the API key, or `system` for the engine's own steps"
    )
    reason: str | None = Field(description="why: `pause`, `resume`, `a run slot is free`, …")


class HistoryPublic(BaseModel):
    items: list[HistoryEntry] = Field(description="oldest first")
    next: str | None = Field(default=None, description="always null: the trail comes whole")


class DatasetPublic(BaseModel):
    name: str = Field(description="as given to the import")
    columns: list[str] = Field(description="the header, as written in the source")
    row_count: int = Field(description="rows visible now")
    version: int = Field(description="increases with every completed import into it")
    created_at: str = Field(description="RFC 3339, UTC")
    updated_at: str = Field(description="RFC 3339, UTC")


class DatasetsPublic(BaseModel):
    items: list[DatasetPublic] = Field(description="by name")
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class RowsPublic(BaseModel):
    columns: list[str] = Field(description="the header, as written in the source")
    rows: list[list[str | None]] = Field(
        description="each row's fields as strings, in column order; rows in source order"
    )
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


class ProblemError(BaseModel):
    loc: list[str | int] = Field(description="where: `body`, `query` or `path`, then the field")
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error the API answers, served as
    `application/problem+json`. Besides the standard members, a problem may name what it is
    about."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="always `about:blank`")
    title: str = Field(description="the status, in words")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong and what to do about it")
    field: str | None = Field(
        default=None,
        description="the request field at fault: a form field, a query parameter or a body "
        "path such as `filters[0].op`",
    )
    job_id: str | None = Field(default=None, description="the job concerned")
    state: str | None = Field(default=None, description="the job's state when refused")
    dataset: str | None = Field(default=None, description="the dataset concerned")
    code: str | None = Field(default=None, description="for a bad CSV: a stable reason")
    line: int | None = Field(default=None, description="for a bad CSV: the line at fault")
    column: str | None = Field(default=None, description="for a bad CSV: the column at fault")
    missing: list[str] | None = Field(
        default=None, description="columns the dataset (or a teams CSV) needs and the file lacks"
    )
    extra: list[str] | None = Field(
        default=None, description="columns of the file that the dataset (or a teams CSV) lacks"
    )
    errors: list[ProblemError] | None = Field(
        default=None, description="for a request that fails validation: every problem found"
    )
