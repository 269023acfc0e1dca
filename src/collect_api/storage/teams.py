"""Teams and their members, written by teams jobs out of sight until the job completes.

A row a job adds carries the job's id and ``pending = 1``; lists and counts show only rows
with ``pending = 0``. Completing the job clears ``pending`` on its rows in the transaction
that marks it completed; terminating or failing it deletes them. Rows that existed before
the job are never touched. Team names are unique per tenant, compared trimmed and
case-insensitively (``name_key``); a member is unique per team by e-mail, case-insensitively.
"""

from typing import Any

from sqlalchemy import Index, UniqueConstraint, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from collect_api.errors import NotFound
from collect_api.jobs.models import utcnow
from collect_api.jobs.store import JOB


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("tenant", "name_key"), Index("ix_team_job", "job_id"))

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    name: str
    name_key: str
    created_at: str
    job_id: str
    pending: bool = True


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
    job_id: str
    pending: bool = True


TEAM = Team.__table__  # type: ignore[attr-defined]
MEMBER = TeamMember.__table__  # type: ignore[attr-defined]


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


async def ensure_teams(
    conn: AsyncConnection, *, tenant: str, job_id: str, names: dict[str, str]
) -> tuple[dict[str, int], int]:
    """Team ids by name key for ``names`` (key → name as first written), creating the
    missing ones as this job's pending teams; also how many were created."""
    keys = list(names)
    found: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        rows = await conn.execute(
            select(TEAM.c.name_key, TEAM.c.id).where(
                TEAM.c.tenant == tenant, TEAM.c.name_key.in_(part)
            )
        )
        found.update({r.name_key: r.id for r in rows})
    missing = [k for k in keys if k not in found]
    if missing:
        now = utcnow()
        await conn.execute(
            insert(TEAM),
            [
                {
                    "tenant": tenant,
                    "name": names[k],
                    "name_key": k,
                    "created_at": now,
                    "job_id": job_id,
                    "pending": True,
                }
                for k in missing
            ],
        )
        rows = await conn.execute(
            select(TEAM.c.name_key, TEAM.c.id).where(
                TEAM.c.tenant == tenant, TEAM.c.job_id == job_id, TEAM.c.name_key.in_(missing)
            )
        )
        found.update({r.name_key: r.id for r in rows})
    return found, len(missing)


async def add_members(conn: AsyncConnection, members: list[dict[str, Any]]) -> int:
    """Add memberships a team does not have yet; how many were added."""
    if not members:
        return 0
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    cursor = await driver.executemany(
        "INSERT INTO team_member (team_id, email, email_key, name, role, job_id, pending) "
        "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (team_id, email_key) DO NOTHING",
        [
            (m["team_id"], m["email"], m["email"].casefold(), m["name"], m["role"], m["job_id"])
            for m in members
        ],
    )
    return int(cursor.rowcount)


async def publish_teams(conn: AsyncConnection, *, job_id: str) -> None:
    await conn.execute(update(TEAM).where(TEAM.c.job_id == job_id).values(pending=False))
    await conn.execute(update(MEMBER).where(MEMBER.c.job_id == job_id).values(pending=False))


async def discard_teams(conn: AsyncConnection, *, job_id: str) -> None:
    await conn.execute(delete(MEMBER).where(MEMBER.c.job_id == job_id, MEMBER.c.pending))
    await conn.execute(delete(TEAM).where(TEAM.c.job_id == job_id, TEAM.c.pending))


async def discard_finished(conn: AsyncConnection, *, final_states: list[str]) -> None:
    """Pending rows of jobs that are final: left when their end had no room to undo them."""
    finished = select(JOB.c.id).where(JOB.c.state.in_(final_states))
    await conn.execute(delete(MEMBER).where(MEMBER.c.pending, MEMBER.c.job_id.in_(finished)))
    await conn.execute(delete(TEAM).where(TEAM.c.pending, TEAM.c.job_id.in_(finished)))


def _member_count() -> Any:
    return (
        select(func.count())
        .where(MEMBER.c.team_id == TEAM.c.id, MEMBER.c.pending.is_(False))
        .scalar_subquery()
    )


async def list_teams(
    conn: AsyncConnection, *, tenant: str, search: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    query = select(TEAM.c.id, TEAM.c.name, _member_count().label("member_count")).where(
        TEAM.c.tenant == tenant, TEAM.c.pending.is_(False), TEAM.c.id > after
    )
    if search:
        query = query.where(func.instr(TEAM.c.name_key, name_key(search)) > 0)
    rows = await conn.execute(query.order_by(TEAM.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


async def get_team(conn: AsyncConnection, *, tenant: str, team_id: int) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(TEAM.c.id, TEAM.c.name, _member_count().label("member_count")).where(
                and_(TEAM.c.id == team_id, TEAM.c.tenant == tenant, TEAM.c.pending.is_(False))
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"No team with id {team_id} exists. List teams with GET /teams.")
    members = await conn.execute(
        select(MEMBER.c.email, MEMBER.c.name, MEMBER.c.role)
        .where(MEMBER.c.team_id == team_id, MEMBER.c.pending.is_(False))
        .order_by(MEMBER.c.id)
    )
    return {**dict(row._mapping), "members": [dict(m._mapping) for m in members]}
