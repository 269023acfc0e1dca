"""The teams kind: bulk-create teams and their members from a CSV.

Columns ``team``, ``member_email``, ``role`` (``lead`` · ``member``) and optionally
``member_name``, in any order. Teams that do not exist yet are created; memberships a team
lacks are added; nothing that exists is changed, so running a file twice changes nothing
the second time. What the job adds stays invisible until it completes (``storage.teams``).

Checkpoint: ``csvsource``'s plus ``staged``, the memberships staged so far. What the job
adds is counted when it publishes, so its result says what became visible.
"""

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.csvio import Header
from collect_api.db import Database
from collect_api.errors import Unprocessable
from collect_api.jobs import store
from collect_api.jobs.models import TERMINAL, Job
from collect_api.kinds.csvsource import CsvCheckpoint, CsvKind
from collect_api.storage import teams


class Checkpoint(CsvCheckpoint):
    """``csvsource``'s, and the memberships ``staged`` so far."""

    staged: int


REQUIRED = ("team", "member_email", "role")
OPTIONAL = ("member_name",)
ROLES = ("lead", "member")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _memberships(
    job: Job, rows: list[list[str]], positions: list[tuple[int, int]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Valid memberships and rejected records of one chunk."""
    p = job.params
    at = {c: i for i, c in enumerate(p["columns"])}
    name_at = at.get("member_name")
    valid: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for row, position in zip(rows, positions, strict=True):
        team = " ".join(row[at["team"]].split())
        email = row[at["member_email"]].strip()
        role = row[at["role"]].strip().lower()
        problem = None
        if not team:
            problem = ("team", "the team name is empty")
        elif not EMAIL.fullmatch(email):
            problem = ("member_email", f"{email!r} is not a valid e-mail address")
        elif role not in ROLES:
            problem = ("role", f"role {row[at['role']]!r} is not lead or member")
        if problem is not None:
            rejected.append(
                CsvKind.rejection(job, row, position, column=problem[0], reason=problem[1])
            )
            continue
        name = row[name_at].strip() if name_at is not None else ""
        valid.append({"team": team, "email": email, "name": name or None, "role": role})
    return valid, rejected


class TeamsKind(CsvKind):
    name: ClassVar[str] = "teams"
    kept: ClassVar[str] = "staged"

    def check_header(self, header: Header) -> None:
        missing = [c for c in REQUIRED if c not in header.columns]
        extra = [c for c in header.columns if c not in REQUIRED + OPTIONAL]
        if missing or extra:
            raise Unprocessable(
                f"a teams CSV has the columns {', '.join(REQUIRED)} and optionally member_name, "
                f"in any order; this file is missing {missing} and has extra {extra}",
                missing=missing,
                extra=extra,
            )

    def check_rows(
        self, job: Job, rows: list[list[str]], positions: list[tuple[int, int]]
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        return _memberships(job, rows, positions)

    async def write_rows(self, conn: AsyncConnection, job: Job, rows: list[Any]) -> None:
        await teams.stage_members(conn, tenant=job.tenant, job_id=job.id, members=rows)

    async def publish(
        self, conn: AsyncConnection, job: Job, done: Mapping[str, Any]
    ) -> dict[str, Any]:
        created, added, staged = await teams.publish_teams(conn, job_id=job.id)
        return {
            "teams_created": created,
            "members_added": added,
            "members_already_present": staged - added,
            "rows_rejected": done["rejected"],
        }

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        await teams.discard_teams(conn, job_ids=[job.id])

    async def housekeep(self, db: Database) -> None:
        await super().housekeep(db)
        # Memberships staged by jobs that are final: left when their end had no room to
        # undo them.
        async with db.write() as conn:
            staged = await teams.staging_jobs(conn)
            jobs = await store.jobs_by_id(conn, ids=staged)
            ended = [job_id for job_id, job in jobs.items() if job.state in TERMINAL]
            await teams.discard_teams(conn, job_ids=ended)
