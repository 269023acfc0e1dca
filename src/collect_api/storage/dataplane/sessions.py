"""The worker's operations: the two halves of the data plane's interface.

- **Ingest a chunk with its checkpoint** (``import_stage`` then ``commit``): the next chunk
  of an upload is read (``csvio.chunks``), checked against the ``on_error`` policy, and
  written with the records it set aside in one transaction, left open; ``commit`` then runs
  the checkpoint statement the engine gives, in the same transaction, and commits only if it
  applied (the statement checks the job's claim and that no control request is waiting).
- **Read a snapshot range** (``export_chunk``): the rows with keys in ``(after, upto]`` of a
  dataset table, filtered, projected and written to the export file as CSV at a byte offset.

The engine's tables are known here only through what the caller passes: the checkpoint
statement, the staging table's name and the table that keeps rejected records.
"""

import contextlib
import csv
import gzip
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from collect_api.csvio import CsvProblem, Encoding
from collect_api.csvio.chunks import ChunkRead, ChunkSource, Position, check_rejections
from collect_api.csvio.fast import encode_csv, quote_bits, quoted_columns, text_pieces
from collect_api.storage.dataplane.base import (
    QUOTED_COLUMNS_MAX,
    QUOTES,
    ChunkBudget,
    Interrupted,
)
from collect_api.storage.dataplane.masks import arrow_mask
from collect_api.storage.dataplane.postgres import PostgresStore
from collect_api.storage.dataplane.sqlite import SqliteStore
from collect_api.storage.exports import GZIP_LEVEL, write_at
from collect_api.storage.filters import Filter

Interrupt = Callable[[], bool]
T = TypeVar("T")
# Chunk sizes in bytes: the first of a run, and the bounds of the rest, which take about a
# quarter of a second of work each (``ChunkBudget``).
FIRST_CHUNK_BYTES = 256 * 1024
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 16 * 1024 * 1024
# Rows of an export's first chunk in a run.
FIRST_EXPORT_ROWS = 20_000
# How long jemalloc keeps the pages of Arrow's freed memory for reuse while an export runs
# (ms). A worker otherwise gives them back at once (``serve._return_memory``), and an export,
# which allocates its buffers afresh for every range, then spent 0.35-0.43 s of system time
# in page faults on 1M rows, against 0.13-0.20 s with 100 ms (measured 2026-12-04).
EXPORT_DECAY_MS = 200
# Joins the fields of a run of columns in a query: the export's delimiter, in SQL.
JOIN_SQL = " || ',' || "
REJECTION_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("line", pa.int64()),
        ("record", pa.int64()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


Store = SqliteStore | PostgresStore
# Connections a worker keeps for its next sessions, per database.
IDLE_CONNECTIONS = 4


class Stores:
    """The worker's connections to its databases: a PostgreSQL URI, else a SQLite file's
    path. Opening a PostgreSQL connection took 55-75 ms here (the driver reads the server's
    types), as long as a pause and its resume take in all: one that a session is done with
    is kept, rolled back, for the next (a resume's). A SQLite connection is closed."""

    def __init__(self) -> None:
        self._idle: dict[str, list[PostgresStore]] = {}

    def take(self, database: str, before_commit: list[str] | None = None) -> Store:
        """A connection to ``database``; on PostgreSQL, ``before_commit`` runs before a
        checkpoint statement (the engine's write lock)."""
        if not database.startswith("postgresql://"):
            return SqliteStore(database)
        idle = self._idle.get(database)
        store = idle.pop() if idle else PostgresStore(database)
        store.before_commit = list(before_commit or ())
        return store

    def give(self, store: Store) -> None:
        """Take back a connection a session is done with. One that cannot be rolled back
        (its server went away, say) is dropped: the next session opens a new one."""
        if isinstance(store, PostgresStore):
            idle = self._idle.setdefault(store.database, [])
            if len(idle) < IDLE_CONNECTIONS:
                try:
                    store.reset()
                except Exception:
                    with contextlib.suppress(Exception):
                        store.close()
                    return
                idle.append(store)
                return
        store.close()

    def close_all(self) -> None:
        for idle in self._idle.values():
            for store in idle:
                store.close()
        self._idle.clear()


def _result(future: Future[T], interrupted: Interrupt) -> T:
    """What ``future`` gives, waited for in steps so that an interrupt is seen meanwhile
    (it raises ``Interrupted``; the work in the thread goes on to its end)."""
    while True:
        try:
            return future.result(timeout=0.005)
        except FutureTimeout:
            if interrupted():
                raise Interrupted from None


class ImportSession:
    """An upload being ingested. While one chunk is written and committed, the next is read
    and parsed in a thread of its own (pyarrow and the driver both let go of the GIL), so
    that reading and writing overlap; a chunk read ahead is used if the next request starts
    where it does."""

    def __init__(
        self,
        *,
        stores: Stores,
        database: str,
        upload: str,
        stage_table: str,
        rejection_table: str,
        job_id: str,
        encoding: tuple[str, str],
        delimiter: str,
        columns: list[str],
        max_field_bytes: int | None,
        before_commit: list[str] | None = None,
    ) -> None:
        # The csv module's own limit only stops a runaway field (a quote never closed): the
        # exact reader enforces max_field_bytes in bytes, naming the column.
        csv.field_size_limit(max((max_field_bytes or 0) * 16, 1 << 20))
        self.stores = stores
        self.store = stores.take(database, before_commit)
        self.file = open(upload, "rb")  # noqa: SIM115 - closed with the session
        self.source = ChunkSource(
            self.file,
            encoding=Encoding(encoding[0], encoding[1], 0),
            delimiter=delimiter,
            columns=columns,
            max_field_bytes=max_field_bytes,
            size=Path(upload).stat().st_size,
        )
        self.stage_table = stage_table
        # Whether the staging table keeps each row's quote bits (``storage.datasets``).
        self.keeps_bits = QUOTES in self.store.column_names(stage_table)
        self.rejection_table = rejection_table
        self.job_id = job_id
        # A run's first chunk is small, so that it commits soon after a start or a resume.
        self.budget = ChunkBudget(
            first=FIRST_CHUNK_BYTES, least=MIN_CHUNK_BYTES, most=MAX_CHUNK_BYTES
        )
        self._reading = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
        self._ahead: tuple[Position, int, Future[ChunkRead]] | None = None

    def _read(self, at: Position, max_records: int, interrupted: Interrupt) -> ChunkRead:
        """The chunk at ``at``: the one read ahead if it starts there, else read now. An
        interrupt is seen while waiting for it."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != at or ahead[1] != max_records:
            if ahead is not None:
                ahead[2].cancel()
                with contextlib.suppress(Exception, FutureCancelled):
                    ahead[2].result()  # the file is the reader's alone again
            ahead = (at, max_records, self._reading.submit(self._source_read, at, max_records))
        try:
            return _result(ahead[2], interrupted)
        except Interrupted:
            self._ahead = ahead  # still useful if the run goes on from here
            raise

    def _source_read(self, at: Position, max_records: int) -> ChunkRead:
        return self._with_bits(
            self.source.read(at, budget=self.budget.size, max_records=max_records)
        )

    def _with_bits(self, chunk: ChunkRead) -> ChunkRead:
        """``chunk`` with its rows' quote bits, where the staging table keeps them."""
        if not self.keeps_bits:
            return chunk
        bits = quote_bits(chunk.table, columns=QUOTED_COLUMNS_MAX)
        return replace(chunk, table=chunk.table.append_column(QUOTES, bits))

    def stage(
        self,
        *,
        position: dict[str, int],
        max_records: int,
        on_error: str,
        max_errors: int,
        rejected: int,
        interrupted: Interrupt,
        upto: int | None = None,
    ) -> dict[str, Any] | None:
        """Read the chunk at ``position`` and write it, leaving its transaction open for
        ``commit``. With ``upto``, the upload is still arriving and has that many bytes: the
        chunk holds whole records before it, and None says there is none to read yet."""
        started = time.monotonic()
        if upto is None:
            chunk = self._read(Position(**position), max_records, interrupted)
        else:
            received = self.source.read_received(
                Position(**position), upto=upto, budget=self.budget.size, max_records=max_records
            )
            if received is None:
                return None
            chunk = self._with_bits(received)
        total = rejected + len(chunk.rejected)
        check_rejections(
            chunk.rejected,
            on_error=on_error,
            max_errors=max_errors,
            total=total,
            errors_at=f"GET /jobs/{self.job_id}/errors",
        )
        read = time.monotonic()
        if upto is None and not chunk.at_end:  # read the next while this one is written
            self._ahead = (
                chunk.next,
                max_records,
                self._reading.submit(self._source_read, chunk.next, max_records),
            )
        self.store.begin(interrupted)
        try:
            self.store.append(self.stage_table, chunk.table, interrupted)
            if chunk.rejected:
                records = [{"job_id": self.job_id, **r} for r in chunk.rejected]
                table = pa.Table.from_pylist(records, schema=REJECTION_SCHEMA)
                self.store.append(self.rejection_table, table, interrupted)
        except BaseException:
            self.store.rollback()
            raise
        written = time.monotonic()
        size = chunk.next.offset - chunk.start.offset
        self.budget.observe(size, written - started)
        return {
            "records": chunk.records,
            "rows": chunk.table.num_rows,
            "rejected": len(chunk.rejected),
            "next": asdict(chunk.next),
            "at_end": chunk.at_end,
            "exact": chunk.exact,
            "bytes": size,
            "read_s": read - started,
            "write_s": written - read,
        }

    def rollback(self) -> None:
        self.store.rollback()

    def close(self) -> None:
        self._reading.shutdown(wait=True, cancel_futures=True)
        self.file.close()
        self.stores.give(self.store)


@dataclass(frozen=True)
class _Half:
    """Half a range, read, filtered and encoded: the rows written, and their CSV bytes."""

    rows: int
    pieces: list[pa.Buffer]


class ExportSession:
    """A dataset table being written to an export file, a range of row keys a chunk.

    A range is read, filtered and encoded as two halves at once, each on a connection and
    thread of its own (the driver and pyarrow's kernels let go of the GIL, so the two take
    both cores); while one chunk is written and its checkpoint committed, the next range is
    prepared the same way. Each connection is used in its own thread alone. The rows of a
    snapshot (keys up to ``upto``) do not change while it is read (see ``kinds.exports``),
    so reads on two connections, and across chunks, see the same rows.

    Where the table keeps its rows' quote bits, the database writes each line whole
    (``_whole_lines``); elsewhere it joins the runs of fields that need no quotes into one
    value, and the worker encodes the rest (``_joined``).

    A chunk is the keys ``(after, after + span]``: ``limit`` keys if ``fixed`` (a gzip
    member), else about a quarter second's worth, at most ``limit``. Keys are dense in a
    dataset table; where a range has gaps, its chunk holds fewer rows.
    """

    def __init__(
        self,
        *,
        stores: Stores,
        database: str,
        table: str,
        columns: list[str],
        projection: list[int],
        filters: list[dict[str, Any]],
        path: str,
        gzipped: bool,
        before_commit: list[str] | None = None,
    ) -> None:
        self.table = table
        self.columns = columns
        self.projection = projection
        self.filters = [Filter(**f) for f in filters]
        self.filtered = sorted({columns.index(f.column) for f in self.filters})
        self.path = Path(path)
        self.gzipped = gzipped
        # Columns found to hold a value that needs quotes: read apart from then on. The
        # threads that prepare halves add to it, under the lock.
        self._quoted: frozenset[int] = frozenset()
        self._learning = threading.Lock()
        # Keys a chunk: a run's first chunk is small, so that it commits soon after a start
        # or a resume; later ones take about a quarter second.
        self.budget = ChunkBudget(first=FIRST_EXPORT_ROWS, least=1, most=1 << 30)
        self.stores = stores
        self.database = database
        self.before_commit = before_commit
        # The connection that commits checkpoints (``commit``), taken at the first.
        self._writer: Store | None = None
        self._readers: list[tuple[Store, ThreadPoolExecutor]] = []
        try:
            for n in range(2):
                store = stores.take(database)
                self._readers.append(
                    (store, ThreadPoolExecutor(1, thread_name_prefix=f"read-ahead-{n}"))
                )
        except BaseException:
            self.close()
            raise
        # The range prepared ahead, as (after, end), and its halves to come.
        self._ahead: tuple[tuple[int, int], list[Future[_Half]]] | None = None
        # Whether the database writes each line whole, by the rows' quote bits.
        self._lines = QUOTES in self._readers[0][0].column_names(table)
        _keep_freed_pages(EXPORT_DECAY_MS)

    def _fields(self, quoted: frozenset[int]) -> list[list[int]]:
        """The file's columns as a query reads them: each column known to need quotes alone,
        and each run of the others between them as one text, joined by the delimiter."""
        fields: list[list[int]] = []
        for index in self.projection:
            if index in quoted or not fields or fields[-1][-1] in quoted:
                fields.append([index])
            else:
                fields[-1].append(index)
        return fields

    def _prepare(self, store: Store, after: int, end: int) -> _Half:
        """The keys ``(after, end]``: read, filtered, projected and encoded."""
        if self._lines:
            half = self._whole_lines(store, after, end)
            if half is not None:
                return half
        return self._joined(store, after, end)

    def _line_sql(self, quoted: frozenset[int]) -> str:
        """A query's value for a row's line, CRLF ended, as ``encode_csv`` writes it; NULL
        where a field needs quotes that the line does not give it (the row's quote bits
        hold a column outside ``quoted``), or where the row has no quote bits.

        A column in ``quoted`` is quoted where its bit says; the others are written as
        they are. The one field of a one-column line is quoted when it is empty."""
        alone = len(self.projection) == 1
        fields = []
        for index in self.projection:
            column = f"coalesce(c{index}, '')"
            if index in quoted or alone:
                escaped = f"'\"' || replace(c{index}, '\"', '\"\"') || '\"'"
                empty = f" WHEN {column} = '' THEN '\"\"'" if alone else ""
                column = (
                    f"CASE WHEN ({QUOTES} & {1 << index}) <> 0 THEN {escaped}{empty} "
                    f"ELSE {column} END"
                )
            fields.append(column)
        unknown = sum(1 << index for index in self.projection if index not in quoted and not alone)
        missed = f"{QUOTES} IS NULL" + (f" OR ({QUOTES} & {unknown}) <> 0" if unknown else "")
        return f"CASE WHEN {missed} THEN NULL ELSE {JOIN_SQL.join(fields)} || '\r\n' END"

    def _whole_lines(self, store: Store, after: int, end: int) -> _Half | None:
        """The keys ``(after, end]`` as lines the database wrote whole (``_line_sql``):
        one value a row, and nothing left to encode. Where a row needs quotes in a column
        not yet quoted, the range's quote bits say which columns do, and those are quoted
        from then on; None if a row of the range has no quote bits."""
        where = f'FROM "{self.table}" WHERE _row > {int(after)} AND _row <= {int(end)}'
        lines = self._lines_read(store, where)
        if lines.null_count:
            bits = store.query(f"SELECT {QUOTES} {where}", ()).column(0)
            if bits.null_count:
                return None
            found = int(np.bitwise_or.reduce(bits.to_numpy(), initial=0))
            with self._learning:
                self._quoted |= {i for i in self.projection if found >> i & 1}
            lines = self._lines_read(store, where)
            assert not lines.null_count  # every column a bit of the range names is quoted
        return _Half(len(lines), text_pieces(lines))

    def _lines_read(self, store: Store, where: str) -> pa.ChunkedArray:
        """The filtered rows of ``where`` as lines (``_line_sql``), by the columns now
        known to need quotes."""
        chosen = [*(f"c{i}" for i in self.filtered), f"{self._line_sql(self._quoted)} AS line"]
        scanned = self._as_text(
            store.query(f"SELECT {', '.join(chosen)} {where} ORDER BY _row", ())
        )
        if self.filters:
            scanned = scanned.filter(arrow_mask(scanned, self.filters, self.columns))
        return scanned.column("line")

    def _joined(self, store: Store, after: int, end: int) -> _Half:
        """The keys ``(after, end]``: read, filtered, projected and encoded, each run of
        columns that need no quotes as one value.

        SQLite (or PostgreSQL) joins the fields of a run of columns that need no quotes, so
        that the driver hands over one value a run, not one a field. The encoder checks that
        none of them does; if one does, the range is read again with every column apart, and
        the columns that need quotes are read apart from then on."""
        fields = self._fields(self._quoted)
        encoded = self._encode(self._read(store, after, end, fields), fields)
        if encoded is not None:
            return encoded
        fields = [[index] for index in self.projection]
        chosen = self._read(store, after, end, fields)
        found = {fields[int(name[1:])][0] for name in quoted_columns(chosen)}
        with self._learning:
            self._quoted |= found
        encoded = self._encode(chosen, fields)
        assert encoded is not None  # nothing is joined
        return encoded

    def _read(self, store: Store, after: int, end: int, fields: list[list[int]]) -> pa.Table:
        """The keys ``(after, end]``, filtered: a column ``f<n>`` for each of ``fields``."""
        # The bounds are integers, written into the query: with no parameters, PostgreSQL's
        # driver reads the rows by ``COPY (query) TO STDOUT``, its fastest way out.
        lo, hi = int(after), int(end)
        chosen = [
            (
                f"c{field[0]}"
                if len(field) == 1
                else JOIN_SQL.join(f"coalesce(c{index}, '')" for index in field)
            )
            + f" AS f{n}"
            for n, field in enumerate(fields)
        ]
        scanned = self._as_text(
            store.query(
                f"SELECT {', '.join([*(f'c{i}' for i in self.filtered), *chosen])} "
                f'FROM "{self.table}" WHERE _row > {lo} AND _row <= {hi} ORDER BY _row',
                (),
            )
        )
        if self.filters:
            scanned = scanned.filter(arrow_mask(scanned, self.filters, self.columns))
        return scanned.select([f"f{n}" for n in range(len(fields))])

    @staticmethod
    def _encode(chosen: pa.Table, fields: list[list[int]]) -> _Half | None:
        """``chosen``'s rows as CSV; None if a joined field holds a value that needs quotes."""
        if not chosen.num_rows:
            return _Half(0, [])
        joined = {f"f{n}": len(field) for n, field in enumerate(fields) if len(field) > 1}
        pieces = encode_csv(chosen, joined=joined)
        return None if pieces is None else _Half(chosen.num_rows, pieces)

    @staticmethod
    def _as_text(table: pa.Table) -> pa.Table:
        """The driver types a column by the values of its first batch (a range with none, or
        with nulls alone, comes back as integers): made text, as the table's columns are."""
        schema = pa.schema([(name, pa.string()) for name in table.column_names])
        return table if table.schema == schema else table.cast(schema)

    def _start(self, after: int, end: int) -> tuple[tuple[int, int], list[Future[_Half]]]:
        """Start preparing the keys ``(after, end]``, half on each connection."""
        middle = after + (end - after + 1) // 2
        bounds = [(after, middle), (middle, end)]
        return (after, end), [
            pool.submit(self._prepare, store, lo, hi)
            for (store, pool), (lo, hi) in zip(self._readers, bounds, strict=True)
        ]

    def _halves(
        self, after: int, end: int, usable: Callable[[int], bool], interrupted: Interrupt
    ) -> tuple[int, list[_Half]]:
        """The prepared halves of a range starting after ``after``, and where it ends: the
        range prepared ahead if it starts there and its end is ``usable``, else ``(after,
        end]`` prepared now. An interrupt is seen while waiting for them; the work itself
        runs to its end."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0][0] != after or not usable(ahead[0][1]):
            if ahead is not None:
                for half in ahead[1]:
                    with contextlib.suppress(Exception):
                        half.result()  # work already started ends before the next
            ahead = self._start(after, end)
        try:
            halves = [_result(half, interrupted) for half in ahead[1]]
        except Interrupted:
            self._ahead = ahead  # still useful if the run goes on from here
            raise
        return ahead[0][1], halves

    def chunk(
        self,
        *,
        after: int,
        upto: int,
        limit: int,
        fixed: bool,
        offset: int,
        interrupted: Interrupt,
    ) -> dict[str, Any]:
        """Write the rows of the keys after ``after`` (at most ``upto``) at ``offset``:
        ``limit`` keys if ``fixed`` (a gzip member's), else about a quarter second's worth,
        at most ``limit``. ``last_row`` is the last key the chunk covered."""
        if interrupted():
            raise Interrupted
        started = time.monotonic()
        span = limit if fixed else min(limit, self.budget.size)
        end, halves = self._halves(
            after,
            min(upto, after + span),
            lambda e: e == min(upto, after + limit) if fixed else after < e <= after + limit,
            interrupted,
        )
        if end < upto:  # prepare the next range while this one is written
            self._ahead = self._start(end, min(upto, end + span))
        if interrupted():
            raise Interrupted
        pieces = [memoryview(piece) for half in halves for piece in half.pieces]
        if self.gzipped and pieces:
            data = b"".join(pieces)
            pieces = [memoryview(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))]
        size_after = write_at(self.path, offset, *pieces, write_behind=True)
        self.budget.observe(end - after, time.monotonic() - started)
        return {
            "rows": sum(half.rows for half in halves),
            "last_row": end,
            "bytes": size_after,
        }

    def commit(self, statement: str, params: list[Any], interrupted: Interrupt) -> bool:
        """Commit the checkpoint of the chunks written so far: ``statement`` in a
        transaction of its own, committed if it changed a row (it returns one)."""
        if self._writer is None:
            self._writer = self.stores.take(self.database, self.before_commit)
        writer = self._writer
        writer.begin(interrupted)
        try:
            applied = bool(writer.returning(statement, params))
        except BaseException:
            writer.rollback()
            raise
        if not applied:
            writer.rollback()
            return False
        writer.commit()
        return True

    def rollback(self) -> None:
        """No transaction stays open: each read is a statement of its own, and ``commit``
        ends its transaction before it returns."""
        if self._writer is not None:
            self._writer.rollback()

    def close(self) -> None:
        for store, pool in self._readers:
            pool.shutdown(wait=True, cancel_futures=True)
            self.stores.give(store)
        if self._writer is not None:
            self.stores.give(self._writer)
            self._writer = None
        _keep_freed_pages(0)


def _keep_freed_pages(ms: int) -> None:
    """Let jemalloc keep freed pages ``ms`` milliseconds before it gives them back (0: at
    once). A worker serves one session at a time, so the setting is the session's."""
    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        pa.jemalloc_set_decay_ms(ms)


class Sessions:
    def __init__(self) -> None:
        self.open: dict[str, ImportSession | ExportSession] = {}
        self.stores = Stores()

    def get(self, session: str) -> Any:
        return self.open[session]

    def abandon(self, session: str | None) -> None:
        """After a failed or interrupted request: no transaction stays open."""
        found = self.open.get(session) if session else None
        if found is not None:
            found.rollback()

    def close_all(self) -> None:
        for found in self.open.values():
            found.close()
        self.open.clear()
        self.stores.close_all()


def import_open(sessions: Sessions, *, session: str, interrupted: Interrupt, **kwargs: Any) -> None:
    sessions.open[session] = ImportSession(stores=sessions.stores, **kwargs)


def import_stage(
    sessions: Sessions, *, session: str, interrupted: Interrupt, **kwargs: Any
) -> dict[str, Any] | None:
    found: ImportSession = sessions.get(session)
    return found.stage(interrupted=interrupted, **kwargs)


def commit(
    sessions: Sessions,
    *,
    session: str,
    statement: str,
    params: list[Any],
    interrupted: Interrupt,
) -> bool:
    """Run the checkpoint ``statement`` in the open transaction and commit if it changed a
    row (it returns one); roll back if it did not, or if the request was interrupted."""
    store = sessions.get(session).store
    if interrupted():
        store.rollback()
        raise Interrupted
    if not store.returning(statement, params):
        store.rollback()
        return False
    store.commit()
    return True


def rollback(sessions: Sessions, *, session: str, interrupted: Interrupt) -> None:
    sessions.get(session).rollback()


def export_open(sessions: Sessions, *, session: str, interrupted: Interrupt, **kwargs: Any) -> None:
    sessions.open[session] = ExportSession(stores=sessions.stores, **kwargs)


def export_chunk(
    sessions: Sessions, *, session: str, interrupted: Interrupt, **kwargs: Any
) -> dict[str, Any]:
    found: ExportSession = sessions.get(session)
    return found.chunk(interrupted=interrupted, **kwargs)


def export_commit(
    sessions: Sessions, *, session: str, statement: str, params: list[Any], interrupted: Interrupt
) -> bool:
    """Commit an export's checkpoint (``statement``); False if it applied to no row."""
    found: ExportSession = sessions.get(session)
    if interrupted():
        raise Interrupted
    return found.commit(statement, params, interrupted)


def close(sessions: Sessions, *, session: str, interrupted: Interrupt) -> None:
    found = sessions.open.pop(session, None)
    if found is not None:
        found.close()


def ping(sessions: Sessions, *, interrupted: Interrupt) -> str:
    return "pong"


OPERATIONS: dict[str, Callable[..., Any]] = {
    op.__name__: op
    for op in (
        import_open,
        import_stage,
        commit,
        rollback,
        export_open,
        export_chunk,
        export_commit,
        close,
        ping,
    )
}

__all__ = ["OPERATIONS", "CsvProblem", "Sessions"]
