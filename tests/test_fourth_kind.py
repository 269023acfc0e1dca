"""A kind of job defined in this module alone: its runner, its route and its registration.

``count`` counts to a number, one committed chunk a step, writing a row of its own table at
each; a terminated count leaves none of them. Given to ``create_app`` beside the service's
own kinds, it is listed by ``GET /jobs``, documented in ``/openapi.json``, and paused,
resumed and terminated like any job.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Body, status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.api.deps import Services, ServicesDep, TenantDep
from collect_api.api.kinds import KindModule, runner_of
from collect_api.app import KINDS, create_app
from collect_api.db import Database
from collect_api.errors import Unprocessable
from collect_api.ids import new_job_id
from collect_api.jobs import store
from collect_api.jobs.context import JobContext
from collect_api.jobs.models import Job
from collect_api.jobs.progress import Progress
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import DataPlane
from tests.conftest import make_settings
from tests.helpers import wait_for, wait_progress

pytestmark = pytest.mark.backends


def _progress(done: int, upto: int) -> Progress:
    return Progress(done=done, total=upto, percent=round(done * 100 / upto, 2), unit="steps")


class CountKind:
    name: ClassVar[str] = "count"

    def __init__(self, settings: Settings, dataplane: DataPlane) -> None:
        self.settings = settings

    async def submit(self, db: Database, *, tenant: str, job_id: str, request: int) -> Job:
        if request < 1:
            raise Unprocessable("upto must be 1 or more", field="upto")
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS counted (job_id TEXT, n INT)"))
            return await store.insert_job(
                conn,
                job_id=job_id,
                tenant=tenant,
                kind=self.name,
                params={"upto": request},
                progress=_progress(0, request),
                actor=tenant,
            )

    async def run(self, ctx: JobContext) -> None:
        upto = int(ctx.job.params["upto"])
        done = int((ctx.job.checkpoint or {}).get("done", 0))
        while done < upto:
            done += 1

            async def write(conn: AsyncConnection, n: int = done) -> None:
                await conn.execute(
                    text("INSERT INTO counted VALUES (:job, :n)"), {"job": ctx.job.id, "n": n}
                )

            await ctx.chunk(write, checkpoint={"done": done}, progress=_progress(done, upto))

        async def finish(conn: AsyncConnection) -> None:
            await ctx.finish(conn, result={"counted": upto}, progress=_progress(upto, upto))

        await ctx.chunk(finish)

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        await conn.execute(text("DELETE FROM counted WHERE job_id = :job"), {"job": job.id})

    def delete_files(self, job: Job) -> None:
        """A count keeps no file."""

    async def housekeep(self, db: Database) -> None:
        """Nothing is left behind to sweep."""


router = APIRouter(tags=["counts"])


@router.post("/counts", status_code=status.HTTP_202_ACCEPTED)
async def create_count(
    upto: Annotated[int, Body(embed=True)], services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    job = await runner_of(services, CountKind).submit(
        services.db, tenant=tenant, job_id=new_job_id(), request=upto
    )
    services.supervisor.wake()
    return store.job_document(job)


KIND = KindModule(CountKind, router)


@asynccontextmanager
async def counting_app(
    tmp_path: Path, database: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The app with the service's kinds and ``count``, and a client talking to it."""
    app = create_app(make_settings(tmp_path, database_url=database), kinds=(*KINDS, KIND))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collect.test") as http:
            yield http, app.state.services


async def counted(services: Services, job_id: str) -> list[int]:
    """The steps of ``job_id`` in the database, in order."""
    async with services.db.read() as conn:
        found = await conn.execute(
            text("SELECT n FROM counted WHERE job_id = :job ORDER BY n"), {"job": job_id}
        )
        return [n for (n,) in found]


async def test_a_kind_of_one_module_is_listed_documented_and_steered_like_the_others(
    tmp_path: Path, database: str
) -> None:
    async with counting_app(tmp_path, database) as (http, services):
        document = (await http.get("/openapi.json")).json()
        assert "/counts" in document["paths"]
        kinds = document["components"]["schemas"]["JobPublic"]["properties"]["kind"]["enum"]
        assert kinds == ["import", "export", "teams", "count"]

        job = (await http.post("/counts", json={"upto": 400})).json()
        assert (job["kind"], job["state"]) == ("count", "queued")
        listed = (await http.get("/jobs")).json()["items"]
        assert [(j["id"], j["kind"]) for j in listed] == [(job["id"], "count")]
        assert [j["id"] for j in (await http.get("/jobs?kind=count")).json()["items"]] == [
            job["id"]
        ]
        assert (await http.get("/jobs?kind=import")).json()["items"] == []
        unknown = await http.get("/jobs?kind=sleep")
        assert unknown.status_code == 422
        assert "'import', 'export', 'teams' or 'count'" in unknown.json()["detail"]

        await wait_progress(http, job["id"], 20)
        paused = (await http.post(f"/jobs/{job['id']}/pause")).json()
        assert paused["state"] == "paused"
        at_pause = paused["progress"]["done"]
        assert await counted(services, job["id"]) == list(range(1, at_pause + 1))
        resumed = (await http.post(f"/jobs/{job['id']}/resume")).json()
        assert resumed["state"] in {"queued", "running"}
        done = await wait_for(http, job["id"], {"completed"})
        assert done["result"] == {"counted": 400}
        assert await counted(services, job["id"]) == list(range(1, 401))  # each step once

        other = (await http.post("/counts", json={"upto": 100_000})).json()
        await wait_progress(http, other["id"], 10)
        ended = (await http.post(f"/jobs/{other['id']}/terminate")).json()
        assert ended["state"] == "terminated"
        assert await counted(services, other["id"]) == []  # its writes undone
        assert (await http.post("/counts", json={"upto": 0})).status_code == 422
