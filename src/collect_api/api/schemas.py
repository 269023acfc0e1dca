"""The API's documents, as they appear in the OpenAPI schema."""

from typing import Any, Literal

from pydantic import BaseModel, Field

State = Literal[
    "queued", "running", "pausing", "paused", "terminating", "completed", "failed", "terminated"
]
Kind = Literal["import", "export", "teams"]


class Progress(BaseModel):
    done: int
    total: int | None
    percent: float = Field(ge=0, le=100)
    unit: str
    bytes_done: int | None = None
    bytes_total: int | None = None
    rate_per_s: float | None = None
    eta_s: float | None = None


class JobError(BaseModel):
    code: str
    message: str
    line: int | None = None
    record: int | None = None
    column: str | None = None


class JobPublic(BaseModel):
    id: str
    kind: Kind
    state: State
    params: dict[str, Any]
    progress: Progress
    result: dict[str, Any] | None
    error: JobError | None
    created_at: str
    started_at: str | None
    updated_at: str
    finished_at: str | None


class JobsPublic(BaseModel):
    items: list[JobPublic]
    next: str | None


class HistoryEntry(BaseModel):
    at: str
    from_state: State | None
    to_state: State
    actor: str
    reason: str | None


class HistoryPublic(BaseModel):
    items: list[HistoryEntry]
    next: str | None = None


class DatasetPublic(BaseModel):
    name: str
    columns: list[str]
    row_count: int
    version: int
    created_at: str
    updated_at: str


class DatasetsPublic(BaseModel):
    items: list[DatasetPublic]
    next: str | None


class RowsPublic(BaseModel):
    columns: list[str]
    rows: list[list[str | None]]
    next: str | None


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (404, 409, 422)
}
# What any endpoint may answer: an unreadable body, no or an unknown API key, an oversized
# body, a database that is busy or out of disk.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 413, 503, 507)
}
