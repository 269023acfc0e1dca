"""A job read in one statement (``Database.points``), as ``GET /jobs/{id}`` and the answers of
control requests read it: the same job as a read transaction gives, a clear error from the
driver, connections made again once lost, and cancellations at any moment under load that
leave every connection usable and none open after the database is closed."""

import asyncio
import random
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from collect_api.db import POINT_READS_NAME, Database
from collect_api.errors import JobNotFound
from collect_api.jobs import store
from collect_api.jobs.models import Job
from collect_api.settings import Settings
from tests.conftest import app_services
from tests.helpers import csv_bytes, query, start_import, wait_for

pytestmark = pytest.mark.backends

HEADER = ["response_id", "name", "note"]
ROWS = [[str(n), f"Zoë {n}", "naïve, «quoted»\nline"] for n in range(1, 3001)]


async def jobs_in_every_end(client: Any) -> list[str]:
    """Jobs completed, failed (with an error at a line), paused and terminated."""
    completed = (
        await client.post(
            "/imports",
            files={"file": ("réponses.csv", csv_bytes(HEADER, ROWS[:50]), "text/csv")},
            data={"dataset": "completed"},
        )
    ).json()
    failed = await start_import(client, b"response_id,name\n1,a\n2,b,c\n", "ragged")
    paused = await start_import(client, csv_bytes(HEADER, ROWS), "paused")
    await client.post(f"/jobs/{paused['id']}/pause")
    terminated = await start_import(client, csv_bytes(HEADER, ROWS), "terminated")
    await client.post(f"/jobs/{terminated['id']}/terminate")
    await wait_for(client, completed["id"], {"completed"})
    await wait_for(client, failed["id"], {"failed"})
    await wait_for(client, paused["id"], {"paused"})
    await wait_for(client, terminated["id"], {"terminated"})
    return [completed["id"], failed["id"], paused["id"], terminated["id"]]


async def test_a_job_read_in_one_statement_is_the_job_a_read_transaction_gives(
    settings: Settings,
) -> None:
    async with app_services(settings) as (client, services):
        db = services.db
        ids = await jobs_in_every_end(client)
        for job_id in ids:
            async with db.read() as conn:
                expected = await store.get_job(conn, job_id=job_id)
            assert await store.read_job(db, job_id=job_id) == expected
            assert await store.read_job(db, job_id=job_id, tenant=expected.tenant) == expected
            with pytest.raises(JobNotFound):
                await store.read_job(db, job_id=job_id, tenant="someone-else")
            answered = (await client.get(f"/jobs/{job_id}")).json()
            assert answered["state"] == expected.state
            assert answered["params"] == expected.params
            assert answered["progress"]["done"] == expected.progress["done"]
        failed = (await client.get(f"/jobs/{ids[1]}")).json()
        assert failed["error"]["line"] == 3, failed
        assert (await client.get(f"/jobs/{ids[0]}")).json()["params"]["filename"] == "réponses.csv"
        with pytest.raises(JobNotFound):
            await store.read_job(db, job_id="01m8zzzzzzzzzzzzzzzzzzzzzz")


async def test_a_driver_error_comes_out_as_the_engines_do(database: str) -> None:
    db = Database(database)
    try:
        with pytest.raises(OperationalError, match="nowhere"):
            await db.points.one("SELECT * FROM nowhere WHERE id = ?", 1)
        assert await db.points.one("SELECT ? + 1", 41) == (42,)
    finally:
        await db.dispose()


async def point_connections(database: str) -> list[tuple[Any, ...]]:
    return await query(
        database,
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = :name",
        name=POINT_READS_NAME,
    )


async def test_a_connection_lost_while_idle_is_made_again(postgres_url: str) -> None:
    """PostgreSQL's connections (SQLite's is a file's, with no server to lose it)."""
    database = postgres_url
    db = Database(database)
    try:
        await asyncio.gather(*(db.points.one("SELECT pg_sleep(0.05), ?::int", n) for n in range(4)))
        assert len(await point_connections(database)) == 4
        await query(
            database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name",
            name=POINT_READS_NAME,
        )
        for n in range(8):  # every connection in turn, each lost
            assert await db.points.one("SELECT ?::int", n) == (n,)
    finally:
        await db.dispose()
    assert await point_connections(database) == []


async def test_reads_cancelled_at_random_moments_leave_every_connection_usable(
    settings: Settings, backend: str, database: str
) -> None:
    rng = random.Random(7)
    async with app_services(settings) as (client, services):
        db = services.db
        ids = await jobs_in_every_end(client)
        expected = {job_id: await store.read_job(db, job_id=job_id) for job_id in ids}
        for _round in range(30):
            tasks = [
                asyncio.create_task(store.read_job(db, job_id=rng.choice(ids))) for _ in range(40)
            ]
            await asyncio.sleep(rng.uniform(0, 0.004))
            for task in tasks:
                if rng.random() < 0.5:
                    task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                assert isinstance(result, Job | asyncio.CancelledError), repr(result)
            # Every connection answers again, with the job as it is.
            reads = await asyncio.gather(*(store.read_job(db, job_id=i) for i in ids * 4))
            assert reads == [expected[i] for i in ids * 4]
        if backend == "postgresql":
            connections = await point_connections(database)
            assert 1 <= len(connections) <= db.points.CONNECTIONS
            assert {state for _pid, state in connections} == {"idle"}, connections
    if backend == "postgresql":  # closed with the database: none left open
        assert await point_connections(database) == []
