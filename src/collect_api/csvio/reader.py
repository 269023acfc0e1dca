"""Read CSV records in chunks and know the byte offset where the next record starts.

Python's ``csv`` module parses, in C. It pulls one line at a time from the iterator it is
given and stops at the end of a record, so after it returns a record, the lines handed to it
end exactly where the next record begins. The lines come from an ``io.StringIO`` over a
decoded block of the file; ``StringIO.tell()`` is then the character position of the next
record in that block, and re-encoding the block's text up to it gives its byte length. The
codecs accepted here are stateless, so that length is exact and a resumed reader can start
decoding afresh at that byte offset.
"""

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
            code="bad_encoding",
        ) from None
    aliases = {"iso8859-1": "latin-1", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}
    name = aliases.get(name, name)
    if name not in SUPPORTED_ENCODINGS:
        raise CsvProblem(
            f"encoding {name!r} is not supported; use one of {', '.join(SUPPORTED_ENCODINGS)}",
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
    ) -> None:
        file.seek(offset)
        self._file = file
        self._codec = encoding.codec
        self._block_bytes = block_bytes
        self._block_text = ""
        self._block_offset = offset
        self._next_block_offset = offset
        self._sio = io.StringIO("")
        self._lines_before = line - 1
        self._record = record
        self._reader = csv.reader(self._lines(), delimiter=delimiter, strict=True)
        self._at_end = False

    def _lines(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self._codec)("strict")
        pending = ""
        while True:
            block = self._file.read(self._block_bytes)
            final = not block
            try:
                text = pending + decoder.decode(block, final)
            except UnicodeDecodeError as exc:
                raise self._decode_problem(pending, exc) from None
            if final:
                body, pending = text, ""
            else:
                cut = text.rfind("\n") + 1
                if cut == 0:  # no line end yet: the line is longer than a block
                    pending = text
                    continue
                body, pending = text[:cut], text[cut:]
            self._block_offset = self._next_block_offset
            self._block_text = body
            self._next_block_offset += len(body.encode(self._codec))
            self._sio = io.StringIO(body, newline="")
            yield from self._sio
            if final:
                return

    def _decode_problem(self, pending: str, exc: UnicodeDecodeError) -> CsvProblem:
        # ``exc.object`` is what the decoder was given, including bytes it held back from
        # the previous block; count lines in it as text, since in UTF-16 a 0x0A byte may be
        # half of another character.
        before = codecs.decode(exc.object[: exc.start], self._codec, "replace")
        line = self._lines_before + self._reader.line_num + 1
        line += pending.count("\n") + before.count("\n")
        bad = exc.object[exc.start : exc.end].hex(" ")
        return CsvProblem(
            f"bytes {bad} are not valid {self._codec}; re-save the file as UTF-8 or pass the "
            "right encoding",
            line=line,
            code="bad_encoding",
        )

    @property
    def offset(self) -> int:
        """Byte offset of the next unread record."""
        consumed = self._block_text[: self._sio.tell()]
        return self._block_offset + len(consumed.encode(self._codec))

    @property
    def line(self) -> int:
        """Physical line number of the next unread record."""
        return self._lines_before + self._reader.line_num + 1

    def read(self, max_records: int) -> RecordChunk:
        """Up to ``max_records`` records; raises CsvProblem naming the line on malformed CSV."""
        records: list[list[str]] = []
        lines: list[int] = []
        first = self._record + 1
        reader = self._reader
        base = self._lines_before + 1
        if not self._at_end:
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
        self._record += len(records)
        return RecordChunk(
            records=records,
            lines=lines,
            first_record=first,
            next_offset=self.offset,
            next_line=self.line,
            at_end=self._at_end,
        )


def read_header(
    path: Path, *, encoding: Encoding, delimiter: str = ",", max_columns: int | None = None
) -> Header:
    """The header record, skipping leading blank lines; CsvProblem if there is none."""
    with open(path, "rb") as f:
        reader = RecordReader(
            f, encoding=encoding, delimiter=delimiter, offset=encoding.bom_bytes, line=1
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
        return "a field is larger than the allowed maximum size"
    if "expected after" in message:
        return f"malformed quoting ({message}); a quote inside a quoted field must be doubled"
    if "new-line character seen in unquoted field" in message:
        return "a bare carriage return inside an unquoted field; quote the field"
    return message
