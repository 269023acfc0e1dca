"""The import kind: load a CSV of form responses into a named dataset.

Checkpoint: ``{offset, line, records, rows, rejected}`` — the byte offset and physical line of
the next unread record, the records read, rows staged and records rejected so far. Each
chunk's rows are inserted into the job's staging table and committed with the checkpoint that
covers them, so a resumed run seeks to ``offset`` and reads nothing twice. The staged rows
become the dataset's in the transaction that marks the job completed.
"""

import asyncio
import csv
import io
import math
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.csvio import CsvProblem, Encoding, Header, RecordReader, read_header
from collect_api.csvio import resolve_encoding as _resolve_encoding
from collect_api.db import Database
from collect_api.errors import BadCsv, Conflict, DatasetNotFound, Unprocessable
from collect_api.jobs import store
from collect_api.jobs.context import JobContext
from collect_api.jobs.models import Job, new_job_id
from collect_api.jobs.store import REJECTION
from collect_api.jobs.supervisor import JobFailure
from collect_api.settings import Settings
from collect_api.storage import datasets
from collect_api.storage.uploads import Upload

MODES = ("create", "append", "replace")
ON_ERROR = ("abort", "skip")


def upload_path(settings: Settings, job_id: str) -> Path:
    return settings.uploads_dir / f"{job_id}.csv"


def progress(
    *, records: int, offset: int, size: int, rate: float | None, done: bool = False
) -> dict[str, Any]:
    """Progress by records; percent and ETA from bytes, the one total known up front."""
    percent = 100.0 if done or size == 0 else min(99.99, math.floor(offset * 10000 / size) / 100)
    eta = None
    if rate and not done and records:
        bytes_per_record = offset / records if records else 0
        eta = round((size - offset) / (rate * bytes_per_record), 1) if bytes_per_record else None
    return {
        "done": records,
        "total": records if done else None,
        "percent": percent,
        "unit": "records",
        "bytes_done": size if done else offset,
        "bytes_total": size,
        "rate_per_s": round(rate, 1) if rate else None,
        "eta_s": 0.0 if done else eta,
    }


def _field(upload: Upload, name: str, default: str, allowed: tuple[str, ...] | None) -> str:
    value = upload.fields.get(name, default).strip() or default
    if allowed is not None and value not in allowed:
        raise Unprocessable(
            f"form field {name!r} must be one of {', '.join(allowed)}; got {value!r}",
            field=name,
        )
    return value


async def submit_import(
    *, db: Database, settings: Settings, tenant: str, job_id: str, upload: Upload
) -> Job:
    """Validate a received upload (already at ``upload_path``) and queue its import job."""
    path = upload_path(settings, job_id)
    if not upload.received_file:
        raise Unprocessable(
            "the form has no 'file' part; attach the CSV as file (curl: -F file=@data.csv)",
            field="file",
        )
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
    mode = _field(upload, "mode", "create", MODES)
    on_error = _field(upload, "on_error", "abort", ON_ERROR)
    max_errors_text = _field(upload, "max_errors", "1000", None)
    if not max_errors_text.isdigit():
        raise Unprocessable(
            f"form field 'max_errors' must be a whole number; got {max_errors_text!r}",
            field="max_errors",
        )
    delimiter = _field(upload, "delimiter", ",", None)
    delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise Unprocessable(
            f"form field 'delimiter' must be one character such as , ; | or tab; got {delimiter!r}",
            field="delimiter",
        )
    try:
        encoding, header = await asyncio.to_thread(
            _read_header, path, upload.fields.get("encoding", "utf-8"), delimiter, settings
        )
    except CsvProblem as exc:
        raise BadCsv(str(exc), code=exc.code, line=exc.line) from None
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
        size = path.stat().st_size
        params = {
            "dataset": dataset,
            "mode": mode,
            "on_error": on_error,
            "max_errors": int(max_errors_text),
            "encoding": encoding.name,
            "delimiter": delimiter,
            "filename": upload.filename,
            "columns": header.columns,
            "bytes": size,
            "_codec": encoding.codec,
            "_data_offset": header.offset,
            "_data_line": header.line,
        }
        return await store.insert_job(
            conn,
            job_id=job_id,
            tenant=tenant,
            kind=ImportKind.name,
            params=params,
            progress=progress(records=0, offset=0, size=size, rate=None),
            actor=tenant,
        )


def _read_header(
    path: Path, encoding_name: str, delimiter: str, settings: Settings
) -> tuple[Encoding, Header]:
    encoding = _resolve_encoding(path, encoding_name)
    header = read_header(
        path, encoding=encoding, delimiter=delimiter, max_columns=settings.max_columns
    )
    return encoding, header


def _as_csv(record: list[str], delimiter: str) -> str:
    """The record as CSV text, quoted as needed: how the rejected record read."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(record)
    return out.getvalue()


def _read_chunk(
    reader: RecordReader, count: int, width: int, delimiter: str
) -> tuple[list[list[str]], list[dict[str, Any]], Any]:
    """Parse up to ``count`` records; split them into rows and rejections (wrong width)."""
    chunk = reader.read(count)
    rejected: list[dict[str, Any]] = []
    rows = chunk.records
    if any(len(record) != width for record in rows):
        kept = []
        for i, record in enumerate(rows):
            if len(record) == width:
                kept.append(record)
            else:
                rejected.append(
                    {
                        "line": chunk.lines[i],
                        "record": chunk.first_record + i,
                        "column": None,
                        "reason": f"the record has {len(record)} fields; the header has {width}",
                        "raw": _as_csv(record, delimiter),
                    }
                )
        rows = kept
    return rows, rejected, chunk


class ImportKind:
    name: ClassVar[str] = "import"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: JobContext) -> None:
        job = ctx.job
        p = job.params
        width = len(p["columns"])
        stage = datasets.stage_table(job.id)
        size = int(p["bytes"])
        checkpoint = job.checkpoint
        if checkpoint is None:
            checkpoint = {
                "offset": p["_data_offset"],
                "line": p["_data_line"],
                "records": 0,
                "rows": 0,
                "rejected": 0,
            }
            async with ctx.chunk() as conn:
                await datasets.create_table(conn, stage, width)
                await ctx.save(
                    conn,
                    checkpoint=checkpoint,
                    progress=progress(records=0, offset=checkpoint["offset"], size=size, rate=None),
                )
        encoding = Encoding(p["encoding"], p["_codec"], 0)
        file = await asyncio.to_thread(open, upload_path(self.settings, job.id), "rb")
        try:
            reader = RecordReader(
                file,
                encoding=encoding,
                delimiter=p["delimiter"],
                offset=checkpoint["offset"],
                line=checkpoint["line"],
                record=checkpoint["records"],
            )
            at_end = False
            while not at_end:
                rows, rejected, chunk = await asyncio.to_thread(
                    _read_chunk, reader, self.settings.chunk_rows, width, p["delimiter"]
                )
                at_end = chunk.at_end
                if rejected and p["on_error"] == "abort":
                    first = rejected[0]
                    raise CsvProblem(
                        first["reason"] + "; fix the row or import with on_error=skip",
                        line=first["line"],
                        record=first["record"],
                        code="ragged_row",
                    )
                total_rejected = checkpoint["rejected"] + len(rejected)
                if total_rejected > p["max_errors"]:
                    raise JobFailure(
                        f"more than {p['max_errors']} records were rejected (the last at line "
                        f"{rejected[-1]['line']}); see GET /jobs/{job.id}/errors",
                        code="too_many_errors",
                    )
                records = checkpoint["records"] + len(chunk.records)
                checkpoint = {
                    "offset": chunk.next_offset,
                    "line": chunk.next_line,
                    "records": records,
                    "rows": checkpoint["rows"] + len(rows),
                    "rejected": total_rejected,
                }
                async with ctx.chunk() as conn:
                    await datasets.insert_rows(conn, stage, width, rows)
                    if rejected:
                        await conn.execute(
                            insert(REJECTION), [{"job_id": job.id, **r} for r in rejected]
                        )
                    await ctx.save(
                        conn,
                        checkpoint=checkpoint,
                        progress=progress(
                            records=records,
                            offset=chunk.next_offset,
                            size=size,
                            rate=ctx.rate(records),
                        ),
                    )
        finally:
            await asyncio.to_thread(file.close)
        async with ctx.chunk() as conn:
            try:
                dataset = await datasets.publish_import(
                    conn,
                    tenant=job.tenant,
                    name=p["dataset"],
                    mode=p["mode"],
                    job_id=job.id,
                    columns=p["columns"],
                    staged_rows=checkpoint["rows"],
                )
            except datasets.PublishConflict as exc:
                raise JobFailure(str(exc), code="dataset_changed") from None
            await ctx.finish(
                conn,
                result={
                    "dataset": dataset.name,
                    "rows_imported": checkpoint["rows"],
                    "rows_rejected": checkpoint["rejected"],
                    "dataset_rows": dataset.row_count,
                    "columns": p["columns"],
                },
                progress=progress(
                    records=checkpoint["records"],
                    offset=size,
                    size=size,
                    rate=ctx.rate(checkpoint["records"]),
                    done=True,
                ),
            )

    async def discard(self, conn: AsyncConnection, job: Job) -> None:
        await datasets.drop_table(conn, datasets.stage_table(job.id))

    def release(self, job: Job) -> None:
        upload_path(self.settings, job.id).unlink(missing_ok=True)


__all__ = ["ImportKind", "new_job_id", "submit_import", "upload_path"]
