"""What the kinds that read an uploaded CSV (import, teams) share: ``CsvKind``, the base
that owns their submission and their run, and the pieces it is made of.

- ``inspect_upload``: the upload's form options (``on_error``, ``max_errors``, ``encoding``,
  ``delimiter``) and its header, checked before any job exists.
- ``read_chunks``: the records from a checkpoint on, a chunk at a time, split into rows of
  the header's width and records of another (rejected).
- ``apply_policy``: the ``on_error`` policy: ``abort`` fails the job at the first bad
  record, naming its line; ``skip`` sets bad records aside (``save_rejections``) until
  ``max_errors``.

Checkpoint: ``{offset, line, records, rejected}`` — the byte offset and physical line of the
next unread record, the records read and rejected so far — and the kind's count of the rows
it wrote (``CsvKind.kept``).
"""

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict

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
from collect_api.jobs.context import JobContext
from collect_api.jobs.failure import JobFailure
from collect_api.jobs.models import TERMINAL, Job
from collect_api.jobs.progress import Progress
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import DataPlane, RemoteError
from collect_api.storage.files import ORPHAN_GRACE_S, remove, working_files
from collect_api.storage.rejections import REJECTION
from collect_api.storage.shared import SharedFiles, upload_name

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


@dataclass(frozen=True)
class Reading:
    """How an uploaded CSV is read: the job parameters it gives (shown by the API), the
    kind's private ones (the codec, and where the records start), and its header."""

    params: dict[str, Any]
    private: dict[str, Any]
    header: Header

    def same_as(self, other: "Reading") -> bool:
        """Whether both read the file alike, so that a checkpoint of one holds in the other."""
        return self.private == other.private and all(
            self.params[k] == other.params[k] for k in ("encoding", "delimiter", "columns")
        )


async def inspect_upload(*, settings: Settings, upload: Upload, path: Path) -> Reading:
    """How an uploaded CSV is read (``Reading``); 4xx if it cannot be read."""
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
    }
    private = {"codec": encoding.codec, "data_offset": header.offset, "data_line": header.line}
    return Reading(params=params, private=private, header=header)


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


def first_checkpoint(private: Mapping[str, Any]) -> CsvCheckpoint:
    """The checkpoint before the first record (``private``: the job's, as ``Reading`` has
    them)."""
    return {
        "offset": private["data_offset"],
        "line": private["data_line"],
        "records": 0,
        "rejected": 0,
    }


@dataclass(frozen=True)
class Staged:
    """Chunks written before the job was queued (an import's, while its upload arrived):
    how the file was read for them, and the checkpoint after the last chunk."""

    reading: Reading
    checkpoint: CsvCheckpoint


@dataclass
class Chunk:
    rows: list[list[str]]
    # Records of another width than the header's: {line, record, column, reason, raw}.
    rejected: list[dict[str, Any]]
    parsed: RecordChunk
    # Indices in ``parsed.records`` of ``rows``; None when every record was kept.
    kept: list[int] | None

    def positions(self) -> list[tuple[int, int]]:
        """``(line, record number)`` of each row, for the kinds that check rows further."""
        indices = self.kept if self.kept is not None else range(len(self.parsed.records))
        first = self.parsed.first_record
        return [(self.parsed.lines[i], first + i) for i in indices]


def _read_chunk(reader: RecordReader, count: int, width: int, delimiter: str) -> "Chunk":
    """Parse up to ``count`` records, noting their lines; split them into rows and
    rejections (wrong width)."""
    chunk = reader.read(count, with_lines=True)
    rows = chunk.records
    rejected: list[dict[str, Any]] = []
    kept: list[int] | None = None
    if set(map(len, rows)) - {width}:
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
    return Chunk(rows=rows, rejected=rejected, parsed=chunk, kept=kept)


def apply_policy(job: Job, rejected: list[dict[str, Any]], total_rejected: int) -> None:
    """Fail the job as its ``on_error`` policy says, naming the line: ``rejected`` are a
    chunk's bad records in file order, ``total_rejected`` the job's with them."""
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
    *, settings: Settings, job: Job, checkpoint: Mapping[str, Any]
) -> AsyncGenerator[Chunk, None]:
    """The records after ``checkpoint``, a chunk at a time, each noting where its records
    start (``Chunk.positions``); the last is ``parsed.at_end``. Use with
    ``contextlib.aclosing`` so the file is closed when the consumer stops early."""
    p = job.params
    width = len(p["columns"])
    # Opened here, not in a thread: a cancelled to_thread(open) would leave the file open.
    file = open(upload_path(settings, job.id), "rb")  # noqa: ASYNC230, SIM115 - closed below
    try:
        reader = RecordReader(
            file,
            encoding=Encoding(p["encoding"], job.private["codec"], 0),
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
            )
            yield chunk
            if chunk.parsed.at_end:
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
    """Delete uploads that no job of ``kind`` can resume from, here and those kept in the
    database: its job is final, or there is no job and the file is old (a crash between
    upload and submission)."""
    files = await asyncio.to_thread(working_files, settings.uploads_dir)
    shared = SharedFiles(db)
    kept = await shared.kept(upload_name(""))
    if not files and not kept:
        return
    async with db.read() as conn:
        jobs = await store.jobs_by_id(conn, ids=[f.job_id for f in files] + list(kept))

    def needless(job_id: str, age_s: float) -> bool:
        job = jobs.get(job_id)
        return (job is None and age_s > ORPHAN_GRACE_S) or (
            job is not None and job.kind == kind and job.state in TERMINAL
        )

    for file in files:
        if needless(file.job_id, file.age_s):
            await asyncio.to_thread(remove, file.path)
    now = time.time()
    await shared.delete(
        upload_name(job_id) for job_id, saved_at in kept.items() if needless(job_id, now - saved_at)
    )


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


# A chunk's work in a run: from the checkpoint before it to the one after it, and whether
# the file is read to its end.
WriteChunk = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], bool]]]


class CsvKind:
    """A kind whose job reads an uploaded CSV, writes it a chunk at a time, and publishes
    what it wrote once the whole file is read. The base owns the sequence; a kind fills in
    the hooks.

    Submission (``submit``): the kind's own form fields (``form_params``), then the upload's
    options and header (``inspect_upload``), the header against the kind's columns
    (``check_header``), and, in the transaction that queues the job, the kind's checks
    against the database (``admit``).

    A run (``run``): a first run commits the first checkpoint with ``begin``'s writes; then
    every chunk from the checkpoint on (``chunks``), then ``publish`` in the transaction that
    marks the job completed, with the result it gives. By default a chunk is read here, its
    rows checked (``check_rows``), and written (``write_rows``) with its rejected records in
    one chunk transaction together with its checkpoint; a kind whose chunks are written
    elsewhere (the import's, in the data plane) gives its own ``chunks``.
    """

    name: ClassVar[str]
    # The checkpoint's count of the rows the kind wrote, beside ``CsvCheckpoint``'s.
    kept: ClassVar[str]

    def __init__(self, settings: Settings, dataplane: DataPlane) -> None:
        self.settings = settings
        self.dataplane = dataplane

    # -- hooks -------------------------------------------------------------------------------

    def form_params(self, upload: Upload) -> dict[str, Any]:
        """The kind's own form fields as job parameters, checked (``Unprocessable``) before
        the file is read."""
        return {}

    def check_header(self, header: Header) -> None:
        """Refuse (``Unprocessable``) a file whose columns the kind cannot take."""

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
        """Check the job against the database, in the transaction that queues it; ``staged``
        says whether it goes on from chunks written before (``Staged``)."""

    async def begin(self, conn: AsyncConnection, job: Job) -> None:
        """A first run's writes before its first chunk (a staging table, say)."""

    def check_rows(
        self, job: Job, rows: list[list[str]], positions: list[tuple[int, int]]
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """A chunk's rows as the kind writes them, and the records it rejects
        (``csvio.reject``, at ``positions``: ``(line, record number)`` of each row)."""
        return rows, []

    @staticmethod
    def rejection(
        job: Job, row: list[str], position: tuple[int, int], *, column: str, reason: str
    ) -> dict[str, Any]:
        """A record ``check_rows`` sets aside, at ``position`` (line, record number), as
        ``GET /jobs/{id}/errors`` lists it."""
        line, number = position
        return reject(
            row,
            line=line,
            number=number,
            column=column,
            reason=reason,
            delimiter=job.params["delimiter"],
        )

    async def write_rows(self, conn: AsyncConnection, job: Job, rows: list[Any]) -> None:
        """Write a chunk's checked rows, inside its chunk transaction."""
        raise NotImplementedError

    async def publish(
        self, conn: AsyncConnection, job: Job, done: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Make the job's writes visible, in the transaction that completes it (``done``:
        its last checkpoint); the job's result."""
        raise NotImplementedError

    def chunks(
        self, ctx: JobContext, checkpoint: Mapping[str, Any]
    ) -> AbstractAsyncContextManager[WriteChunk]:
        """What writes the chunks of a run starting at ``checkpoint``, one at a time."""
        return self._chunks_here(ctx, checkpoint)

    # -- the sequence ------------------------------------------------------------------------

    async def submit(
        self,
        db: Database,
        *,
        tenant: str,
        job_id: str,
        request: Upload,
        staged: Staged | None = None,
    ) -> Job:
        """Validate a received upload (already at ``upload_path``) and queue its job, from
        where ``staged`` ends if it read the file as this check does."""
        own = self.form_params(request)
        path = upload_path(self.settings, job_id)
        reading = await inspect_upload(settings=self.settings, upload=request, path=path)
        header = reading.header
        self.check_header(header)
        checkpoint = None
        if staged is not None and staged.reading.same_as(reading):
            checkpoint = staged.checkpoint
        params = {**own, **reading.params}
        # Kept where every server finds it before the job is queued (on PostgreSQL).
        shared = SharedFiles(db)
        await shared.save(upload_name(job_id), path)
        try:
            return await self._queue(
                db,
                tenant=tenant,
                job_id=job_id,
                params=params,
                reading=reading,
                header=header,
                checkpoint=checkpoint,
            )
        except BaseException:
            await shared.delete([upload_name(job_id)])
            raise

    async def _queue(
        self,
        db: Database,
        *,
        tenant: str,
        job_id: str,
        params: dict[str, Any],
        reading: Reading,
        header: Header,
        checkpoint: Mapping[str, Any] | None,
    ) -> Job:
        size = params["bytes"]
        async with db.write() as conn:
            await self.admit(
                conn,
                tenant=tenant,
                job_id=job_id,
                params=params,
                header=header,
                staged=checkpoint is not None,
            )
            return await store.insert_job(
                conn,
                job_id=job_id,
                tenant=tenant,
                kind=self.name,
                params=params,
                private=reading.private,
                progress=(
                    progress(records=0, offset=0, size=size, rate=None)
                    if checkpoint is None
                    else checkpoint_progress(checkpoint, size=size, rate=None)
                ),
                checkpoint=dict(checkpoint) if checkpoint is not None else None,
                actor=tenant,
            )

    async def run(self, ctx: JobContext) -> None:
        with csv_failures():
            await self._run(ctx)

    async def _run(self, ctx: JobContext) -> None:
        job = ctx.job
        size = int(job.params["bytes"])
        # Uploaded through another server, or resumed here after its own server stopped.
        path = upload_path(self.settings, job.id)
        if not await SharedFiles(ctx.db).fetch(upload_name(job.id), path, size=size):
            raise JobFailure(
                "the job's uploaded file is no longer kept (deleted from the data dir?); "
                "submit the job again",
                code="upload_missing",
            )
        cp: dict[str, Any]
        if job.checkpoint is None:
            cp = {**first_checkpoint(job.private), self.kept: 0}

            async def begin(conn: AsyncConnection) -> None:
                await self.begin(conn, job)

            await ctx.chunk(
                begin, checkpoint=cp, progress=checkpoint_progress(cp, size=size, rate=None)
            )
        else:
            cp = dict(job.checkpoint)
        async with self.chunks(ctx, cp) as write_chunk:
            at_end = cp["offset"] >= size
            while not at_end:
                cp, at_end = await write_chunk(cp)
        done = cp

        async def publish(conn: AsyncConnection) -> None:
            result = await self.publish(conn, ctx.job, done)
            await ctx.finish(
                conn,
                result=result,
                progress=checkpoint_progress(
                    done, size=size, rate=ctx.rate(done["records"]), done=True
                ),
            )

        await ctx.chunk(publish)

    @contextlib.asynccontextmanager
    async def _chunks_here(
        self, ctx: JobContext, checkpoint: Mapping[str, Any]
    ) -> AsyncIterator[WriteChunk]:
        """Chunks read in this process, a chunk transaction each."""
        job = ctx.job
        size = int(job.params["bytes"])
        source = read_chunks(settings=self.settings, job=job, checkpoint=checkpoint)

        async def write_chunk(before: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            chunk = await anext(source)
            rows, invalid = self.check_rows(job, chunk.rows, chunk.positions())
            rejected = sorted(chunk.rejected + invalid, key=lambda r: r["line"])
            apply_policy(job, rejected, before["rejected"] + len(rejected))
            parsed = chunk.parsed
            after = {
                **before,
                "offset": parsed.next_offset,
                "line": parsed.next_line,
                "records": before["records"] + len(parsed.records),
                "rejected": before["rejected"] + len(rejected),
                self.kept: before[self.kept] + len(rows),
            }

            async def write(conn: AsyncConnection) -> None:
                await self.write_rows(conn, job, rows)
                await save_rejections(conn, job.id, rejected)

            await ctx.chunk(
                write,
                checkpoint=after,
                progress=checkpoint_progress(after, size=size, rate=ctx.rate(after["records"])),
            )
            return after, parsed.at_end

        async with contextlib.aclosing(source):
            yield write_chunk

    def delete_files(self, job: Job) -> None:
        delete_upload(self.settings, job)

    async def housekeep(self, db: Database) -> None:
        await sweep_uploads(settings=self.settings, db=db, kind=self.name)
