"""The fast path: CSV chunks cut in bytes, parsed into Arrow by pyarrow's C++ reader, and CSV
written from Arrow with vectorised kernels. Nothing here runs per record in Python.

Python's ``csv`` module, as ``reader.RecordReader`` uses it, is the reference; pyarrow's reader
differs from it in a few places (text after a closing quote, a quote after leading spaces,
NUL bytes, ragged records, lines of spaces). ``parse_chunk`` therefore reads a chunk only when
a cheap check, itself vectorised, shows that it holds none of those; otherwise it answers
``None`` and the caller reads the chunk with the exact reader, which names every error's line.

The check looks at every quote of the chunk and at its neighbours. In well-formed CSV the
quotes of a chunk that starts at a record boundary alternate: the even ones (0, 2, ...) open
a quoted field (after a delimiter, a line end or the start) or are the second of a doubled
quote (after a quote); the odd ones close a field (before a delimiter, a line end or the
end) or are the first of a doubled quote (before a quote). A quote anywhere else is a case
the two readers may read differently.

Record boundaries, and so checkpoints, come from the same parity: a line feed ends a record
when the quotes before it are even in number.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

QUOTE = ord('"')
LF = ord("\n")
CR = ord("\r")
SPACE = ord(" ")


def _quotes_before(data: bytes, end: int, known: tuple[int, int] | None = None) -> int:
    """The number of quotes in ``data[:end]``; ``known`` is an earlier ``(position, count)``."""
    if known is not None and known[0] <= end:
        return known[1] + data.count(b'"', known[0], end)
    return data.count(b'"', 0, end)


def record_end_before(data: bytes, limit: int) -> int | None:
    """The offset just past the last record that ends at or before ``limit``, for ``data``
    that starts at a record boundary; None if no whole record ends there."""
    end = data.rfind(b"\n", 0, limit)
    if end < 0:
        return None
    quotes = _quotes_before(data, end)
    while quotes % 2:  # this line feed is inside a quoted field: look further back
        before = data.rfind(b"\n", 0, end)
        if before < 0:
            return None
        quotes -= data.count(b'"', before, end)
        end = before
    return end + 1


def first_record_end(data: bytes) -> int | None:
    """The offset just past the first record of ``data``; None if it does not end in it."""
    end = data.find(b"\n")
    quotes = 0
    start = 0
    while end >= 0:
        quotes += data.count(b'"', start, end)
        if quotes % 2 == 0:
            return end + 1
        start = end
        end = data.find(b"\n", end + 1)
    return None


def cut_chunk(data: bytes, *, budget: int, max_records: int, at_end: bool) -> int | None:
    """Where a chunk of ``data`` (starting at a record boundary) ends: at a record boundary,
    within ``budget`` bytes if a record ends there, and holding at most ``max_records``
    records (line feeds bound them from above). ``at_end``: ``data`` runs to the end of the
    file, so its last record may lack a line end. None: not one whole record in ``data``."""
    if at_end and len(data) <= budget and data.count(b"\n") <= max_records:
        return len(data)
    limit = min(budget, len(data))
    while True:
        end = record_end_before(data, limit)
        if end is None:
            break
        lines = data.count(b"\n", 0, end)
        if lines <= max_records:
            return end
        limit = max(1, int(end * max_records / lines) - 1)
    end = first_record_end(data)
    if end is None and at_end:
        return len(data)
    return end


def _parse_options(delimiter: str) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        ignore_empty_lines=True,
    )


def quoting_is_plain(data: bytes, delimiter: str) -> bool:
    """Whether every quote of ``data`` stands where both readers read it alike (the module
    docstring says where that is), and the quotes are even in number."""
    count = data.count(b'"')
    if count == 0:
        return True
    if count % 2:
        return False
    values = np.frombuffer(data, np.uint8)
    at = np.flatnonzero(values == QUOTE)
    sep = ord(delimiter)
    # Before an even quote: the start, a delimiter, a line feed, or the odd quote before it.
    opening = at[0::2]
    opening = opening[opening > 0]
    allowed = np.zeros(256, np.bool_)
    allowed[[sep, LF, QUOTE]] = True
    if not allowed[values[opening - 1]].all():
        return False
    # After an odd quote: the end, a delimiter, a line end, or the even quote after it.
    closing = at[1::2]
    closing = closing[closing < len(values) - 1]
    allowed[CR] = True
    return bool(allowed[values[closing + 1]].all())


def parse_chunk(
    data: bytes, *, columns: int, delimiter: str, max_field_bytes: int | None = None
) -> pa.Table | None:
    """The records of ``data`` (a chunk cut by ``cut_chunk``, UTF-8) as a table of
    ``columns`` string columns named ``c0``, ``c1``, ...; None when the exact reader must
    read the chunk instead: an anomaly, a ragged record, invalid UTF-8, a field over
    ``max_field_bytes``, or a line of spaces that only the exact reader skips."""
    names = [f"c{i}" for i in range(columns)]
    if not data.strip(b"\r\n"):
        return pa.table({name: pa.array([], pa.string()) for name in names})
    if (
        columns < 2  # a line of spaces is a record of one field here, and skipped there
        or b"\x00" in data
        or data.count(b"\r") != data.count(b"\r\n")  # a bare CR ends a line there
        or not quoting_is_plain(data, delimiter)
    ):
        return None
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=max(len(data) + 1, 1 << 20), use_threads=True
            ),
            parse_options=_parse_options(delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=True,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if max_field_bytes is not None and len(data) > max_field_bytes:
        for column in table.columns:
            longest = pc.max(pc.binary_length(column)).as_py()
            if longest is not None and longest > max_field_bytes:
                return None
    return table


def rows_table(rows: Sequence[Sequence[str]], columns: int) -> pa.Table:
    """Records read by the exact reader as the same table ``parse_chunk`` gives."""
    return pa.table(
        {f"c{i}": pa.array([row[i] for row in rows], pa.string()) for i in range(columns)}
    )


def encode_csv(
    table: pa.Table, *, delimiter: str = ",", joined: Mapping[str, int] | None = None
) -> list[pa.Buffer] | None:
    """The rows of ``table`` as CSV as Python's ``csv.writer`` writes it: CRLF line ends,
    a field quoted only if it holds the delimiter, a quote, CR or LF, quotes doubled, and
    the one field of a one-column row quoted when it is empty. Nulls are empty fields.

    The result is one buffer a record batch, to be written in order: each is the joined
    lines' own buffer, not a copy. A column's bytes are searched for those characters end to
    end first, so that only a column that holds one is looked at value by value, and only
    its values that hold one are quoted.

    ``joined`` names the columns that each hold several of the file's fields (how many),
    already joined by the delimiter (by the query that read them): written as they are, once
    their bytes show that no field of theirs needs quotes, exactly ``fields - 1``
    delimiters a row and no quote, CR or LF. None if one of them holds a field that does:
    the caller reads those fields apart, and ``quoted_columns`` says which they are."""
    if table.num_rows == 0 or table.num_columns == 0:
        return []
    specials = _Specials(delimiter)
    pieces = []
    for batch in table.to_batches():
        if batch.num_rows:
            piece = _encode_batch(batch, specials, joined or {})
            if piece is None:
                return None
            pieces.append(piece)
    return pieces


def quoted_columns(table: pa.Table, *, delimiter: str = ",") -> list[str]:
    """The columns of ``table`` with a value ``encode_csv`` quotes for the characters it
    holds (an empty value of a one-column table aside)."""
    specials = _Specials(delimiter)
    return [
        name
        for name, column in zip(table.column_names, table.columns, strict=True)
        if any(specials.count(_text(chunk)) for chunk in column.chunks)
    ]


def quote_bits(table: pa.Table, *, columns: int, delimiter: str = ",") -> pa.Array:
    """For each row of ``table``, which of its fields ``encode_csv`` quotes for the
    characters they hold: bit ``i`` of a signed 64-bit integer for column ``i``, of the
    first ``columns`` (at most 63). A column's bytes are searched end to end, a character
    at a time, and the values are found from where the characters are."""
    specials = _Specials(delimiter)
    bits = np.zeros(table.num_rows, dtype=np.int64)
    for index, column in enumerate(table.columns[: min(columns, 63)]):
        start = 0
        for chunk in column.chunks:
            values = _text(chunk)
            # A value that holds several of the characters is named once for each.
            bits[start + specials.holding(values)] |= 1 << index
            start += len(values)
    return pa.array(bits)


class _Specials:
    """Counts the characters that make a field quoted: the delimiter, a quote, CR and LF."""

    def __init__(self, delimiter: str) -> None:
        code = delimiter.encode("utf-8")
        if len(code) != 1:
            raise ValueError(f"the delimiter must be one ASCII character, not {delimiter!r}")
        self.delimiter = delimiter
        self.codes = (code[0], QUOTE, CR, LF)
        # ``holding`` looks again at every byte below ``_below`` but a space: with a comma
        # or a tab for the delimiter, the four characters are all below it, and most bytes
        # of text (letters, digits, spaces) are not looked at twice. None: a character a pass.
        self._lookup = np.zeros(256, dtype=bool)
        self._lookup[list(self.codes)] = True
        usable = max(self.codes) < ord("0") and SPACE not in self.codes
        self._below = max(self.codes) + 1 if usable else None

    def count(self, values: pa.Array) -> int:
        """How many of the four characters ``values`` hold, all told (a count a character
        is cheaper than one pass for all four)."""
        data = _data(values)
        return sum(int(np.count_nonzero(data == code)) for code in self.codes)

    def mask(self, values: pa.Array) -> pa.Array:
        """Which values hold one of the characters."""
        needs = np.zeros(len(values), dtype=bool)
        needs[self.holding(values)] = True
        return pa.array(needs)

    def holding(self, values: pa.Array) -> np.ndarray:
        """The index of each value that holds one of the characters, once for each it
        holds."""
        data = _data(values)
        if self._below is None:
            hits = np.concatenate([np.flatnonzero(data == code) for code in self.codes])
        else:
            low = data < self._below
            low &= data != SPACE
            near = np.flatnonzero(low)
            hits = near[self._lookup[data[near]]]
        offsets = _offsets(values)
        return np.searchsorted(offsets, hits + offsets[0], side="right") - 1


def _encode_batch(
    batch: pa.RecordBatch, specials: _Specials, joined: Mapping[str, int]
) -> pa.Buffer | None:
    fields = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        values = _text(column)
        width = joined.get(name, 1)
        found = specials.count(values)
        if width > 1:
            # Only the delimiters that join its fields: no field holds a character that
            # needs quotes.
            if found != len(values) * (width - 1):
                return None
            fields.append(values)
            continue
        needs = specials.mask(values) if found else None
        if batch.num_columns == 1:  # an empty line would read as no record at all
            empty = pc.equal(pc.binary_length(values), 0)
            needs = empty if needs is None else pc.or_(needs, empty)
        if needs is None or not pc.any(needs).as_py():  # most columns: nothing to quote
            fields.append(values)
            continue
        chosen = values.filter(needs)
        quoted = pc.binary_join_element_wise("", pc.replace_substring(chosen, '"', '""'), "", '"')
        fields.append(pc.replace_with_mask(values, needs, quoted))
    # The line end goes on the last field, which is shorter than a line to copy again.
    fields[-1] = pc.binary_join_element_wise(fields[-1], "", "\r\n")
    lines = (
        fields[0] if len(fields) == 1 else pc.binary_join_element_wise(*fields, specials.delimiter)
    )
    first, last = _bounds(lines)
    return lines.buffers()[2].slice(first, last - first)


def text_pieces(column: pa.ChunkedArray) -> list[pa.Buffer]:
    """The bytes of a string column's values end to end, one buffer a chunk (no copy):
    lines a query built whole, ready to write."""
    pieces = []
    for chunk in column.chunks:
        first, last = _bounds(chunk)
        if last > first:
            pieces.append(chunk.buffers()[2].slice(first, last - first))
    return pieces


def _text(column: pa.Array) -> pa.Array:
    return pc.fill_null(pc.cast(column, pa.string()), "")


def _offsets(values: pa.Array) -> np.ndarray:
    """A string array's value offsets into its data buffer (no copy)."""
    return np.frombuffer(
        values.buffers()[1], dtype=np.int32, count=len(values) + 1, offset=values.offset * 4
    )


def _bounds(values: pa.Array) -> tuple[int, int]:
    """Where a string array's values start and end in its data buffer."""
    offsets = _offsets(values)
    return int(offsets[0]), int(offsets[-1])


def _data(values: pa.Array) -> np.ndarray:
    """A string array's values' bytes end to end (no copy)."""
    first, last = _bounds(values)
    data = values.buffers()[2]
    if data is None or last == first:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8, count=last - first, offset=first)
