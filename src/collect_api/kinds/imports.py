"""The import kind: load a CSV of form responses into a named dataset.

Checkpoint: ``csvsource``'s ``{offset, line, records, rejected}`` plus ``rows``, the rows
staged. Each chunk is read, and its rows written into the job's staging table, by the data
plane's worker, and committed there with the checkpoint that covers them, so a resumed run
seeks to ``offset`` and reads nothing twice. The staged rows become the dataset's in the
transaction that marks the job completed.
"""

import logging
import time
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.db import Database, raise_if_interrupted
from collect_api.errors import Conflict, DatasetNotFound, Unprocessable
from collect_api.jobs import store
from collect_api.jobs.context import JobContext, RunLost
from collect_api.jobs.models import TERMINAL, Job
from collect_api.jobs.store import REJECTION
from collect_api.jobs.supervisor import JobFailure
from collect_api.kinds.csvsource import (
    checkpoint_progress,
    first_checkpoint,
    form_field,
    inspect_upload,
    progress,
    release_upload,
    remote_failure,
    sweep_uploads,
    upload_path,
)
from collect_api.settings import Settings
from collect_api.storage import datasets
from collect_api.storage.dataplane import DataPlane, RemoteError, WorkerDied
from collect_api.storage.uploads import Upload

log = logging.getLogger("collect.imports")
Checkpoint = dict[str, Any]
MODES = ("create", "append", "replace")


async def submit_import(
    *, db: Database, settings: Settings, tenant: str, job_id: str, upload: Upload
) -> Job:
    """Validate a received upload (already at ``upload_path``) and queue its import job."""
    dataset = upload.fields.get("dataset", "").strip()
    if not dataset:
        raise Unprocessable(
            "form field 'dataset' is required: the dataset to import into", field="dataset"
        )
    if not datasets.DATASET_NAME.match(dataset):
        raise Unprocessable(
            f"dataset name {dataset!r} is not allowed: use 1 to 63 lower-case letters, digits "
            "and underscores, starting with a letter",
            field="dataset",
        )
    mode = form_field(upload, "mode", "create", MODES)
    params, header = await inspect_upload(
        settings=settings, upload=upload, path=upload_path(settings, job_id)
    )
    async with db.write() as conn:
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
        return await store.insert_job(
            conn,
            job_id=job_id,
            tenant=tenant,
            kind=ImportKind.name,
            params={"dataset": dataset, "mode": mode, **params},
            progress=progress(records=0, offset=0, size=params["bytes"], rate=None),
            actor=tenant,
        )


class ImportKind:
    name: ClassVar[str] = "import"

    def __init__(self, settings: Settings, dataplane: DataPlane) -> None:
        self.settings = settings
        self.dataplane = dataplane

    async def run(self, ctx: JobContext) -> None:
        job = ctx.job
        p = job.params
        width = len(p["columns"])
        stage = datasets.stage_table(job.id)
        size = int(p["bytes"])
        cp: Checkpoint
        if job.checkpoint is not None:
            cp = job.checkpoint
        else:
            cp = start = first_checkpoint(p, rows=0)

            async def create_stage(conn: AsyncConnection) -> None:
                await datasets.create_table(conn, stage, width)

            await ctx.chunk(
                create_stage,
                checkpoint=start,
                progress=progress(records=0, offset=start["offset"], size=size, rate=None),
            )
        try:
            async with self.dataplane.import_session(
                upload=str(upload_path(self.settings, job.id)),
                stage_table=stage,
                rejection_table=REJECTION.name,
                job_id=job.id,
                encoding=(p["encoding"], p["_codec"]),
                delimiter=p["delimiter"],
                columns=p["columns"],
                max_field_bytes=self.settings.max_field_bytes,
            ) as feed:
                at_end = cp["offset"] >= size
                spent = {"chunks": 0, "read": 0.0, "write": 0.0, "commit": 0.0}
                started, records_before = time.monotonic(), cp["records"]
                while not at_end:
                    before = cp

                    async def chunk(before: Checkpoint = before) -> tuple[Checkpoint, bool, float]:
                        staged = await feed.stage(
                            position={k: before[k] for k in ("offset", "line", "records")},
                            max_records=self.settings.chunk_rows,
                            on_error=p["on_error"],
                            max_errors=p["max_errors"],
                            rejected=before["rejected"],
                        )
                        after = {
                            **before,
                            **staged["next"],
                            "rejected": before["rejected"] + staged["rejected"],
                            "rows": before["rows"] + staged["rows"],
                        }
                        statement = ctx.checkpoint_statement(
                            checkpoint=after,
                            progress=checkpoint_progress(
                                after, size=size, rate=ctx.rate(after["records"])
                            ),
                        )
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
                        return after, applied, staged["at_end"]

                    cp, applied, at_end = await ctx.step(chunk, interrupt=feed.interrupt)
                    if not applied:
                        await ctx.refused()
                log.info(
                    "job %s read %d records in %d chunks in %.2f s: reading %.2f s, writing "
                    "%.2f s, committing %.2f s",
                    job.id,
                    cp["records"] - records_before,
                    spent["chunks"],
                    time.monotonic() - started,
                    spent["read"],
                    spent["write"],
                    spent["commit"],
                )
        except RemoteError as exc:
            raise remote_failure(exc) from None
        except WorkerDied as exc:
            raise RunLost(str(exc)) from None
        done = cp

        async def publish(conn: AsyncConnection) -> None:
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
            result: dict[str, Any] = {
                "dataset": dataset.name,
                "rows_imported": done["rows"],
                "rows_rejected": done["rejected"],
                "dataset_rows": dataset.row_count,
                "columns": p["columns"],
            }
            await ctx.finish(
                conn,
                result=result,
                progress=checkpoint_progress(
                    done, size=size, rate=ctx.rate(done["records"]), done=True
                ),
            )

        await ctx.chunk(publish)

    async def discard(self, conn: AsyncConnection, job: Job) -> None:
        await datasets.drop_table(conn, datasets.stage_table(job.id))

    def release(self, job: Job) -> None:
        release_upload(self.settings, job)

    async def housekeep(self, db: Database) -> None:
        """Uploads no job needs, and staging tables of finished jobs: an end recorded while
        the disk was full leaves its rollback to this."""
        await sweep_uploads(settings=self.settings, db=db, kind=self.name)
        async with db.read() as conn:
            staged = await datasets.stage_tables(conn)
            jobs = await store.jobs_by_id(conn, ids=list(staged))
        for job_id, table in staged.items():
            job = jobs.get(job_id)
            if job is None or job.state in TERMINAL:
                async with db.write() as conn:
                    await datasets.drop_table(conn, table)
