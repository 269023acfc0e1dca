"""What the kinds that read an uploaded CSV (import, teams) share.

- ``inspect_upload``: the upload's form options (``on_error``, ``max_errors``, ``encoding``,
  ``delimiter``) and its header, checked before any job exists.
- ``read_chunks``: the records from a checkpoint on, a chunk at a time, with the
  ``on_error`` policy applied: ``abort`` fails the job at the first bad record, naming its
  line; ``skip`` sets bad records aside (``save_rejections``) until ``max_errors``.

Checkpoint: ``{offset, line, records, rejected}`` — the byte offset and physical line of the
next unread record, the records read and rejected so far. A kind adds its own counters.
"""

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.csvio import (
    CsvProblem,
    Encoding,
    Header,
    RecordChunk,
    RecordReader,
    check_text,
    read_header,
    reject,
    resolve_encoding,
    sniff_delimiter,
)
from collect_api.db import Database
from collect_api.errors import BadCsv, Unprocessable
from collect_api.jobs import store
from collect_api.jobs.failure import JobFailure
from collect_api.jobs.models import TERMINAL, Job
from collect_api.jobs.progress import Progress
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import RemoteError
from collect_api.storage.files import ORPHAN_GRACE_S, remove, working_files
from collect_api.storage.rejections import REJECTION

ON_ERROR = ("abort", "skip")
# The most records in a chunk read here, in the server's process, where every record is
# checked in Python (teams); the data plane sizes its own chunks by time.
IN_PROCESS_CHUNK_ROWS = 5_000


@dataclass
class Upload:
    """A CSV upload received for a job: its form fields, and its file's name and size (the
    file itself is at ``upload_path``)."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    received_file: bool = False


def upload_path(settings: Settings, job_id: str) -> Path:
    return settings.uploads_dir / f"{job_id}.csv"


def progress(
    *, records: int, offset: int, size: int, rate: float | None, done: bool = False
) -> Progress:
    """Progress by records; percent and ETA from bytes, the one total known up front."""
    percent = 100.0 if done or size == 0 else min(99.99, math.floor(offset * 10000 / size) / 100)
    eta = None
    if rate and not done and records and offset:
        eta = round((size - offset) / (rate * offset / records), 1)
    return Progress(
        done=records,
        total=records if done else None,
        percent=percent,
        unit="records",
        bytes_done=size if done else offset,
        bytes_total=size,
        rate_per_s=round(rate, 1) if rate else None,
        eta_s=0.0 if done else eta,
    )


def checkpoint_progress(
    checkpoint: Mapping[str, Any], *, size: int, rate: float | None, done: bool = False
) -> Progress:
    """Progress as of a checkpoint; ``done`` once the job has finished."""
    offset = checkpoint["offset"]
    return progress(records=checkpoint["records"], offset=offset, size=size, rate=rate, done=done)


def form_field(upload: Upload, name: str, default: str, allowed: tuple[str, ...] | None) -> str:
    value = upload.fields.get(name, default).strip() or default
    if allowed is not None and value not in allowed:
        raise Unprocessable(
            f"form field {name!r} must be one of {', '.join(allowed)}; got {value!r}",
            field=name,
        )
    return value


async def inspect_upload(
    *, settings: Settings, upload: Upload, path: Path
) -> tuple[dict[str, Any], Header]:
    """The job parameters an uploaded CSV gives, and its header; 4xx if it cannot be read."""
    if not upload.received_file:
        raise Unprocessable(
            "the form has no 'file' part; attach the CSV as file (curl: -F file=@data.csv)",
            field="file",
        )
    on_error = form_field(upload, "on_error", "abort", ON_ERROR)
    max_errors = form_field(upload, "max_errors", "1000", None)
    if not max_errors.isdigit():
        raise Unprocessable(
            f"form field 'max_errors' must be a whole number; got {max_errors!r}",
            field="max_errors",
        )
    delimiter = form_field(upload, "delimiter", "auto", None)
    delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
    if delimiter != "auto" and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise Unprocessable(
            "form field 'delimiter' must be auto or one character such as , ; | or tab; "
            f"got {delimiter!r}",
            field="delimiter",
        )
    try:
        encoding, delimiter, header, size = await asyncio.to_thread(
            _read_header, path, upload.fields.get("encoding", "utf-8"), delimiter, settings
        )
    except CsvProblem as exc:
        if exc.column == "encoding" and exc.line is None:  # the form field, not a CSV column
            raise Unprocessable(exc.reason, field="encoding") from None
        raise BadCsv(str(exc), code=exc.code, line=exc.line, column=exc.column) from None
    params = {
        "on_error": on_error,
        "max_errors": int(max_errors),
        "encoding": encoding.name,
        "delimiter": delimiter,
        "filename": upload.filename,
        "columns": header.columns,
        "bytes": size,
        "_codec": encoding.codec,
        "_data_offset": header.offset,
        "_data_line": header.line,
    }
    return params, header


def _read_header(
    path: Path, encoding_name: str, delimiter: str, settings: Settings
) -> tuple[Encoding, str, Header, int]:
    encoding = resolve_encoding(path, encoding_name)
    check_text(path, encoding)
    if delimiter == "auto":
        delimiter = sniff_delimiter(path, encoding)
    header = read_header(
        path,
        encoding=encoding,
        delimiter=delimiter,
        max_columns=settings.max_columns,
        max_field_bytes=settings.max_field_bytes,
    )
    return encoding, delimiter, header, path.stat().st_size


class CsvCheckpoint(TypedDict):
    """Where a CSV kind stands in its file: the byte ``offset`` and physical ``line`` of
    the next record, the ``records`` read before it and how many were ``rejected``."""

    offset: int
    line: int
    records: int
    rejected: int


def first_checkpoint(params: dict[str, Any]) -> CsvCheckpoint:
    """The checkpoint before the first record."""
    return {
        "offset": params["_data_offset"],
        "line": params["_data_line"],
        "records": 0,
        "rejected": 0,
    }


@dataclass
class Chunk:
    rows: list[list[str]]
    # Records set aside: {line, record, column, reason, raw}.
    rejected: list[dict[str, Any]]
    # Where the next chunk starts; the kind adds its counters and commits it with the rows.
    checkpoint: dict[str, Any]
    parsed: RecordChunk
    # Indices in ``parsed.records`` of ``rows``; None when every record was kept.
    kept: list[int] | None

    def positions(self) -> list[tuple[int, int]]:
        """``(line, record number)`` of each row, for the kinds that check rows further."""
        indices = self.kept if self.kept is not None else range(len(self.parsed.records))
        first = self.parsed.first_record
        return [(self.parsed.lines[i], first + i) for i in indices]


def _read_chunk(
    reader: RecordReader, count: int, width: int, delimiter: str, with_lines: bool
) -> "Chunk":
    """Parse up to ``count`` records; split them into rows and rejections (wrong width).
    The checkpoint is left to the caller."""
    chunk = reader.read(count, with_lines=with_lines)
    rows = chunk.records
    rejected: list[dict[str, Any]] = []
    kept: list[int] | None = None
    if set(map(len, rows)) - {width}:
        chunk.lines = reader.locate(chunk)
        kept = []
        for i, record in enumerate(rows):
            if len(record) == width:
                kept.append(i)
            else:
                rejected.append(
                    reject(
                        record,
                        line=chunk.lines[i],
                        number=chunk.first_record + i,
                        column=None,
                        reason=f"the record has {len(record)} fields; the header has {width}",
                        delimiter=delimiter,
                    )
                )
        rows = [rows[i] for i in kept]
    return Chunk(rows=rows, rejected=rejected, checkpoint={}, parsed=chunk, kept=kept)


def apply_policy(job: Job, rejected: list[dict[str, Any]], total_rejected: int) -> None:
    """Fail the job as its ``on_error`` policy says, naming the line."""
    if not rejected:
        return
    if job.params["on_error"] == "abort":
        first = rejected[0]
        raise JobFailure(
            first["reason"] + "; fix the record or import with on_error=skip",
            code="bad_record",
            line=first["line"],
            record=first["record"],
            column=first["column"],
        )
    if total_rejected > job.params["max_errors"]:
        raise JobFailure(
            f"more than {job.params['max_errors']} records were rejected (the last at line "
            f"{rejected[-1]['line']}); see GET /jobs/{job.id}/errors",
            code="too_many_errors",
        )


async def read_chunks(
    *, settings: Settings, job: Job, checkpoint: Mapping[str, Any], with_lines: bool = False
) -> AsyncGenerator[Chunk, None]:
    """The records after ``checkpoint``, a chunk at a time; use with ``contextlib.aclosing``
    so the file is closed when the consumer stops early. ``with_lines`` notes where every
    record starts (``Chunk.positions``); without it only rejected records are located."""
    p = job.params
    width = len(p["columns"])
    # Opened here, not in a thread: a cancelled to_thread(open) would leave the file open.
    file = open(upload_path(settings, job.id), "rb")  # noqa: ASYNC230, SIM115 - closed below
    try:
        reader = RecordReader(
            file,
            encoding=Encoding(p["encoding"], p["_codec"], 0),
            delimiter=p["delimiter"],
            offset=checkpoint["offset"],
            line=checkpoint["line"],
            record=checkpoint["records"],
            max_field_bytes=settings.max_field_bytes,
            field_names=p["columns"],
        )
        while True:
            chunk = await asyncio.to_thread(
                _read_chunk,
                reader,
                min(settings.chunk_rows, IN_PROCESS_CHUNK_ROWS),
                width,
                p["delimiter"],
                with_lines,
            )
            parsed = chunk.parsed
            total_rejected = checkpoint["rejected"] + len(chunk.rejected)
            apply_policy(job, chunk.rejected, total_rejected)
            chunk.checkpoint = checkpoint = {
                **checkpoint,
                "offset": parsed.next_offset,
                "line": parsed.next_line,
                "records": checkpoint["records"] + len(parsed.records),
                "rejected": total_rejected,
            }
            yield chunk
            if parsed.at_end:
                return
    finally:
        await asyncio.to_thread(file.close)


async def save_rejections(
    conn: AsyncConnection, job_id: str, rejected: list[dict[str, Any]]
) -> None:
    if rejected:
        await conn.execute(insert(REJECTION), [{"job_id": job_id, **r} for r in rejected])


def delete_upload(settings: Settings, job: Job) -> None:
    remove(upload_path(settings, job.id))


async def sweep_uploads(*, settings: Settings, db: Database, kind: str) -> None:
    """Delete uploads that no job of ``kind`` can resume from: its job is final, or there is
    no job and the file is old (a crash between upload and submission)."""
    files = await asyncio.to_thread(working_files, settings.uploads_dir)
    if not files:
        return
    async with db.read() as conn:
        jobs = await store.jobs_by_id(conn, ids=[f.job_id for f in files])
    for file in files:
        job = jobs.get(file.job_id)
        if (job is None and file.age_s > ORPHAN_GRACE_S) or (
            job is not None and job.kind == kind and job.state in TERMINAL
        ):
            await asyncio.to_thread(remove, file.path)


def remote_failure(exc: RemoteError) -> Exception:
    """What failed in the data plane's worker, as the exception the job fails with."""
    if exc.kind == "CsvProblem":
        return job_failure(CsvProblem.from_details(exc.details))
    return exc


def job_failure(problem: CsvProblem) -> JobFailure:
    """A file that cannot be read, as the failure of its job: where, and why."""
    return JobFailure(
        str(problem),
        code=problem.code,
        line=problem.line,
        record=problem.record,
        column=problem.column,
    )


@contextlib.contextmanager
def csv_failures() -> Iterator[None]:
    """Around a CSV kind's run: a file that cannot be read fails the job (``job_failure``)."""
    try:
        yield
    except CsvProblem as exc:
        raise job_failure(exc) from None
