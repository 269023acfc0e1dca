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

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

QUOTE = ord('"')
LF = ord("\n")
CR = ord("\r")


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


def encode_csv(table: pa.Table, *, delimiter: str = ",") -> list[pa.Buffer]:
    """The rows of ``table`` as CSV as Python's ``csv.writer`` writes it: CRLF line ends,
    a field quoted only if it holds the delimiter, a quote, CR or LF, quotes doubled, and
    the one field of a one-column row quoted when it is empty. Nulls are empty fields.

    The result is one buffer a record batch, to be written in order: each is the joined
    lines' own buffer, not a copy. A column is searched for those characters as one string
    first (its values' bytes, end to end), so that only a column that holds one is looked
    at value by value."""
    if table.num_rows == 0 or table.num_columns == 0:
        return []
    special = f'[{_class_escape(delimiter)}"\r\n]'
    return [
        _encode_batch(batch, delimiter, special) for batch in table.to_batches() if batch.num_rows
    ]


def _encode_batch(batch: pa.RecordBatch, delimiter: str, special: str) -> pa.Buffer:
    fields = []
    for column in batch.columns:
        values = pc.fill_null(pc.cast(column, pa.string()), "")
        needs = None
        if pc.match_substring_regex(_as_one_string(values), special)[0].as_py():
            needs = pc.match_substring_regex(values, special)
        if batch.num_columns == 1:  # an empty line would read as no record at all
            empty = pc.equal(pc.binary_length(values), 0)
            needs = empty if needs is None else pc.or_(needs, empty)
        if needs is None or not pc.any(needs).as_py():  # most columns: nothing to quote
            fields.append(values)
            continue
        quoted = pc.binary_join_element_wise("", pc.replace_substring(values, '"', '""'), "", '"')
        fields.append(pc.if_else(needs, quoted, values))
    joined = fields[0] if len(fields) == 1 else pc.binary_join_element_wise(*fields, delimiter)
    lines = pc.binary_join_element_wise(joined, "", "\r\n")
    first, last = _bounds(lines)
    return lines.buffers()[2].slice(first, last - first)


def _bounds(values: pa.Array) -> tuple[int, int]:
    """Where a string array's values start and end in its data buffer."""
    offsets = pa.Array.from_buffers(
        pa.int32(), len(values) + 1, [None, values.buffers()[1]], offset=values.offset
    )
    return offsets[0].as_py(), offsets[len(values)].as_py()


def _as_one_string(values: pa.Array) -> pa.Array:
    """A one-value array whose value is all of ``values``' bytes end to end (no copy)."""
    first, last = _bounds(values)
    data = values.buffers()[2]
    if data is None:
        return pa.array([""], pa.string())
    offsets = pa.array([first, last], pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, data])


def _class_escape(character: str) -> str:
    return "\\" + character if character in "\\]^-[" else character
