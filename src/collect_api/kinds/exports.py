"""The export kind: write a dataset, filtered and projected, to a downloadable CSV file.

The export is a snapshot of the dataset as it was when the job started: it reads the rows
of the table that held the dataset then, up to the row key that was last then (keyset
pagination on ``_row``, never OFFSET). Rows appended later have greater keys and are not
read; a replaced or deleted dataset makes the job fail rather than mix versions.

Checkpoint: ``{last_row, bytes, rows, ...}`` — the last row key written, the file's size
and the rows written, committed after the chunk's bytes are in the file, and only while the
dataset is still that table. On SQLite the data plane's worker that wrote the chunk commits
its checkpoint too (the checkpoint statement holds that condition); on PostgreSQL this
process commits it, with the chunk's bytes kept in the database for every server
(``storage.shared``). A resumed run cuts the file back to ``bytes`` and reads on from
``last_row``.
"""

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, TypedDict, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database, raise_if_interrupted
from collect_api.errors import DatasetNotFound, Unprocessable
from collect_api.ids import utcnow
from collect_api.jobs import store
from collect_api.jobs.context import JobContext, RunLost
from collect_api.jobs.failure import JobFailure
from collect_api.jobs.models import TERMINAL, Job, JobState
from collect_api.jobs.progress import Progress
from collect_api.settings import Settings
from collect_api.storage import datasets
from collect_api.storage.dataplane.client import DataPlane, RemoteError, WorkerDied
from collect_api.storage.exports import encode_chunk, export_path, read_at, write_at
from collect_api.storage.files import ORPHAN_GRACE_S, remove, working_files
from collect_api.storage.filters import Filter, FilterProblem, check_filters
from collect_api.storage.shared import SharedFiles, result_name

log = logging.getLogger("collect.exports")

# Rows per gzip member: fixed when an export starts, so that its file does not depend on
# when it was paused.
GZIP_MEMBER_ROWS = 100_000


def _progress(
    *,
    rows: int,
    total: int | None,
    size: int,
    rate: float | None,
    done: bool = False,
    position: float = 0.0,
) -> Progress:
    """Progress by rows written. With filters the total is not counted up front: percent
    and ETA then go by ``position``, the fraction of the snapshot's row keys read."""
    if done:
        percent = 100.0
    elif total:
        percent = min(99.99, int(rows * 10000 / total) / 100)
    else:
        percent = min(99.99, int(position * 10000) / 100)
    eta = None
    if rate and not done and total is not None:
        eta = round((total - rows) / rate, 1)
    elif rate and not done and 0 < position < 1 and rows:
        eta = round(rows / position * (1 - position) / rate, 1)
    return Progress(
        done=rows,
        total=total,
        percent=percent,
        unit="rows",
        bytes_done=size,
        bytes_total=size if done else None,
        rate_per_s=round(rate, 1) if rate else None,
        eta_s=0.0 if done else eta,
    )


class ExportCheckpoint(TypedDict):
    """Where an export stands: its snapshot (``table`` up to ``max_row``), what it writes
    (``columns`` of the table, ``projection`` their indexes in the file), how far it is
    (``last_row`` the last key covered, ``bytes`` the file's size, ``rows`` written, of
    ``total`` when counted) and ``chunk_rows``, the most keys a chunk covers."""

    table: str
    columns: list[str]
    projection: list[int]
    max_row: int
    total: int | None
    chunk_rows: int
    last_row: int
    bytes: int
    rows: int


@dataclass(frozen=True)
class ExportRequest:
    """What an export is asked for: the dataset, the columns (all when None), the filters
    and whether the file is gzipped."""

    dataset: str
    columns: list[str] | None
    filters: list[Filter]
    gzipped: bool


class ExportKind:
    name: ClassVar[str] = "export"

    def __init__(self, settings: Settings, dataplane: DataPlane) -> None:
        self.settings = settings
        self.dataplane = dataplane

    async def submit(
        self, db: Database, *, tenant: str, job_id: str, request: ExportRequest
    ) -> Job:
        """Validate an export request against the dataset and queue its job."""
        dataset, columns, filters = request.dataset, request.columns, request.filters
        async with db.write() as conn:
            try:
                found = await datasets.get_dataset(conn, tenant=tenant, name=dataset)
            except DatasetNotFound as exc:
                raise Unprocessable(exc.detail, field="dataset") from None
            if columns is not None:
                unknown = [c for c in columns if c not in found.columns]
                if unknown:
                    raise Unprocessable(
                        f"dataset {dataset!r} has no column {unknown[0]!r}; its columns are "
                        f"{found.columns}",
                        field="columns",
                    )
                if not columns or len(set(columns)) != len(columns):
                    raise Unprocessable(
                        "columns must name each column once, and at least one", field="columns"
                    )
            try:
                check_filters(filters, found.columns)
            except FilterProblem as exc:
                raise Unprocessable(str(exc), field=exc.field) from None
            params = {
                "dataset": dataset,
                "columns": columns,
                "filters": [{"column": f.column, "op": f.op, "value": f.value} for f in filters],
                "gzip": request.gzipped,
            }
            return await store.insert_job(
                conn,
                job_id=job_id,
                tenant=tenant,
                kind=self.name,
                params=params,
                progress=_progress(rows=0, total=None, size=0, rate=None),
                actor=tenant,
            )

    def path(self, job: Job) -> Path:
        return export_path(self.settings.exports_dir, job.id, gzipped=bool(job.params["gzip"]))

    async def run(self, ctx: JobContext) -> None:
        job = ctx.job
        p = job.params
        path = self.path(job)
        shared = SharedFiles(ctx.db)
        name = result_name(job.id)
        cp = cast(ExportCheckpoint, job.checkpoint) if job.checkpoint else None
        if cp is None:
            cp = await self._begin(ctx, path)
        elif not await shared.fetch(name, path, size=cp["bytes"]):
            raise JobFailure(
                "the part of the file written before the export was paused is no longer kept "
                "(deleted from the data dir?); export the dataset again",
                code="result_missing",
            )
        table = cp["table"]

        async def unchanged(conn: AsyncConnection) -> None:
            current = await datasets.find_dataset(conn, tenant=job.tenant, name=p["dataset"])
            if current is None or current.table_name != table:
                what = "deleted" if current is None else "replaced"
                raise JobFailure(
                    f"dataset {p['dataset']!r} was {what} while it was being exported; "
                    "export it again",
                    code="dataset_changed",
                )

        async def commit(conn: AsyncConnection, *, start: int, part: bytes) -> None:
            await unchanged(conn)
            await shared.add_part(conn, name, start, part)

        spent = {"chunks": 0, "write": 0.0, "commit": 0.0}
        started, rows_before = time.monotonic(), cp["rows"]
        # Committed in the worker only where the dataset is still the table being read.
        checkpoint_statement = ctx.checkpoint_statement(
            provided=[datasets.still_in(tenant=job.tenant, name=p["dataset"], table=table)]
        )
        try:
            async with self.dataplane.export_session(
                table=cp["table"],
                columns=cp["columns"],
                projection=cp["projection"],
                filters=p["filters"],
                path=str(path),
                gzipped=bool(p["gzip"]),
            ) as feed:

                async def write(before: ExportCheckpoint) -> tuple[ExportCheckpoint, Progress]:
                    """The next chunk written to the file, and the checkpoint after it. Gzip
                    output is a member per chunk: its chunks are a fixed number of rows, so
                    that a resumed export is byte-identical. Plain CSV chunks take about a
                    quarter second (the worker sizes them)."""
                    writing = time.monotonic()
                    wrote = await feed.chunk(
                        after=before["last_row"],
                        upto=before["max_row"],
                        limit=before["chunk_rows"],
                        fixed=bool(p["gzip"]),
                        offset=before["bytes"],
                    )
                    spent["write"] += time.monotonic() - writing
                    written = before["rows"] + wrote["rows"]
                    after: ExportCheckpoint = {
                        **before,
                        "last_row": wrote["last_row"],
                        "bytes": wrote["bytes"],
                        "rows": written,
                    }
                    return after, _progress(
                        rows=written,
                        total=after["total"],
                        size=after["bytes"],
                        rate=ctx.rate(written),
                        position=after["last_row"] / after["max_row"] if after["max_row"] else 1,
                    )

                async def write_and_commit(
                    before: ExportCheckpoint,
                ) -> tuple[ExportCheckpoint, Progress, bool]:
                    """``write``, and its checkpoint committed by the worker too; False if the
                    checkpoint statement applied to no row."""
                    after, progress = await write(before)
                    statement = checkpoint_statement(checkpoint=after, progress=progress)
                    raise_if_interrupted()
                    committing = time.monotonic()
                    applied = await feed.commit(*statement)
                    spent["commit"] += time.monotonic() - committing
                    return after, progress, applied

                await ctx.read(unchanged)
                while cp["last_row"] < cp["max_row"]:
                    if shared.enabled:
                        # The chunk's bytes are kept with its checkpoint where every server
                        # finds them, in a transaction of this process.
                        after, progress = await ctx.step(
                            functools.partial(write, cp), interrupt=feed.interrupt
                        )
                        part = await asyncio.to_thread(read_at, path, cp["bytes"], after["bytes"])
                        committing = time.monotonic()
                        await ctx.chunk(
                            functools.partial(commit, start=cp["bytes"], part=part),
                            checkpoint=after,
                            progress=progress,
                        )
                        spent["commit"] += time.monotonic() - committing
                    else:
                        after, progress, applied = await ctx.step(
                            functools.partial(write_and_commit, cp), interrupt=feed.interrupt
                        )
                        if not applied:
                            await ctx.read(unchanged)  # raises if the dataset changed
                            await ctx.refused()
                        ctx.saved(checkpoint=after, progress=progress)
                    cp = after
                    spent["chunks"] += 1
        except RemoteError:
            await ctx.read(unchanged)  # a table dropped under the read: the dataset changed
            raise
        except WorkerDied as exc:
            raise RunLost(str(exc)) from None
        # Make the file durable before the job says it is complete.
        syncing = time.monotonic()
        await asyncio.to_thread(write_at, path, cp["bytes"], b"", sync=True)
        log.info(
            "job %s wrote %d rows in %d chunks in %.2f s: reading and writing %.2f s, "
            "committing %.2f s, making the file durable %.2f s",
            job.id,
            cp["rows"] - rows_before,
            spent["chunks"],
            time.monotonic() - started,
            spent["write"],
            spent["commit"],
            time.monotonic() - syncing,
            extra={"job_id": job.id},
        )
        await ctx.chunk(
            functools.partial(
                ctx.finish,
                result={
                    "dataset": p["dataset"],
                    "rows": cp["rows"],
                    "bytes": cp["bytes"],
                    "filename": download_name(job),
                    "download_url": f"/jobs/{job.id}/result",
                },
                progress=_progress(
                    rows=cp["rows"],
                    total=cp["rows"],
                    size=cp["bytes"],
                    rate=ctx.rate(cp["rows"]),
                    done=True,
                ),
            )
        )

    async def _begin(self, ctx: JobContext, path: Path) -> ExportCheckpoint:
        """Fix the snapshot (table and last row key) and, with no filters, its rows to come;
        write the header."""
        job = ctx.job
        p = job.params

        async def snapshot(conn: AsyncConnection) -> tuple[datasets.Dataset, int, int | None]:
            found = await datasets.find_dataset(conn, tenant=job.tenant, name=p["dataset"])
            if found is None:
                raise JobFailure(
                    f"dataset {p['dataset']!r} was deleted before the export started",
                    code="dataset_changed",
                )
            # A dataset table's rows change only when a job publishes, in the transaction
            # that sets its row count: in this snapshot the count is the table's. Counting
            # the rows again took 80 ms on 1M rows (SQLite reads every page to count).
            total = None if p["filters"] else found.row_count
            return found, await datasets.max_row(conn, found), total

        found, max_row, total = await ctx.read(snapshot)
        names = p["columns"] or found.columns
        header = encode_chunk([], header=names, gzipped=p["gzip"])
        size = await asyncio.to_thread(write_at, path, 0, header)
        cp: ExportCheckpoint = {
            "table": found.table_name,
            "columns": found.columns,
            "projection": [found.columns.index(c) for c in names],
            "max_row": max_row,
            "total": total,
            "chunk_rows": min(self.settings.chunk_rows, GZIP_MEMBER_ROWS)
            if p["gzip"]
            else self.settings.chunk_rows,
            "last_row": 0,
            "bytes": size,
            "rows": 0,
        }

        async def keep(conn: AsyncConnection) -> None:
            await SharedFiles(ctx.db).add_part(conn, result_name(job.id), 0, header)

        await ctx.chunk(
            keep,
            checkpoint=cp,
            progress=_progress(rows=0, total=total, size=size, rate=None, position=0),
        )
        return cp

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        """An export writes nothing to the database; its file goes in ``delete_files``."""

    def delete_files(self, job: Job) -> None:
        if job.state != JobState.COMPLETED:
            remove(self.path(job))

    async def fetch(self, db: Database, job: Job) -> Path | None:
        """The completed export's file here, fetched if another server made it; None if it
        is not kept."""
        path = self.path(job)
        size = int((job.result or {}).get("bytes") or 0)
        return path if await SharedFiles(db).fetch(result_name(job.id), path, size=size) else None

    async def housekeep(self, db: Database) -> None:
        """Expire results older than ``result_ttl`` (the job says so), and delete files no
        export needs, here and those kept in the database: of failed or terminated exports,
        or with no job at all."""
        cutoff = (datetime.now(UTC) - self.settings.result_ttl).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        async with db.read() as conn:
            due = await store.completed_before(conn, kind=self.name, before=cutoff)
        for job in due:
            if (job.result or {}).get("expired"):
                continue
            await asyncio.to_thread(remove, self.path(job))
            async with db.write() as conn:
                job = await store.get_job(conn, job_id=job.id)
                await store.update_job(
                    conn,
                    job,
                    result={
                        **(job.result or {}),
                        "expired": True,
                        "expired_at": utcnow(),
                        "download_url": None,
                    },
                )
        files = await asyncio.to_thread(working_files, self.settings.exports_dir)
        shared = SharedFiles(db)
        kept = await shared.kept(result_name(""))
        if not files and not kept:
            return
        async with db.read() as conn:
            jobs = await store.jobs_by_id(conn, ids=[f.job_id for f in files] + list(kept))

        def stale(job_id: str, age_s: float) -> bool:
            owner = jobs.get(job_id)
            if owner is None:
                return age_s > ORPHAN_GRACE_S
            if owner.state == JobState.COMPLETED:
                return bool((owner.result or {}).get("expired"))
            return owner.state in TERMINAL

        for file in files:
            if stale(file.job_id, file.age_s):
                await asyncio.to_thread(remove, file.path)
        now = time.time()
        await shared.delete(
            result_name(job_id)
            for job_id, saved_at in kept.items()
            if stale(job_id, now - saved_at)
        )


def download_name(job: Job) -> str:
    return f"{job.params['dataset']}-{job.id}.csv{'.gz' if job.params['gzip'] else ''}"
