"""The import kind: load a CSV of form responses into a named dataset.

Checkpoint: ``csvsource``'s ``{offset, line, records, rejected}`` plus ``rows``, the rows
staged. Each chunk is read, and its rows written into the job's staging table, by the data
plane's worker, and committed there with the checkpoint that covers them, so a resumed run
seeks to ``offset`` and reads nothing twice. The staged rows become the dataset's in the
transaction that marks the job completed.
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.csvio import Header
from collect_api.csvio.sniff import SNIFF_BYTES
from collect_api.db import Database, raise_if_interrupted
from collect_api.errors import Conflict, DatasetNotFound, Unprocessable
from collect_api.jobs import store
from collect_api.jobs.context import JobContext, RunLost
from collect_api.jobs.failure import JobFailure
from collect_api.jobs.models import TERMINAL, Job
from collect_api.jobs.progress import Progress
from collect_api.kinds.csvsource import (
    CsvCheckpoint,
    CsvKind,
    Staged,
    Upload,
    WriteChunk,
    checkpoint_progress,
    first_checkpoint,
    form_field,
    inspect_upload,
    remote_failure,
    upload_path,
)
from collect_api.settings import Settings
from collect_api.storage import datasets
from collect_api.storage.dataplane.client import DataPlane, ImportFeed, RemoteError, WorkerDied
from collect_api.storage.files import ORPHAN_GRACE_S, working_files
from collect_api.storage.rejections import REJECTION

log = logging.getLogger("collect.imports")


class Checkpoint(CsvCheckpoint):
    """``csvsource``'s, and the ``rows`` staged so far."""

    rows: int


MODES = ("create", "append", "replace")


def dataset_field(upload: Upload) -> str:
    dataset = upload.fields.get("dataset", "").strip()
    if not dataset:
        raise Unprocessable(
            "form field 'dataset' is required: the dataset to import into", field="dataset"
        )
    if not datasets.DATASET_NAME.fullmatch(dataset):
        raise Unprocessable(
            f"dataset name {dataset!r} is not allowed: use 1 to 63 lower-case letters, digits "
            "and underscores, starting with a letter",
            field="dataset",
        )
    return dataset


# Bytes an upload must have before its import starts: enough to sniff it as a whole file is.
EARLY_START_BYTES = SNIFF_BYTES + 64 * 1024


def open_feed(
    dataplane: DataPlane,
    settings: Settings,
    *,
    job_id: str,
    params: Mapping[str, Any],
    private: Mapping[str, Any],
    path: Path,
) -> AbstractAsyncContextManager[ImportFeed]:
    """The data plane's session that stages the upload at ``path`` for job ``job_id``, read
    as the job's ``params`` and ``private`` say."""
    return dataplane.import_session(
        upload=str(path),
        stage_table=datasets.stage_table(job_id),
        rejection_table=str(REJECTION.name),  # a quoted_name: plain values only cross
        job_id=job_id,
        encoding=(params["encoding"], private["codec"]),
        delimiter=params["delimiter"],
        columns=params["columns"],
        max_field_bytes=settings.max_field_bytes,
    )


def stage_options(settings: Settings, params: dict[str, Any], cp: Checkpoint) -> dict[str, Any]:
    """What a chunk's staging takes: where it starts, how many records, the error policy."""
    return {
        "position": {k: cp[k] for k in ("offset", "line", "records")},
        "max_records": settings.chunk_rows,
        "on_error": params["on_error"],
        "max_errors": params["max_errors"],
        "rejected": cp["rejected"],
    }


def advanced(cp: Checkpoint, staged: dict[str, Any]) -> Checkpoint:
    """The checkpoint after a chunk that ``stage`` read from ``cp``."""
    return {
        **cp,
        **staged["next"],
        "rejected": cp["rejected"] + staged["rejected"],
        "rows": cp["rows"] + staged["rows"],
    }


class EarlyImport:
    """Import an upload while it still arrives, so that little is left once it is whole.

    The request that receives the upload owns this and its one task: ``file_started``
    (called as the file part begins, the form fields before it known) starts the task,
    ``received`` says how many bytes are written to the file, and ``stop`` (always called,
    in a ``finally``) says the upload ended and awaits the task. The task stages whole
    records, a chunk at a time, into the job's staging table, each chunk committed by
    itself; the job row is written only when the upload is whole (``submit_import``), with
    the checkpoint after the last chunk, or never: then ``discard`` drops the table. The
    task is never cancelled: it stops after the chunk in flight, or rolls that chunk back
    when the upload failed.

    Nothing here can fail the upload: a problem (a form the submission will refuse, a chunk
    the fast reader declines, a bad record) only ends the early start, and the job reads
    the rest as it would have read all of it.
    """

    def __init__(
        self, *, db: Database, settings: Settings, dataplane: DataPlane, job_id: str, path: Path
    ) -> None:
        self._db = db
        self._settings = settings
        self._dataplane = dataplane
        self._job_id = job_id
        self._path = path
        self._received = 0
        self._whole = False
        self._failed = False
        self._more = asyncio.Event()
        self._task: asyncio.Future[None] | None = None
        self._feed: ImportFeed | None = None
        self.table = False
        self.staged: Staged | None = None

    def file_started(self, upload: Upload) -> None:
        if self._task is not None or not self._dataplane.has_room:
            return
        try:
            dataset_field(upload)
            form_field(upload, "mode", "create", MODES)
        except Unprocessable:
            return  # the submission refuses it
        fields = dict(upload.fields)
        self._task = asyncio.ensure_future(self._run(fields))

    def received(self, size: int) -> None:
        self._received = size
        self._more.set()

    async def stop(self, *, failed: bool) -> None:
        """The upload has ended (``failed``: it will not be submitted); wait for the task."""
        self._whole = True
        self._failed = failed
        self._more.set()
        if failed and self._feed is not None:
            self._feed.interrupt()  # the chunk in flight is of no use
        task = self._task
        if task is None:
            return
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:  # the task still has to end first
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def discard(self) -> None:
        """Drop what was staged: the upload was refused or cut off. If that fails too, the
        table has no job and no upload file any more, and housekeeping drops it."""
        if not self.table:
            return
        try:
            async with self._db.write() as conn:
                await datasets.drop_table(conn, datasets.stage_table(self._job_id))
        except Exception:
            log.warning(
                "job %s: could not drop what its upload staged", self._job_id, exc_info=True
            )
            return
        self.table = False

    async def _arrived(self, size: int) -> bool:
        """Wait until more than ``size`` bytes are written; False once the upload ended."""
        while not self._whole and self._received <= size:
            self._more.clear()
            if self._whole or self._received > size:
                break
            await self._more.wait()
        return not self._whole

    async def _run(self, fields: dict[str, str]) -> None:
        try:
            await self._stage(fields)
        except Exception as exc:  # the job reads the rest itself
            log.debug("job %s: early import stopped: %s", self._job_id, exc)
        finally:
            self._feed = None

    async def _stage(self, fields: dict[str, str]) -> None:
        if not await self._arrived(EARLY_START_BYTES - 1):
            return
        upload = Upload(fields=fields, received_file=True)
        reading = await inspect_upload(settings=self._settings, upload=upload, path=self._path)
        params = reading.params
        stage = datasets.stage_table(self._job_id)
        async with self._db.write() as conn:
            await datasets.create_table(conn, stage, len(params["columns"]))
        self.table = True
        cp: Checkpoint = {**first_checkpoint(reading.private), "rows": 0}
        async with open_feed(
            self._dataplane,
            self._settings,
            job_id=self._job_id,
            params=params,
            private=reading.private,
            path=self._path,
        ) as feed:
            self._feed = feed
            while not self._whole:
                upto = self._received
                staged = await feed.stage_received(
                    upto=upto, **stage_options(self._settings, params, cp)
                )
                if staged is None:
                    if upto - cp["offset"] > 4 * EARLY_START_BYTES + self._settings.max_field_bytes:
                        return  # not for want of bytes: the job reads this chunk exactly
                    if not await self._arrived(upto):
                        return
                    continue
                if self._failed:
                    await feed.rollback()
                    return
                try:
                    committed = await feed.commit("SELECT 1", [])  # no job row yet
                except BaseException:
                    await feed.rollback()
                    raise
                assert committed
                cp = advanced(cp, staged)
                self.staged = Staged(reading=reading, checkpoint=cp)


class ImportKind(CsvKind):
    name: ClassVar[str] = "import"
    kept: ClassVar[str] = "rows"

    def form_params(self, upload: Upload) -> dict[str, Any]:
        return {
            "dataset": dataset_field(upload),
            "mode": form_field(upload, "mode", "create", MODES),
        }

    async def admit(
        self,
        conn: AsyncConnection,
        *,
        tenant: str,
        job_id: str,
        params: dict[str, Any],
        header: Header,
        staged: bool,
    ) -> None:
        dataset, mode = params["dataset"], params["mode"]
        existing = await datasets.find_dataset(conn, tenant=tenant, name=dataset)
        if mode == "create" and existing is not None:
            raise Conflict(
                f"dataset {dataset!r} already exists; use mode=append to add rows or "
                "mode=replace to replace it",
                dataset=dataset,
            )
        if mode == "append":
            if existing is None:
                raise DatasetNotFound(dataset)
            missing = [c for c in existing.columns if c not in header.columns]
            extra = [c for c in header.columns if c not in existing.columns]
            if missing or extra:
                raise Unprocessable(
                    f"the file's columns do not match dataset {dataset!r}: missing {missing}, "
                    f"extra {extra}",
                    missing=missing,
                    extra=extra,
                )
        if not staged:  # what the upload staged as it arrived, if anything, was read otherwise
            await datasets.drop_table(conn, datasets.stage_table(job_id))

    async def begin(self, conn: AsyncConnection, job: Job) -> None:
        await datasets.create_table(conn, datasets.stage_table(job.id), len(job.params["columns"]))

    @contextlib.asynccontextmanager
    async def chunks(
        self, ctx: JobContext, checkpoint: Mapping[str, Any]
    ) -> AsyncIterator[WriteChunk]:
        """Chunks read and written by the data plane's worker, each committed there with
        the checkpoint statement that covers it."""
        job = ctx.job
        p = job.params
        size = int(p["bytes"])
        spent = {"chunks": 0, "read": 0.0, "write": 0.0, "commit": 0.0}
        started, records_before = time.monotonic(), checkpoint["records"]
        reached = dict(checkpoint)
        try:
            async with open_feed(
                self.dataplane,
                self.settings,
                job_id=job.id,
                params=p,
                private=job.private,
                path=upload_path(self.settings, job.id),
            ) as feed:
                checkpoint_statement = ctx.checkpoint_statement()

                async def chunk(before: Checkpoint) -> tuple[Checkpoint, Progress, bool, bool]:
                    staged = await feed.stage(**stage_options(self.settings, p, before))
                    after = advanced(before, staged)
                    shown = checkpoint_progress(after, size=size, rate=ctx.rate(after["records"]))
                    statement = checkpoint_statement(checkpoint=after, progress=shown)
                    committing = time.monotonic()
                    try:
                        raise_if_interrupted()
                        applied = await feed.commit(*statement)
                    except BaseException:
                        await feed.rollback()
                        raise
                    spent["chunks"] += 1
                    spent["read"] += staged["read_s"]
                    spent["write"] += staged["write_s"]
                    spent["commit"] += time.monotonic() - committing
                    return after, shown, applied, staged["at_end"]

                async def write_chunk(before: dict[str, Any]) -> tuple[dict[str, Any], bool]:
                    after, shown, applied, at_end = await ctx.step(
                        functools.partial(chunk, cast(Checkpoint, before)),
                        interrupt=feed.interrupt,
                    )
                    if not applied:
                        await ctx.refused()
                    ctx.saved(checkpoint=after, progress=shown)
                    reached.update(after)
                    return dict(after), at_end

                yield write_chunk
        except RemoteError as exc:
            raise remote_failure(exc) from None
        except WorkerDied as exc:
            raise RunLost(str(exc)) from None
        log.info(
            "job %s read %d records in %d chunks in %.2f s: reading %.2f s, writing "
            "%.2f s, committing %.2f s",
            job.id,
            reached["records"] - records_before,
            spent["chunks"],
            time.monotonic() - started,
            spent["read"],
            spent["write"],
            spent["commit"],
        )

    async def publish(
        self, conn: AsyncConnection, job: Job, done: Mapping[str, Any]
    ) -> dict[str, Any]:
        p = job.params
        try:
            dataset = await datasets.publish_import(
                conn,
                tenant=job.tenant,
                name=p["dataset"],
                mode=p["mode"],
                job_id=job.id,
                columns=p["columns"],
                staged_rows=done["rows"],
            )
        except datasets.PublishConflict as exc:
            raise JobFailure(str(exc), code="dataset_changed") from None
        return {
            "dataset": dataset.name,
            "rows_imported": done["rows"],
            "rows_rejected": done["rejected"],
            "dataset_rows": dataset.row_count,
            "columns": p["columns"],
        }

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        await datasets.drop_table(conn, datasets.stage_table(job.id))

    async def housekeep(self, db: Database) -> None:
        """Uploads no job needs, and staging tables of finished jobs: an end recorded while
        the disk was full leaves its rollback to this."""
        await super().housekeep(db)
        async with db.read() as conn:
            staged = await datasets.stage_tables(conn)
            jobs = await store.jobs_by_id(conn, ids=list(staged))
        # An upload still arriving has a staging table and no job yet (``EarlyImport``): its
        # file is younger than the grace that ``sweep_uploads`` gives it.
        arriving = {
            f.job_id
            for f in await asyncio.to_thread(working_files, self.settings.uploads_dir)
            if f.age_s <= ORPHAN_GRACE_S
        }
        for job_id, table in staged.items():
            job = jobs.get(job_id)
            if (job is None and job_id not in arriving) or (
                job is not None and job.state in TERMINAL
            ):
                async with db.write() as conn:
                    await datasets.drop_table(conn, table)
