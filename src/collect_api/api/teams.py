"""Teams: bulk creation from a CSV (``POST /teams/imports``), and the teams with members."""

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field

from collect_api.api.deps import (
    AfterQuery,
    LimitQuery,
    ServicesDep,
    TeamIdPath,
    TenantDep,
    row_key,
)
from collect_api.api.docs import (
    BAD_CSV,
    BAD_FORM,
    BAD_PAGE,
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
from collect_api.errors import NotFound, Unprocessable
from collect_api.jobs.models import Job
from collect_api.kinds.csvsource import Upload
from collect_api.kinds.teams import TeamsKind
from collect_api.storage import teams

router = APIRouter(tags=["teams"])


class TeamSummary(BaseModel):
    id: int = Field(description="for `GET /teams/{team_id}`")
    name: str = Field(description="as first written; matched trimmed and case-insensitively")
    member_count: int


class TeamsPublic(BaseModel):
    items: list[TeamSummary] = Field(description="by id")
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class Member(BaseModel):
    email: str
    name: str | None
    role: str = Field(description="`lead` or `member`")


class TeamPublic(TeamSummary):
    members: list[Member]


TEAMS_IMPORT_DOC = documented(
    "Create teams and their members from a CSV",
    """
Uploads a CSV with the columns `team`, `member_email`, `role` (`lead` or `member`) and
optionally `member_name`, in any order, and queues a job that creates the teams that do not
exist yet and adds the members they do not have yet: running the same file twice changes
nothing. The answer is **202** with the job and its URL in `Location`. The teams appear only
when the job completes; a failed or terminated job creates none. Rows with a bad e-mail or
role follow `on_error`.

To try it here: choose `sample_data/teams.csv` of the repository as `file`.
""",
    UNAUTHORIZED,
    UPLOAD_TOO_LARGE,
    BAD_FORM,
    BAD_CSV,
    refusal(
        422,
        "the file's columns are not those of a teams CSV",
        "a teams CSV has the columns team, member_email, role and optionally member_name, in "
        "any order; this file is missing ['role'] and has extra ['position']",
        missing=["role"],
        extra=["position"],
    ),
    DATABASE_BUSY,
    DISK_FULL,
    ok=accepted("The teams job"),
)


@router.post(
    "/teams/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    openapi_extra=csv_form(
        "the CSV file: `team`, `member_email`, `role` and optionally `member_name`"
    ),
    **TEAMS_IMPORT_DOC,
)
async def create_teams_import(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async def submit(job_id: str, upload: Upload, _early: EarlyStart | None) -> Job:
        return await runner_of(services, TeamsKind).submit(
            services.db, tenant=tenant, job_id=job_id, request=upload
        )

    return await accept_csv_job(request, response, services, submit)


@router.get(
    "/teams",
    response_model=TeamsPublic,
    **documented(
        "List teams, with member counts",
        "Teams by id, page by page; `q` keeps those whose name contains it (any case).",
        UNAUTHORIZED,
        BAD_PAGE,
        DATABASE_BUSY,
    ),
)
async def list_teams(
    services: ServicesDep,
    tenant: TenantDep,
    q: str | None = Query(
        default=None, max_length=200, description="part of the team name, in any case"
    ),
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> dict[str, Any]:
    if after is not None and row_key(after) is None:
        raise Unprocessable("'after' must be the 'next' cursor of a previous page", field="after")
    async with services.db.read() as conn:
        found = await teams.list_teams(
            conn, tenant=tenant, search=q, after=row_key(after) or 0, limit=limit + 1
        )
    page = found[:limit]
    return {"items": page, "next": str(page[-1]["id"]) if len(found) > limit else None}


@router.get(
    "/teams/{team_id}",
    response_model=TeamPublic,
    **documented(
        "One team, with its members",
        "The team and every member: e-mail, name and role.",
        UNAUTHORIZED,
        refusal(
            404,
            "you have no team with this id",
            "No team with id '7' exists. List teams with GET /teams.",
        ),
        DATABASE_BUSY,
    ),
)
async def get_team(team_id: TeamIdPath, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    number = row_key(team_id)
    if number is None:
        raise NotFound(f"No team with id {team_id!r} exists. List teams with GET /teams.")
    async with services.db.read() as conn:
        return await teams.get_team(conn, tenant=tenant, team_id=number)


KIND = KindModule(TeamsKind, router)
