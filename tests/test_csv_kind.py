"""A kind that reads an uploaded CSV, built on ``CsvKind`` in this module alone.

``emails`` keeps the valid addresses of a CSV's ``email`` column in a table of its own,
visible once the job completes. Everything else (the upload, its options and header, the
chunks and their checkpoints, ``on_error``, pause, resume and terminate) is the base's.
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import httpx
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.api.deps import Services, ServicesDep, TenantDep
from collect_api.api.kinds import KindModule, runner_of
from collect_api.api.uploads import EarlyStart, accept_csv_job
from collect_api.app import KINDS, create_app
from collect_api.csvio import Header
from collect_api.errors import Unprocessable
from collect_api.jobs.models import Job
from collect_api.kinds.csvsource import CsvKind, Upload
from tests.conftest import make_settings
from tests.helpers import csv_bytes, read_csv, wait_for, wait_progress

# -- the kind: what a new CSV kind takes ------------------------------------------------------


class EmailsKind(CsvKind):
    name: ClassVar[str] = "emails"
    kept: ClassVar[str] = "kept"

    def check_header(self, header: Header) -> None:
        if "email" not in header.columns:
            raise Unprocessable("an emails CSV has an 'email' column", field="file")

    def check_rows(
        self, job: Job, rows: list[list[str]], positions: list[tuple[int, int]]
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        at = job.params["columns"].index("email")
        kept, rejected = [], []
        for row, position in zip(rows, positions, strict=True):
            if "@" in row[at]:
                kept.append({"job": job.id, "email": row[at]})
            else:
                reason = f"{row[at]!r} is not an e-mail address"
                rejected.append(self.rejection(job, row, position, column="email", reason=reason))
        return kept, rejected

    async def begin(self, conn: AsyncConnection, job: Job) -> None:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS listed (job, email, shown)"))

    async def write_rows(self, conn: AsyncConnection, job: Job, rows: list[Any]) -> None:
        if rows:
            await conn.execute(text("INSERT INTO listed VALUES (:job, :email, 0)"), rows)

    async def publish(
        self, conn: AsyncConnection, job: Job, done: Mapping[str, Any]
    ) -> dict[str, Any]:
        await conn.execute(text("UPDATE listed SET shown = 1 WHERE job = :job"), {"job": job.id})
        return {"emails": done["kept"], "rows_rejected": done["rejected"]}

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        await conn.execute(text("DELETE FROM listed WHERE job = :job"), {"job": job.id})


router = APIRouter(tags=["emails"])


@router.post("/emails/imports", status_code=status.HTTP_202_ACCEPTED)
async def create_emails(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async def submit(job_id: str, upload: Upload, _early: EarlyStart | None) -> Job:
        runner = runner_of(services, EmailsKind)
        return await runner.submit(services.db, tenant=tenant, job_id=job_id, request=upload)

    return await accept_csv_job(request, response, services, submit)


KIND = KindModule(EmailsKind, router)

# -- the tests --------------------------------------------------------------------------------


@asynccontextmanager
async def emails_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(make_settings(tmp_path), kinds=(*KINDS, KIND))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collect.test") as http:
            yield http, app.state.services


async def listed(services: Services, job_id: str) -> list[tuple[str, int]]:
    async with services.db.read() as conn:
        found = await conn.execute(
            text("SELECT email, shown FROM listed WHERE job = :job ORDER BY rowid"),
            {"job": job_id},
        )
        return [(email, shown) for email, shown in found]


def emails_csv(count: int, *, bad_every: int = 0) -> tuple[bytes, list[str], list[int]]:
    """A CSV of ``count`` addresses, one in ``bad_every`` without an @: the file, the good
    addresses in order, and the lines of the bad ones."""
    rows, good, bad = [], [], []
    for i in range(count):
        email = f"user{i}.example.org" if bad_every and i % bad_every == 0 else f"u{i}@x.org"
        rows.append([f"User {i}", email])
        if "@" in email:
            good.append(email)
        else:
            bad.append(i + 2)
    return csv_bytes(["name", "email"], rows), good, bad


async def upload(http: httpx.AsyncClient, content: bytes, **fields: str) -> httpx.Response:
    return await http.post(
        "/emails/imports", files={"file": ("emails.csv", content, "text/csv")}, data=fields
    )


async def test_a_csv_kind_on_the_base_reads_checks_and_publishes_every_chunk(
    tmp_path: Path,
) -> None:
    async with emails_app(tmp_path) as (http, services):
        content, good, bad = emails_csv(2_000, bad_every=97)
        job = (await upload(http, content, on_error="skip")).json()
        assert (job["kind"], job["params"]["columns"]) == ("emails", ["name", "email"])
        # Paused and resumed on the way: every address is kept exactly once.
        await wait_progress(http, job["id"], 1)
        paused = (await http.post(f"/jobs/{job['id']}/pause")).json()
        if paused["state"] == "paused":
            assert {e for e, shown in await listed(services, job["id"])} <= set(good)
            await http.post(f"/jobs/{job['id']}/resume")
        done = await wait_for(http, job["id"], {"completed"})
        assert done["result"] == {"emails": len(good), "rows_rejected": len(bad)}
        assert await listed(services, job["id"]) == [(e, 1) for e in good]
        errors = read_csv((await http.get(f"/jobs/{job['id']}/errors")).content)
        assert [int(r[0]) for r in errors[1:]] == bad

        # on_error=abort (the default) names the first bad record's line; nothing is kept.
        failed = (await upload(http, emails_csv(500, bad_every=300)[0])).json()
        ended = await wait_for(http, failed["id"], {"failed"})
        assert (ended["error"]["code"], ended["error"]["line"]) == ("bad_record", 2)
        assert await listed(services, failed["id"]) == []

        # A file the kind cannot take is refused before any job exists.
        refused = await upload(http, csv_bytes(["name"], [["x"]]))
        assert refused.status_code == 422
        assert "'email' column" in refused.json()["detail"]

        # Terminated, it leaves nothing behind.
        big = (await upload(http, emails_csv(50_000)[0])).json()
        await wait_progress(http, big["id"], 1)
        terminated = (await http.post(f"/jobs/{big['id']}/terminate")).json()
        assert terminated["state"] == "terminated"
        assert await listed(services, big["id"]) == []
