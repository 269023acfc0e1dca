"""The teams kind: bulk-create teams and their members from a CSV.

Columns ``team``, ``member_email``, ``role`` (``lead`` · ``member``) and optionally
``member_name``, in any order. Teams that do not exist yet are created; memberships a team
lacks are added; nothing that exists is changed, so running a file twice changes nothing
the second time. What the job adds stays invisible until it completes (``storage.teams``).

Checkpoint: ``csvsource``'s plus ``staged``, the memberships staged so far. What the job
adds is counted when it publishes, so its result says what became visible.
"""

import contextlib
import re
from typing import Any, ClassVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.csvio import reject
from collect_api.db import Database
from collect_api.errors import Unprocessable
from collect_api.jobs import store
from collect_api.jobs.context import JobContext
from collect_api.jobs.models import TERMINAL, Job
from collect_api.kinds.csvsource import (
    CsvCheckpoint,
    Upload,
    apply_policy,
    checkpoint_progress,
    csv_failures,
    delete_upload,
    first_checkpoint,
    inspect_upload,
    progress,
    read_chunks,
    save_rejections,
    sweep_uploads,
    upload_path,
)
from collect_api.settings import Settings
from collect_api.storage import teams
from collect_api.storage.dataplane.client import DataPlane


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
    for row, (line, number) in zip(rows, positions, strict=True):
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
                reject(
                    row,
                    line=line,
                    number=number,
                    column=problem[0],
                    reason=problem[1],
                    delimiter=p["delimiter"],
                )
            )
            continue
        name = row[name_at].strip() if name_at is not None else ""
        valid.append({"team": team, "email": email, "name": name or None, "role": role})
    return valid, rejected


class TeamsKind:
    name: ClassVar[str] = "teams"

    def __init__(self, settings: Settings, dataplane: DataPlane) -> None:
        self.settings = settings

    async def submit(self, db: Database, *, tenant: str, job_id: str, request: Upload) -> Job:
        """Validate a received upload (already at ``upload_path``) and queue its job."""
        params, header = await inspect_upload(
            settings=self.settings, upload=request, path=upload_path(self.settings, job_id)
        )
        missing = [c for c in REQUIRED if c not in header.columns]
        extra = [c for c in header.columns if c not in REQUIRED + OPTIONAL]
        if missing or extra:
            raise Unprocessable(
                f"a teams CSV has the columns {', '.join(REQUIRED)} and optionally member_name, "
                f"in any order; this file is missing {missing} and has extra {extra}",
                missing=missing,
                extra=extra,
            )
        async with db.write() as conn:
            return await store.insert_job(
                conn,
                job_id=job_id,
                tenant=tenant,
                kind=self.name,
                params=params,
                progress=progress(records=0, offset=0, size=params["bytes"], rate=None),
                actor=tenant,
            )

    async def run(self, ctx: JobContext) -> None:
        with csv_failures():
            await self._run(ctx)

    async def _run(self, ctx: JobContext) -> None:
        job = ctx.job
        size = int(job.params["bytes"])
        cp: Checkpoint = (
            cast(Checkpoint, job.checkpoint)
            if job.checkpoint
            else {**first_checkpoint(job.params), "staged": 0}
        )
        chunks = read_chunks(settings=self.settings, job=job, checkpoint=cp, with_lines=True)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                members, invalid = _memberships(job, chunk.rows, chunk.positions())
                apply_policy(job, invalid, chunk.checkpoint["rejected"] + len(invalid))
                rejected = chunk.rejected + invalid
                read = chunk.checkpoint
                cp = {
                    "offset": read["offset"],
                    "line": read["line"],
                    "records": read["records"],
                    "rejected": read["rejected"] + len(invalid),
                    "staged": cp["staged"] + len(members),
                }

                async def write(
                    conn: AsyncConnection,
                    members: list[dict[str, Any]] = members,
                    rejected: list[dict[str, Any]] = rejected,
                ) -> None:
                    await teams.stage_members(
                        conn, tenant=job.tenant, job_id=job.id, members=members
                    )
                    await save_rejections(conn, job.id, rejected)

                await ctx.chunk(
                    write,
                    checkpoint=cp,
                    progress=checkpoint_progress(cp, size=size, rate=ctx.rate(cp["records"])),
                )
        done = cp

        async def publish(conn: AsyncConnection) -> None:
            created, added, staged = await teams.publish_teams(conn, job_id=job.id)
            await ctx.finish(
                conn,
                result={
                    "teams_created": created,
                    "members_added": added,
                    "members_already_present": staged - added,
                    "rows_rejected": done["rejected"],
                },
                progress=checkpoint_progress(
                    done, size=size, rate=ctx.rate(done["records"]), done=True
                ),
            )

        await ctx.chunk(publish)

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        await teams.discard_teams(conn, job_ids=[job.id])

    def delete_files(self, job: Job) -> None:
        delete_upload(self.settings, job)

    async def housekeep(self, db: Database) -> None:
        await sweep_uploads(settings=self.settings, db=db, kind=self.name)
        # Memberships staged by jobs that are final: left when their end had no room to
        # undo them.
        async with db.write() as conn:
            staged = await teams.staging_jobs(conn)
            jobs = await store.jobs_by_id(conn, ids=staged)
            ended = [job_id for job_id, job in jobs.items() if job.state in TERMINAL]
            await teams.discard_teams(conn, job_ids=ended)
