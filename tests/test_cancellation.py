"""A terminate that lands while a driver call of the job's chunk runs.

The driver call is made slow from inside the test: the chunk's writes first run a query
that takes a chosen time in the database driver's thread, and the terminate is sent while
it runs. After each one the chunk must have rolled back and the connection must be back in
its pool: another connection takes the write lock at once, nothing of the job is left, and
no driver thread reports to a closed event loop (pytest turns that warning into an error).
"""

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from collect_api.app import create_app
from collect_api.samples import TEAMS_HEADER, team_rows
from collect_api.settings import Settings
from collect_api.storage import teams
from tests.conftest import make_settings
from tests.helpers import csv_bytes, query, take_write_lock, wait_for

# A query that keeps the driver busy for about ``length`` microseconds' worth of work.
SLOW_QUERY = {
    "sqlite": (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < {length}) "
        "SELECT count(*) FROM r"
    ),
    "postgresql": "SELECT pg_sleep({length} / 2000000.0)",
}

pytestmark = pytest.mark.backends


class SlowChunks:
    """While armed, every chunk's writes start with a slow query; says when one started."""

    def __init__(self) -> None:
        self.length = 0
        self.started = asyncio.Event()

    def arm(self, length: int) -> None:
        self.length = length
        self.started.clear()

    async def stage(self, conn: Any, **kwargs: Any) -> None:
        if self.length:
            self.started.set()
            query = SLOW_QUERY[conn.dialect.name].format(length=int(self.length))
            await conn.exec_driver_sql(query)
        await ORIGINAL_STAGE(conn, **kwargs)


ORIGINAL_STAGE = teams.stage_members


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> SlowChunks:
    slow = SlowChunks()
    monkeypatch.setattr(teams, "stage_members", slow.stage)
    return slow


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    return make_settings(tmp_path, database_url=database, chunk_rows=50)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://collect.test", timeout=60
        ) as http:
            yield http


async def test_terminate_during_a_driver_call_rolls_back_and_releases_the_lock(
    client: httpx.AsyncClient, slow: SlowChunks, database: str
) -> None:
    rng = random.Random(14)
    rows = [list(r) for r in team_rows(3_000, seed=8)]
    content = csv_bytes(TEAMS_HEADER, rows)
    for attempt in range(50):
        slow.arm(rng.randrange(200_000, 1_500_000))
        response = await client.post(
            "/teams/imports", files={"file": ("t.csv", content, "text/csv")}
        )
        assert response.status_code == 202, response.text
        job = response.json()
        async with asyncio.timeout(30):
            await slow.started.wait()
        await asyncio.sleep(rng.random() * 0.05)  # somewhere inside the slow driver call
        ended = await client.post(f"/jobs/{job['id']}/terminate")
        slow.arm(0)
        assert ended.status_code == 200, ended.text
        assert ended.json()["state"] == "terminated", attempt
        assert await take_write_lock(database, 1.0) < 1.0
        staged = await query(
            database, "SELECT count(*) FROM team_stage WHERE job_id = :id", id=job["id"]
        )
        assert staged == [(0,)]
    assert (await client.get("/teams")).json()["items"] == []
    # The service goes on serving: a job after all that completes.
    done = await client.post("/teams/imports", files={"file": ("t.csv", content, "text/csv")})
    await wait_for(client, done.json()["id"], {"completed"})
    assert (await client.get("/teams")).json()["items"]
