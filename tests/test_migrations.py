"""The schema, built by migrations: at start-up, by ``collect migrate``, over a database made
before migrations existed, by two servers at once, and on PostgreSQL.

SQLite tests use real files and real server processes; the PostgreSQL ones a new database per
test (``conftest.postgres_url``).
"""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from collect_api import migrations
from collect_api.ids import new_job_id
from collect_api.jobs.progress import Progress
from collect_api.jobs.store import insert_job
from tests.conftest import ROOT, ServerProcess, app_client, make_settings
from tests.helpers import dataset_rows, start_import, wait_for
from tests.test_teams import all_teams, start_teams

SAMPLE = ROOT / "sample_data"
HEAD = migrations.head()
# A 64-bit advisory lock's key is split in two halves in pg_locks.
WAITING_FOR_THE_LOCK = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND NOT granted
      AND ((classid::bigint << 32) | objid::bigint) = $1
"""


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def differences(connection: Connection, metadata: sa.MetaData | None = None) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the models' metadata."""
    context = MigrationContext.configure(
        connection, opts=migrations.context_options(connection.dialect.name)
    )
    return list(compare_metadata(context, metadata or SQLModel.metadata))


def sqlite_differences(path: Path, metadata: sa.MetaData | None = None) -> list[Any]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return differences(conn, metadata)
    finally:
        engine.dispose()


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in found}


def revision(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version_num FROM alembic_version")]


def schema_sql(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def collect_migrate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLECT_")}
    return subprocess.run(
        [sys.executable, "-m", "collect_api", "migrate", *args],
        env={**clean, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_new_database_is_migrated_to_head_at_start_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with app_client(settings) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/jobs")).json() == {"items": [], "next": None}
    assert revision(tmp_path / "collect.db") == [HEAD]


async def test_the_migrations_build_the_schema_the_models_declare(tmp_path: Path) -> None:
    path = tmp_path / "collect.db"
    migration = await migrations.upgrade(sqlite_url(path))
    assert (migration.before, migration.after, migration.stamped) == (None, HEAD, False)
    # Tables made per dataset while the service runs are no part of the schema.
    with sqlite3.connect(path) as conn:
        conn.execute(f'CREATE TABLE "ds_{new_job_id()}" (_row INTEGER PRIMARY KEY, c0 TEXT)')
        conn.execute(f'CREATE TABLE "stage_{new_job_id()}" (_row INTEGER PRIMARY KEY, c0 TEXT)')
    assert sqlite_differences(path) == []

    # The comparison sees a model change that no revision made.
    changed = sa.MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["job"].append_column(sa.Column("note", sa.String()))
    found = sqlite_differences(path, changed)
    assert [(d[0], d[2], d[3].name) for d in found] == [("add_column", "job", "note")]


async def _as_before_migrations(url: str) -> None:
    """Make the database at ``url``, at the newest revision, what releases before migrations
    left: the baseline's tables with every row, brought back by the revisions' downgrades,
    and no revision recorded."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.downgrade(migrations.alembic_config(c), migrations.BASELINE)
            )
            await conn.exec_driver_sql("DROP TABLE alembic_version")
    finally:
        await engine.dispose()


async def _baseline_without_revision(url: str) -> None:
    await migrations.upgrade(url)
    await _as_before_migrations(url)


def _params_and_private(path: Path, job_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    with sqlite3.connect(path) as conn:
        columns = [c[1] for c in conn.execute("PRAGMA table_info(job)")]
        found = conn.execute(
            "SELECT params, "
            + ("private" if "private" in columns else "NULL")
            + " FROM job WHERE id = ?",
            (job_id,),
        ).fetchone()
    return json.loads(found[0]), json.loads(found[1]) if found[1] is not None else None


async def test_a_database_made_before_migrations_upgrades_in_place_and_is_served(
    tmp_path: Path,
) -> None:
    path = tmp_path / "collect.db"
    # The service's data as releases before migrations kept it: jobs and their history, a
    # dataset, teams, and a paused import whose file's reading was kept among its params.
    async with app_client(make_settings(tmp_path)) as http:
        imported = await start_import(http, SAMPLE / "responses.csv", "responses")
        await wait_for(http, imported["id"], {"completed"})
        teams = await start_teams(http, (SAMPLE / "teams.csv").read_bytes())
        await wait_for(http, teams["id"], {"completed"})
        later = await start_import(http, SAMPLE / "responses.csv", "later")
        assert (await http.post(f"/jobs/{later['id']}/pause")).json()["state"] == "paused"
        jobs_before = (await http.get("/jobs")).json()["items"]
        history_before = (await http.get(f"/jobs/{imported['id']}/history")).json()
        rows_before = await dataset_rows(http, "responses")
        teams_before = await all_teams(http)
    await _as_before_migrations(sqlite_url(path))
    assert "alembic_version" not in tables(path)
    assert len(jobs_before) == 3 and len(rows_before[1]) == 1000 and teams_before
    params, private = _params_and_private(path, later["id"])
    assert private is None
    assert {"_codec", "_data_offset", "_data_line"} <= params.keys()

    server = ServerProcess(tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            assert (await http.get("/jobs")).json()["items"] == jobs_before
            history = (await http.get(f"/jobs/{imported['id']}/history")).json()
            assert history == history_before
            assert await dataset_rows(http, "responses") == rows_before
            assert await all_teams(http) == teams_before
            # The paused import reads its file as before: it goes on to the same rows.
            await http.post(f"/jobs/{later['id']}/resume")
            await wait_for(http, later["id"], {"completed"})
            assert (await dataset_rows(http, "later"))[1] == rows_before[1]
            # And it goes on working: a new job writes beside the old ones.
            appended = await start_import(
                http, SAMPLE / "responses.csv", "responses", mode="append"
            )
            await wait_for(http, appended["id"], {"completed"})
            assert len((await dataset_rows(http, "responses"))[1]) == 2000
    finally:
        server.stop()
    assert "stamped at revision" in server.log.read_text()
    assert revision(path) == [HEAD]
    assert sqlite_differences(path) == []
    params, private = _params_and_private(path, later["id"])
    assert not [k for k in params if k.startswith("_")]
    assert private is not None and {"codec", "data_offset", "data_line"} <= private.keys()


async def test_a_database_with_only_some_of_the_tables_is_refused_unchanged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "collect.db"
    await _baseline_without_revision(sqlite_url(path))
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE team_stage")
        conn.execute("ALTER TABLE job DROP COLUMN checkpoint")
    before = schema_sql(path)

    done = await asyncio.to_thread(collect_migrate, "--database-url", sqlite_url(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "table team_stage is missing" in done.stderr
    assert "column job.checkpoint is missing" in done.stderr
    assert "Nothing was changed" in done.stderr
    assert schema_sql(path) == before


async def test_rows_that_refer_to_no_row_stop_the_migration_unchanged(tmp_path: Path) -> None:
    # Foreign keys are off on the migrating connection, so that rebuilding a table cannot
    # delete rows by cascade; they are checked before the commit instead.
    path = tmp_path / "collect.db"
    await _baseline_without_revision(sqlite_url(path))
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO job_rejection (job_id, reason, raw) VALUES ('gone', 'x', '')")
    with pytest.raises(migrations.SchemaMismatch, match="rows of job_rejection refer"):
        await migrations.upgrade(sqlite_url(path))
    assert "alembic_version" not in tables(path)


def test_two_servers_started_together_on_a_new_database_both_come_up(tmp_path: Path) -> None:
    path = tmp_path / "collect.db"
    servers = [ServerProcess(tmp_path), ServerProcess(tmp_path)]
    # The test holds the database's write lock until both servers are starting, so that
    # both reach the migration's lock while it is taken, and contend for it once it is free.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            started = [pool.submit(server.start) for server in servers]
            deadline = time.monotonic() + 30
            while not all(
                server.log.exists() and "Waiting for application startup" in server.log.read_text()
                for server in servers
            ):
                assert time.monotonic() < deadline, "the servers did not start"
                time.sleep(0.01)
            holder.execute("COMMIT")
            for start in started:
                start.result()
        for server in servers:
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            assert httpx.get(f"{server.url}/jobs", timeout=10).json()["items"] == []
    finally:
        holder.close()
        for server in servers:
            if server.proc is not None:
                server.stop()
    # One created the schema; the other waited for it, then found nothing to do.
    logs = [server.log.read_text() for server in servers]
    assert sorted("Created the schema" in log for log in logs) == [False, True], logs
    assert sum("nothing to do" in log for log in logs) == 1, logs
    assert revision(path) == [HEAD]
    assert sqlite_differences(path) == []


def test_collect_migrate_brings_a_new_file_to_head_then_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new" / "collect.db"
    first = collect_migrate(COLLECT_DATABASE_URL=sqlite_url(path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"Created the schema at revision {HEAD}" in first.stdout
    assert revision(path) == [HEAD]
    schema = schema_sql(path)

    # The option wins over the environment.
    second = collect_migrate(
        "--database-url", sqlite_url(path), COLLECT_DATABASE_URL=sqlite_url(tmp_path / "other.db")
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"at revision {HEAD}, the newest: nothing to do" in second.stdout
    assert schema_sql(path) == schema
    assert not (tmp_path / "other.db").exists()


async def postgres_differences(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(differences)
    finally:
        await engine.dispose()


async def test_postgresql_a_new_database_gets_the_models_schema(postgres_url: str) -> None:
    migration = await migrations.upgrade(postgres_url)
    assert (migration.before, migration.after, migration.stamped) == (None, HEAD, False)
    assert await postgres_differences(postgres_url) == []
    again = await migrations.upgrade(postgres_url)
    assert (again.before, again.after, again.changed) == (HEAD, HEAD, False)


async def test_postgresql_migrators_started_together_take_turns(postgres_url: str) -> None:
    # The test holds the migration's lock until every migrator waits for it.
    plain = make_url(postgres_url).set(drivername="postgresql")
    holder = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", migrations.ADVISORY_LOCK_KEY)
            migrators = [asyncio.create_task(migrations.upgrade(postgres_url)) for _ in range(3)]
            deadline = time.monotonic() + 30
            while await holder.fetchval(WAITING_FOR_THE_LOCK, migrations.ADVISORY_LOCK_KEY) < 3:
                assert time.monotonic() < deadline, "the migrators did not all wait for the lock"
                await asyncio.sleep(0.01)
        done = await asyncio.gather(*migrators)
    finally:
        await holder.close()
    assert sorted((m.before or "") for m in done) == ["", HEAD, HEAD]
    assert await postgres_differences(postgres_url) == []


async def test_postgresql_a_database_made_before_migrations_is_stamped(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    job_id = new_job_id()
    try:
        await migrations.upgrade(postgres_url)
        async with engine.begin() as conn:
            await insert_job(
                conn,
                job_id=job_id,
                tenant="default",
                kind="import",
                params={"dataset": "responses", "encoding": "utf-8"},
                private={"codec": "utf-8-sig", "data_offset": 17, "data_line": 2},
                progress=Progress(done=0, total=None, percent=0, unit="records"),
                actor="default",
            )
        await _as_before_migrations(postgres_url)
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda c: sa.inspect(c).get_columns("job"))
            (before,) = (await conn.exec_driver_sql("SELECT params FROM job")).scalars()
        assert "private" not in {c["name"] for c in columns}
        assert before == {
            "dataset": "responses",
            "encoding": "utf-8",
            "_codec": "utf-8-sig",
            "_data_offset": 17,
            "_data_line": 2,
        }
        migration = await migrations.upgrade(postgres_url)
        assert (migration.before, migration.after, migration.stamped) == (None, HEAD, True)
        async with engine.connect() as conn:
            kept = (await conn.exec_driver_sql("SELECT id, state, params, private FROM job")).all()
            history = (await conn.exec_driver_sql("SELECT count(*) FROM job_history")).scalar()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in kept] == [
        (
            job_id,
            "queued",
            {"dataset": "responses", "encoding": "utf-8"},
            {"codec": "utf-8-sig", "data_offset": 17, "data_line": 2},
        )
    ]
    assert history == 1
    assert await postgres_differences(postgres_url) == []
