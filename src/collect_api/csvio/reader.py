"""Read CSV records in chunks and know the byte offset where the next record starts.

Python's ``csv`` module parses, in C. It pulls one line at a time from the iterator it is
given and stops at the end of a record, so after it returns a record, the lines handed to it
end exactly where the next record begins. The lines come from an ``io.StringIO`` over a
block of the file cut at a line end and decoded; ``StringIO.tell()`` is then the character
position of the next record in that block, and re-encoding the block's text up to it gives
its byte length. The codecs accepted here are stateless, so that length is exact and a
resumed reader can start decoding afresh at that byte offset.
"""

import codecs
import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

BLOCK_BYTES = 1 << 20
BOMS = {
    "utf-8": ((codecs.BOM_UTF8, "utf-8"),),
    "utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
}
SUPPORTED_ENCODINGS = ("utf-8", "utf-16", "latin-1")


class CsvProblem(Exception):
    """The file cannot be read as CSV; ``line`` is the physical line where the record starts."""

    def __init__(
        self,
        reason: str,
        *,
        line: int | None = None,
        record: int | None = None,
        column: str | None = None,
        code: str = "bad_csv",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.record = record
        self.column = column
        self.code = code

    @property
    def details(self) -> dict[str, object]:
        """What it takes to raise this again elsewhere (``from_details``)."""
        return {
            "reason": self.reason,
            "line": self.line,
            "record": self.record,
            "column": self.column,
            "code": self.code,
        }

    @classmethod
    def from_details(cls, details: dict[str, object]) -> "CsvProblem":
        reason = str(details["reason"])
        line, record = details.get("line"), details.get("record")
        column = details.get("column")
        return cls(
            reason,
            line=line if isinstance(line, int) else None,
            record=record if isinstance(record, int) else None,
            column=column if isinstance(column, str) else None,
            code=str(details.get("code") or "bad_csv"),
        )

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return (f"{', '.join(where)}: " if where else "") + self.reason


@dataclass(frozen=True)
class Encoding:
    """A declared encoding resolved against the file: the stateless codec and the BOM size."""

    name: str
    codec: str
    bom_bytes: int


def resolve_encoding(path: Path, name: str) -> Encoding:
    try:
        name = codecs.lookup(name).name.replace("_", "-") if name else "utf-8"
    except LookupError:
        raise CsvProblem(
            f"encoding {name!r} is unknown; use one of {', '.join(SUPPORTED_ENCODINGS)}",
            column="encoding",
            code="bad_encoding",
        ) from None
    aliases = {"iso8859-1": "latin-1", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}
    name = aliases.get(name, name)
    if name not in SUPPORTED_ENCODINGS:
        raise CsvProblem(
            f"encoding {name!r} is not supported; use one of {', '.join(SUPPORTED_ENCODINGS)}",
            column="encoding",
            code="bad_encoding",
        )
    with open(path, "rb") as f:
        head = f.read(4)
    for bom, codec in BOMS.get(name, ()):
        if head.startswith(bom):
            return Encoding(name, codec, len(bom))
    if name == "utf-16":
        raise CsvProblem(
            "a utf-16 file must start with a byte order mark (BOM); save it as UTF-16 with BOM "
            "or as UTF-8",
            line=1,
            code="bad_encoding",
        )
    return Encoding(name, name, 0)


@dataclass(frozen=True)
class Header:
    columns: list[str]
    # Where the first data record starts: byte offset and physical line number.
    offset: int
    line: int


@dataclass
class RecordChunk:
    records: list[list[str]]
    # Line and record number (1-based, header excluded) of each record, for error reports.
    lines: list[int]
    first_record: int
    # Where the record after this chunk starts.
    next_offset: int
    next_line: int
    at_end: bool
    # Where this chunk started.
    start_offset: int = 0
    start_line: int = 1


class RecordReader:
    """Reads records from ``offset`` (which must start a record) in chunks.

    ``line`` is the physical line number at ``offset``, ``record`` the number of data records
    before it; both only label errors. Blank lines between records are skipped.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        encoding: Encoding,
        delimiter: str = ",",
        offset: int,
        line: int,
        record: int = 0,
        block_bytes: int = BLOCK_BYTES,
        max_field_bytes: int | None = None,
        field_names: list[str] | None = None,
    ) -> None:
        file.seek(offset)
        self._max_field_bytes = max_field_bytes
        self._field_names = field_names
        self._file = file
        self._encoding = encoding
        self._delimiter = delimiter
        self._codec = encoding.codec
        self._block_bytes = block_bytes
        self._block_text = ""
        self._block_offset = offset
        self._next_block_offset = offset
        self._sio = io.StringIO("")
        self._known = (0, offset)  # a (character position, byte offset) pair in the block
        self._lines_before = line - 1
        self._record = record
        self._reader = csv.reader(
            itertools.chain.from_iterable(self._blocks()), delimiter=delimiter, strict=True
        )
        self._at_end = False

    def _blocks(self) -> Iterator[io.StringIO]:
        """The file as decoded blocks, each ending at a line end. ``csv.reader`` takes their
        lines through ``itertools.chain``, all in C; this generator runs once per block."""
        newline = "\n".encode(self._codec)
        unit = len(newline)
        carry = b""
        while True:
            block = self._file.read(self._block_bytes)
            data = carry + block if carry else block
            if block:
                end = data.rfind(newline)
                while end > 0 and end % unit:  # UTF-16: only a whole code unit ends a line
                    end = data.rfind(newline, 0, end)
                if end < 0:  # no line end yet: the line is longer than a block
                    carry = data
                    continue
                cut = end + unit
            else:
                cut = len(data)
            carry = data[cut:]
            try:
                body = data[:cut].decode(self._codec)
            except UnicodeDecodeError as exc:
                raise self._decode_problem(exc) from None
            self._block_offset = self._next_block_offset
            self._next_block_offset += cut
            self._block_text = body
            self._known = (0, self._block_offset)
            self._sio = io.StringIO(body, newline="")
            yield self._sio
            if not block:
                return

    def _decode_problem(self, exc: UnicodeDecodeError) -> CsvProblem:
        # Count lines in the decoded text before the bad bytes: in UTF-16 a 0x0A byte may
        # be half of another character.
        before = codecs.decode(exc.object[: exc.start], self._codec, "replace")
        line = self._lines_before + self._reader.line_num + 1 + before.count("\n")
        bad = exc.object[exc.start : exc.end][:8].hex(" ")
        return CsvProblem(
            f"bytes {bad} are not valid {self._codec}; re-save the file as UTF-8 or pass the "
            "right encoding",
            line=line,
            code="bad_encoding",
        )

    @property
    def offset(self) -> int:
        """Byte offset of the next unread record."""
        position = self._sio.tell()
        known_position, known_offset = self._known
        if position < known_position:
            known_position, known_offset = 0, self._block_offset
        # Encode only the text read since the last call: each byte is counted once.
        consumed = self._block_text[known_position:position]
        offset = known_offset + len(consumed.encode(self._codec))
        self._known = (position, offset)
        return offset

    @property
    def line(self) -> int:
        """Physical line number of the next unread record."""
        return self._lines_before + self._reader.line_num + 1

    def read(self, max_records: int, *, with_lines: bool = True) -> RecordChunk:
        """Up to ``max_records`` records; raises CsvProblem naming the line on malformed CSV.

        ``with_lines=False`` is the fast path: records are taken in C (``islice``) without
        noting where each starts, so ``lines`` is empty; ``locate()`` finds them later if
        they are needed (a rejected record), and an error is located the same way.
        """
        first = self._record + 1
        start = (self.offset, self.line)
        if self._at_end:
            records: list[list[str]] = []
            lines: list[int] = []
        elif with_lines:
            records, lines = self._read_noting_lines(max_records, first)
        else:
            lines = []
            try:
                records = list(itertools.islice(self._reader, max_records))
            except csv.Error as exc:
                self._relocated(start).read(max_records)  # raises, naming the right line
                raise CsvProblem(_csv_reason(str(exc)), line=start[1], record=first) from None
            self._at_end = len(records) < max_records
            lengths = set(map(len, records))
            if 0 in lengths or 1 in lengths:
                records = [r for r in records if r and (len(r) > 1 or r[0].strip())]
        self._record += len(records)
        chunk = RecordChunk(
            records=records,
            lines=lines,
            first_record=first,
            next_offset=self.offset,
            next_line=self.line,
            at_end=self._at_end,
            start_offset=start[0],
            start_line=start[1],
        )
        self._check_field_sizes(chunk)
        return chunk

    def _read_noting_lines(self, max_records: int, first: int) -> tuple[list[list[str]], list[int]]:
        records: list[list[str]] = []
        lines: list[int] = []
        reader = self._reader
        base = self._lines_before + 1
        start_line = base + reader.line_num
        try:
            while len(records) < max_records:
                start_line = base + reader.line_num
                record = next(reader, None)
                if record is None:
                    self._at_end = True
                    break
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # a blank line, or one of spaces only
                records.append(record)
                lines.append(start_line)
        except csv.Error as exc:
            raise CsvProblem(
                _csv_reason(str(exc)), line=start_line, record=first + len(records)
            ) from None
        return records, lines

    def _relocated(self, start: tuple[int, int]) -> "RecordReader":
        return RecordReader(
            self._file,
            encoding=self._encoding,
            delimiter=self._delimiter,
            offset=start[0],
            line=start[1],
            record=self._record,
            block_bytes=self._block_bytes,
            max_field_bytes=self._max_field_bytes,
            field_names=self._field_names,
        )

    def _check_field_sizes(self, chunk: RecordChunk) -> None:
        """CsvProblem for the first field longer than ``max_field_bytes`` once encoded. Only
        a chunk longer than the limit can hold one, so most chunks are not looked into."""
        limit = self._max_field_bytes
        if limit is None or chunk.next_offset - chunk.start_offset <= limit:
            return
        shortest = limit // 4  # no encoding here takes more than 4 bytes a character
        for i, record in enumerate(chunk.records):
            for position, field in enumerate(record):
                if len(field) > shortest and len(field.encode(self._codec)) > limit:
                    names = self._field_names
                    column = names[position] if names and position < len(names) else None
                    lines = chunk.lines or self.locate(chunk)
                    raise CsvProblem(
                        f"a field of {len(field.encode(self._codec))} bytes is larger than the "
                        f"{limit}-byte limit (COLLECT_MAX_FIELD_BYTES)",
                        line=lines[i],
                        record=chunk.first_record + i,
                        column=column if column is not None else f"#{position + 1}",
                        code="field_too_large",
                    )

    def locate(self, chunk: RecordChunk) -> list[int]:
        """The line where each record of ``chunk`` (read without lines) starts."""
        if chunk.lines or not chunk.records:
            return chunk.lines
        position = self._file.tell()
        try:
            again = self._relocated((chunk.start_offset, chunk.start_line))
            again._record = chunk.first_record - 1
            return again.read(len(chunk.records)).lines
        finally:
            self._file.seek(position)


def read_header(
    path: Path,
    *,
    encoding: Encoding,
    delimiter: str = ",",
    max_columns: int | None = None,
    max_field_bytes: int | None = None,
) -> Header:
    """The header record, skipping leading blank lines; CsvProblem if there is none."""
    with open(path, "rb") as f:
        reader = RecordReader(
            f,
            encoding=encoding,
            delimiter=delimiter,
            offset=encoding.bom_bytes,
            line=1,
            max_field_bytes=max_field_bytes,
        )
        chunk = reader.read(1)
    if not chunk.records:
        raise CsvProblem(
            "the file is empty or holds only blank lines; a CSV needs a header row naming "
            "its columns",
            line=1,
            code="empty_file",
        )
    columns = chunk.records[0]
    line = chunk.lines[0]
    for index, name in enumerate(columns, start=1):
        if not name.strip():
            raise CsvProblem(
                f"column {index} of the header has no name; give every column a name",
                line=line,
                code="bad_header",
            )
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise CsvProblem(
                f"column name {name!r} appears more than once in the header; column names "
                "must be unique",
                line=line,
                column=name,
                code="bad_header",
            )
        seen.add(name)
    if max_columns is not None and len(columns) > max_columns:
        raise CsvProblem(
            f"the header has {len(columns)} columns, more than the {max_columns} allowed",
            line=line,
            code="bad_header",
        )
    return Header(columns=columns, offset=chunk.next_offset, line=chunk.next_line)


def _csv_reason(message: str) -> str:
    if "unexpected end of data" in message:
        return "a quoted field is never closed: the file ends inside quotes"
    if "field larger than field limit" in message:
        return (
            "a field is far larger than the limit (COLLECT_MAX_FIELD_BYTES); check for a "
            "missing closing quote"
        )
    if "expected after" in message:
        return f"malformed quoting ({message}); a quote inside a quoted field must be doubled"
    if "new-line character seen in unquoted field" in message:
        return "a bare carriage return inside an unquoted field; quote the field"
    return message


def reject(
    record: list[str], *, line: int, number: int, column: str | None, reason: str, delimiter: str
) -> dict[str, Any]:
    """A record set aside, as ``GET /jobs/{id}/errors`` lists it."""
    out = io.StringIO()
    # The writer quotes fields holding characters of its line terminator: keep CR LF in it,
    # so that a field with a line break is quoted, and cut the terminator off afterwards.
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerow(record)
    return {
        "line": line,
        "record": number,
        "column": column,
        "reason": reason,
        "raw": out.getvalue()[:-2],
    }
