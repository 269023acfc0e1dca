"""Teams: bulk creation from a CSV (``POST /teams/imports``), and the teams with members."""

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel

from collect_api.api.deps import AfterQuery, LimitQuery, ServicesDep, TenantDep, row_key
from collect_api.api.schemas import PROBLEM_RESPONSES, JobPublic
from collect_api.api.uploads import accept_csv_job, csv_form
from collect_api.errors import NotFound, Unprocessable
from collect_api.jobs.models import Job
from collect_api.kinds.teams import submit_teams
from collect_api.storage import teams
from collect_api.storage.uploads import Upload

router = APIRouter(tags=["teams"], responses={**PROBLEM_RESPONSES, 413: PROBLEM_RESPONSES[422]})


class TeamSummary(BaseModel):
    id: int
    name: str
    member_count: int


class TeamsPublic(BaseModel):
    items: list[TeamSummary]
    next: str | None


class Member(BaseModel):
    email: str
    name: str | None
    role: str


class TeamPublic(TeamSummary):
    members: list[Member]


@router.post(
    "/teams/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Create teams and members from a CSV (team, member_email, member_name?, role)",
    openapi_extra=csv_form(),
)
async def create_teams_import(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async def submit(job_id: str, upload: Upload) -> Job:
        return await submit_teams(
            db=services.db,
            settings=services.settings,
            tenant=tenant,
            job_id=job_id,
            upload=upload,
        )

    return await accept_csv_job(request, response, services, submit)


@router.get("/teams", response_model=TeamsPublic, summary="Teams with member counts")
async def list_teams(
    services: ServicesDep,
    tenant: TenantDep,
    q: str | None = Query(default=None, max_length=200, description="part of the team name"),
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


@router.get("/teams/{team_id}", response_model=TeamPublic, summary="A team with its members")
async def get_team(team_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    number = row_key(team_id)
    if number is None:
        raise NotFound(f"No team with id {team_id!r} exists. List teams with GET /teams.")
    async with services.db.read() as conn:
        return await teams.get_team(conn, tenant=tenant, team_id=number)
