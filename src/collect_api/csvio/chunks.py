"""Reading an uploaded CSV a chunk at a time: fast where it can be, exact where it must be.

``ChunkSource.read`` takes a position (the byte offset, physical line and record count of the
next record) and a budget (bytes, records), and gives the chunk's records as an Arrow table
of string columns, the records it set aside (a ragged record, with its line), and the
position after the chunk. A chunk is read by pyarrow (``fast``) when it is UTF-8 or Latin-1
text that the fast check finds plain; otherwise by ``RecordReader``, Python's ``csv`` module,
which is the reference and names the line of every error. Both give the same records.

The ``on_error`` policy (``check_rejections``) is applied by the caller once it knows every
record a chunk sets aside, its own checks included.
"""

import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa

from collect_api.csvio import fast
from collect_api.csvio.reader import CsvProblem, Encoding, RecordReader, reject

# Codecs whose bytes the fast path can cut and parse: ASCII-compatible, so quotes, line ends
# and delimiters are the same bytes; Latin-1 is turned into UTF-8 after cutting.
_FAST_CODECS = ("utf-8", "latin-1", "iso8859-1")


@dataclass(frozen=True)
class Position:
    """Where the next record starts: byte offset, physical line, and records before it."""

    offset: int
    line: int
    records: int


@dataclass
class ChunkRead:
    table: pa.Table
    records: int  # records read, kept or set aside
    rejected: list[dict[str, Any]]  # {line, record, column, reason, raw}
    start: Position
    next: Position
    at_end: bool
    exact: bool  # read by the exact reader
    # Index in the chunk of each row of ``table``; None when every record was kept.
    kept: list[int] | None = field(default=None)


def check_rejections(
    rejected: list[dict[str, Any]],
    *,
    on_error: str,
    max_errors: int,
    total: int,
    errors_at: str,
) -> None:
    """Stop as the ``on_error`` policy says when records were set aside: ``abort`` at the
    first (naming its line), ``skip`` once more than ``max_errors`` were, ``total`` being
    the number so far, this chunk's included; ``errors_at`` says where they are listed."""
    if not rejected:
        return
    if on_error == "abort":
        first = rejected[0]
        raise CsvProblem(
            first["reason"] + "; fix the record or import with on_error=skip",
            line=first["line"],
            record=first["record"],
            column=first["column"],
            code="bad_record",
        )
    if total > max_errors:
        raise CsvProblem(
            f"more than {max_errors} records were rejected (the last at line "
            f"{rejected[-1]['line']}); see {errors_at}",
            code="too_many_errors",
        )


class ChunkSource:
    """Chunks of an open CSV file of ``len(columns)`` columns, from any record boundary."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        encoding: Encoding,
        delimiter: str,
        columns: list[str],
        max_field_bytes: int | None,
        size: int,
    ) -> None:
        self._file = file
        self._encoding = encoding
        self._delimiter = delimiter
        self._columns = columns
        self._max_field_bytes = max_field_bytes
        self._size = size
        self._fast = encoding.codec in _FAST_CODECS and len(columns) > 1

    def read(self, at: Position, *, budget: int, max_records: int) -> ChunkRead:
        """The chunk that starts at ``at``: at most ``max_records`` records, and about
        ``budget`` bytes (more if one record is longer)."""
        if self._fast:
            chunk = self._read_fast(at, budget=budget, max_records=max_records)
            if chunk is not None:
                return chunk
        return self._read_exact(at, budget=budget, max_records=max_records)

    def read_received(
        self, at: Position, *, upto: int, budget: int, max_records: int
    ) -> ChunkRead | None:
        """The chunk at ``at`` of a file still arriving, of which the first ``upto`` bytes
        are written: whole records before ``upto`` only, read by the fast path. None if it
        has not one whole record there yet, or if the chunk needs the exact reader (which
        reads on to the end of the file): the rest is read once the file is whole."""
        if not self._fast:
            return None
        return self._read_fast(at, budget=budget, max_records=max_records, upto=upto)

    def _read_fast(
        self, at: Position, *, budget: int, max_records: int, upto: int | None = None
    ) -> ChunkRead | None:
        size = self._size if upto is None else upto
        want = max(budget, 1 << 16)
        if at.records > 0:  # no more than max_records of records as long as those so far
            average = at.offset / at.records
            want = min(want, int(average * max_records * 1.25) + (1 << 16))
        while True:
            data = os.pread(self._file.fileno(), min(want, max(0, size - at.offset)), at.offset)
            reached = at.offset + len(data) >= size
            # The end of what has arrived is not a record's end: only of the whole file.
            at_end = reached and upto is None
            end = fast.cut_chunk(data, budget=budget, max_records=max_records, at_end=at_end)
            if end is not None or reached:
                break
            want *= 4  # one record is longer than what was read: read more
        if end is None:
            return None
        data = data[:end]
        text = data if self._encoding.codec == "utf-8" else _to_utf8(data, self._encoding.codec)
        if text is None:
            return None
        table = fast.parse_chunk(
            text,
            columns=len(self._columns),
            delimiter=self._delimiter,
            max_field_bytes=self._max_field_bytes,
        )
        if table is None:
            return None
        ends_file = upto is None and at.offset + end >= self._size
        # The physical lines: a last line with no line end counts too, as for csv.reader.
        lines = data.count(b"\n") + (1 if ends_file and data and not data.endswith(b"\n") else 0)
        return ChunkRead(
            table=table,
            records=table.num_rows,
            rejected=[],
            start=at,
            next=Position(at.offset + end, at.line + lines, at.records + table.num_rows),
            at_end=ends_file,
            exact=False,
        )

    def _read_exact(self, at: Position, *, budget: int, max_records: int) -> ChunkRead:
        reader = self._reader(at)
        parsed = reader.read(max(1, min(max_records, self._records_in(at, budget))))
        width = len(self._columns)
        rows = parsed.records
        rejected: list[dict[str, Any]] = []
        kept: list[int] | None = None
        if set(map(len, rows)) - {width}:
            lines = reader.locate(parsed)
            kept = [i for i, record in enumerate(rows) if len(record) == width]
            rejected = [
                reject(
                    record,
                    line=lines[i],
                    number=parsed.first_record + i,
                    column=None,
                    reason=f"the record has {len(record)} fields; the header has {width}",
                    delimiter=self._delimiter,
                )
                for i, record in enumerate(rows)
                if len(record) != width
            ]
            rows = [rows[i] for i in kept]
        return ChunkRead(
            table=fast.rows_table(rows, width),
            records=len(parsed.records),
            rejected=rejected,
            start=at,
            next=Position(parsed.next_offset, parsed.next_line, at.records + len(parsed.records)),
            at_end=parsed.at_end,
            exact=True,
            kept=kept,
        )

    def lines_of(self, chunk: ChunkRead) -> list[int]:
        """The physical line where each record of ``chunk`` starts (read again, exactly)."""
        reader = self._reader(chunk.start)
        return reader.read(chunk.records).lines

    def _reader(self, at: Position) -> RecordReader:
        return RecordReader(
            self._file,
            encoding=self._encoding,
            delimiter=self._delimiter,
            offset=at.offset,
            line=at.line,
            record=at.records,
            max_field_bytes=self._max_field_bytes,
            field_names=self._columns,
        )

    def _records_in(self, at: Position, budget: int) -> int:
        """About how many records ``budget`` bytes hold, by the records read so far."""
        if at.records <= 0:
            return 1_000
        average = max(1, at.offset // at.records)
        return max(1, budget // average)


def _to_utf8(data: bytes, codec: str) -> bytes | None:
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeError:
        return None
