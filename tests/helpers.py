"""What the tests do again and again: upload, wait on a state with a deadline, read rows,
and check that a bad request or file harmed nothing."""

import asyncio
import csv
import io
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from collect_api.db import WRITE_LOCK_STATEMENT, asyncpg_dsn
from collect_api.settings import Settings

TERMINAL = {"completed", "failed", "terminated"}
PROBLEM = "application/problem+json"


async def upload(
    client: httpx.AsyncClient, source: Path | bytes, dataset: str, **fields: str
) -> httpx.Response:
    content = await asyncio.to_thread(source.read_bytes) if isinstance(source, Path) else source
    return await client.post(
        "/imports",
        files={"file": ("data.csv", content, "text/csv")},
        data={"dataset": dataset, **fields},
    )


async def start_import(
    client: httpx.AsyncClient, source: Path | bytes, dataset: str, **fields: str
) -> dict[str, Any]:
    response = await upload(client, source, dataset, **fields)
    assert response.status_code == 202, response.text
    return response.json()


async def wait_for(
    client: httpx.AsyncClient,
    job_id: str,
    states: set[str],
    timeout: float = 60,  # noqa: ASYNC109 - a polling deadline, failing the test when reached
) -> dict[str, Any]:
    """Poll the job until its state is one of ``states``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["state"] in states:
            return job
        assert job["state"] not in TERMINAL, f"job ended {job['state']}: {job['error']}"
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s"
        await asyncio.sleep(0.01)


async def wait_progress(
    client: httpx.AsyncClient,
    job_id: str,
    at_least: int,
    timeout: float = 60,  # noqa: ASYNC109 - a polling deadline, failing the test when reached
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["progress"]["done"] >= at_least or job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"no progress past {at_least} after {timeout}s"
        await asyncio.sleep(0.005)


async def dataset_rows(client: httpx.AsyncClient, name: str) -> tuple[list[str], list[list[str]]]:
    """Every row of a dataset, page by page, following the ``next`` cursor."""
    rows: list[list[str]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        response = await client.get(f"/datasets/{name}/rows", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        rows.extend(page["rows"])
        after = page["next"]
        if after is None:
            return page["columns"], rows


def csv_bytes(header: list[str], rows: list[list[str]], *, lineterminator: str = "\r\n") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def read_csv(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8-sig")
    return [r for r in csv.reader(io.StringIO(text, newline="")) if r]


# --- Bad input harms nothing ---------------------------------------------------------------

KEEP_HEADER = ["id", "text"]
KEEP_ROWS = [["1", 'kept, "quoted"'], ["2", "ça\r\nva"], ["3", ""]]


@dataclass
class Keep:
    """The dataset every test must leave alone, as it was before the bad request."""

    job: dict[str, Any]
    dataset: dict[str, Any]
    columns: list[str]
    rows: list[list[str]]
    server_errors: list[str] = field(default_factory=list)


async def assert_unharmed(client: httpx.AsyncClient, keep: Keep) -> None:
    """``keep`` and its job are untouched, the service answers, and nothing was a 5xx."""
    assert (await client.get("/datasets/keep")).json() == keep.dataset
    assert await dataset_rows(client, "keep") == (keep.columns, keep.rows)
    assert (await client.get(f"/jobs/{keep.job['id']}")).json() == keep.job
    health = await client.get("/healthz")
    assert health.status_code == 200, health.text
    assert keep.server_errors == []


def problem(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` whose detail holds ``needles``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    for needle in needles:
        assert needle in body["detail"], f"{needle!r} not in {body['detail']!r}"
    return body


async def assert_no_new_job(client: httpx.AsyncClient, keep: Keep, settings: Settings) -> None:
    """A refused request created no job and left no upload behind."""
    jobs = (await client.get("/jobs")).json()["items"]
    assert [j["id"] for j in jobs] == [keep.job["id"]]
    assert list(settings.uploads_dir.iterdir()) == []


async def table_names(database_url: str) -> set[str]:
    """The tables of the database at ``database_url``, on either backend."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def query(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (named ``:params``) on the database at ``database_url``, read on
    a connection of the test's own."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql), params)]
    finally:
        await engine.dispose()


async def execute(database_url: str, sql: str, **params: Any) -> int:
    """Run ``sql`` (named ``:params``) and commit, on a connection of the test's own; the
    rows it changed."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            return (await conn.execute(text(sql), params)).rowcount
    finally:
        await engine.dispose()


async def take_write_lock(database_url: str, timeout: float) -> float:  # noqa: ASYNC109 - the lock's own timeout
    """Take and give back the engine's write lock from a connection of the test's own:
    SQLite's (``BEGIN IMMEDIATE``) or, on PostgreSQL, the advisory lock every writer
    takes; the seconds it took. Fails if it is not had within ``timeout``."""
    started = time.monotonic()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":

        def lock_and_release() -> None:
            conn = sqlite3.connect(url.database or "", timeout=timeout)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()

        await asyncio.to_thread(lock_and_release)
    else:
        pg = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await pg.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            async with pg.transaction():
                await pg.execute(WRITE_LOCK_STATEMENT)
        finally:
            await pg.close()
    return time.monotonic() - started
