"""Teams and their members. A teams job's writes are its own until it completes.

While a job runs, the memberships it reads are staged in ``team_stage``, tagged with the job's
id and invisible to everyone. Completing the job publishes them in the transaction that marks
it completed: the teams that do not exist yet are created, and the memberships a team lacks
are added. Rolling a job back deletes its staged rows and nothing else, so it never touches
what another job wrote, and a job's result counts what its publishing really added.

Team names are unique per tenant, compared trimmed and case-insensitively (``name_key``); a
member is unique per team by e-mail, case-insensitively. Two jobs that stage the same new team
end with one team holding both jobs' members, whichever publishes first; the team keeps the
name as the first of them wrote it.
"""

from typing import Any

from sqlalchemy import Index, UniqueConstraint, and_, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from collect_api.errors import NotFound
from collect_api.ids import utcnow


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("tenant", "name_key"), Index("ix_team_job", "job_id"))

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    name: str
    name_key: str
    created_at: str
    # The job whose publishing created the team.
    job_id: str


class TeamMember(SQLModel, table=True):
    __tablename__ = "team_member"
    __table_args__ = (
        UniqueConstraint("team_id", "email_key"),
        Index("ix_team_member_job", "job_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", ondelete="CASCADE")
    email: str
    email_key: str
    name: str | None = None
    role: str
    # The job whose publishing added the membership.
    job_id: str


class TeamStage(SQLModel, table=True):
    """A membership a running teams job has read, in source order; only that job sees it."""

    __tablename__ = "team_stage"
    __table_args__ = (Index("ix_team_stage_job_team", "job_id", "team_key", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", ondelete="CASCADE")
    tenant: str
    team_key: str
    team_name: str
    email: str
    email_key: str
    member_name: str | None = None
    role: str


TEAM = Team.__table__  # type: ignore[attr-defined]
MEMBER = TeamMember.__table__  # type: ignore[attr-defined]
STAGE = TeamStage.__table__  # type: ignore[attr-defined]


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


async def stage_members(
    conn: AsyncConnection, *, tenant: str, job_id: str, members: list[dict[str, Any]]
) -> None:
    """Stage a chunk's memberships (``team``, ``email``, ``name``, ``role``) for the job."""
    if not members:
        return
    await conn.execute(
        STAGE.insert(),
        [
            {
                "job_id": job_id,
                "tenant": tenant,
                "team_key": name_key(m["team"]),
                "team_name": m["team"],
                "email": m["email"],
                "email_key": m["email"].casefold(),
                "member_name": m["name"],
                "role": m["role"],
            }
            for m in members
        ],
    )


async def publish_teams(conn: AsyncConnection, *, job_id: str) -> tuple[int, int, int]:
    """Make a job's staged memberships visible, in the transaction that completes it:
    ``(teams created, memberships added, memberships staged)``. Teams and memberships that
    exist already, made by anyone, are left as they are."""
    now = utcnow()
    created = await conn.execute(
        text(
            "INSERT INTO team (tenant, name, name_key, created_at, job_id) "
            "SELECT s.tenant, s.team_name, s.team_key, :now, s.job_id FROM team_stage AS s "
            "WHERE s.job_id = :job_id "
            "AND s.id = (SELECT min(f.id) FROM team_stage AS f "
            "            WHERE f.job_id = s.job_id AND f.team_key = s.team_key) "
            "AND NOT EXISTS (SELECT 1 FROM team AS t "
            "                WHERE t.tenant = s.tenant AND t.name_key = s.team_key) "
            "ORDER BY s.id"
        ),
        {"now": now, "job_id": job_id},
    )
    added = await conn.execute(
        text(
            "INSERT INTO team_member (team_id, email, email_key, name, role, job_id) "
            "SELECT t.id, s.email, s.email_key, s.member_name, s.role, s.job_id "
            "FROM team_stage AS s JOIN team AS t "
            "ON t.tenant = s.tenant AND t.name_key = s.team_key "
            "WHERE s.job_id = :job_id ORDER BY s.id "
            "ON CONFLICT (team_id, email_key) DO NOTHING"
        ),
        {"job_id": job_id},
    )
    staged = await conn.scalar(
        select(func.count()).select_from(STAGE).where(STAGE.c.job_id == job_id)
    )
    await discard_teams(conn, job_ids=[job_id])
    return int(created.rowcount), int(added.rowcount), int(staged or 0)


async def discard_teams(conn: AsyncConnection, *, job_ids: list[str]) -> None:
    """Forget what these jobs staged; nothing visible changes."""
    await conn.execute(delete(STAGE).where(STAGE.c.job_id.in_(job_ids)))


async def staging_jobs(conn: AsyncConnection) -> list[str]:
    """The jobs that have memberships staged."""
    return [job_id for (job_id,) in await conn.execute(select(STAGE.c.job_id).distinct())]


def _member_count() -> Any:
    return select(func.count()).where(MEMBER.c.team_id == TEAM.c.id).scalar_subquery()


async def list_teams(
    conn: AsyncConnection, *, tenant: str, search: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    query = select(TEAM.c.id, TEAM.c.name, _member_count().label("member_count")).where(
        TEAM.c.tenant == tenant, TEAM.c.id > after
    )
    if search and "\x00" in search:
        return []  # no name holds NUL (a file with one is refused), and PostgreSQL's text can't
    if search:
        query = query.where(TEAM.c.name_key.contains(name_key(search), autoescape=True))
    rows = await conn.execute(query.order_by(TEAM.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


async def get_team(conn: AsyncConnection, *, tenant: str, team_id: int) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(TEAM.c.id, TEAM.c.name, _member_count().label("member_count")).where(
                and_(TEAM.c.id == team_id, TEAM.c.tenant == tenant)
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"No team with id {team_id} exists. List teams with GET /teams.")
    members = await conn.execute(
        select(MEMBER.c.email, MEMBER.c.name, MEMBER.c.role)
        .where(MEMBER.c.team_id == team_id)
        .order_by(MEMBER.c.id)
    )
    return {**dict(row._mapping), "members": [dict(m._mapping) for m in members]}
