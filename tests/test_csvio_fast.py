"""The fast path against the exact one: every case is read both ways, and the records, the
positions after each chunk, the rejected records and the errors must be the same.

``ChunkSource`` decides per chunk which reader to use; ``exact_only`` forces the exact reader
(Python's csv module) for the reference. Cases cover csv-spectrum's files, the quoting cases
where pyarrow's reader would differ silently, and generated files of nasty responses read in
chunks of every size, from every chunk boundary. The bad records of ``test_bad_csv``
(``tests/csv_cases.py``) are read both ways too, and must be named alike.
"""

import csv
import io
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from collect_api.csvio import CsvProblem, Encoding, fast, read_header
from collect_api.csvio.chunks import ChunkSource, Position, check_rejections
from collect_api.samples import write_responses_csv
from tests.csv_cases import (
    FIELDS_OVER_THE_LIMIT,
    RAGGED,
    UNTERMINATED,
    over_the_field_limit,
)

UTF8 = Encoding("utf-8", "utf-8", 0)

# (name, CSV text): csv-spectrum's cases and the quoting cases pyarrow reads differently.
CASES = [
    (
        "comma_in_quotes",
        'first,last,address,city,zip\r\nJohn,Doe,120 any st.,"Anytown, WW",08123\r\n',
    ),
    ("empty", 'a,b,c\r\n1,"",""\r\n2,3,4\r\n'),
    ("empty_crlf", 'a,b,c\r\n1,"",""\r\n2,3,4\r\n'),
    ("escaped_quotes", 'a,b\r\n1,"ha ""ha"" ha"\r\n3,4\r\n'),
    ("json", 'key,val\r\n1,"{""type"": ""Point"", ""coordinates"": [102.0, 0.5]}"\r\n'),
    ("newlines", 'a,b,c\r\n1,2,3\r\n"Once upon \r\na time",5,6\r\n7,8,9\r\n'),
    ("newlines_lf", 'a,b,c\n1,2,3\n"Once upon \na time",5,6\n7,8,9\n'),
    ("quotes_and_newlines", 'a,b\r\n1,"ha \r\n""ha"" \r\nha"\r\n3,4\r\n'),
    ("simple", "a,b,c\r\n1,2,3\r\n"),
    ("simple_lf", "a,b,c\n1,2,3\n"),
    ("utf8", "a,b,c\r\n1,2,3\r\n4,5,ʤ\r\n"),
    ("no_final_newline", "a,b\r\n1,2\r\n3,4"),
    ("blank_lines", "a,b\r\n\r\n1,2\r\n\r\n\r\n3,4\r\n\r\n"),
    ("text_after_closing_quote", 'a,b\r\n"ab"c,d\r\n'),
    ("quote_after_spaces", 'a,b\r\n "x",y\r\n'),
    ("space_after_closing_quote", 'a,b\r\n"p" ,q\r\n'),
    ("backslash_before_quote", 'a,b\r\n"a\\"b",c\r\n'),
    ("quote_inside_unquoted", 'a,b\r\nab"c,d\r\n'),
    ("unterminated_quote", 'a,b\r\n1,"never closed\r\n2,3\r\n'),
    ("ragged_short", "a,b,c\r\n1,2\r\n3,4,5\r\n"),
    ("ragged_long", "a,b\r\n1,2,3\r\n4,5\r\n"),
    ("line_of_spaces", "a,b\r\n1,2\r\n   \r\n3,4\r\n"),
    ("bare_cr", "a,b\r\n1,2\r3,4\r\n"),
    ("cr_in_quotes", 'a,b\r\n"x\ry",2\r\n'),
    ("nul", "a,b\r\n1,\x002\r\n"),
    ("doubled_at_edges", 'a,b\r\n"""",""""""\r\n"""a""",b\r\n'),
]


def exact_only(source: ChunkSource) -> ChunkSource:
    source._fast = False
    return source


def read_everything(
    path: Path,
    *,
    budget: int,
    max_records: int,
    fast_allowed: bool,
    encoding: Encoding = UTF8,
    delimiter: str = ",",
    max_field_bytes: int = 1 << 20,
) -> Any:
    """Every chunk of ``path`` after its header: records, positions, rejections; or the
    error that stopped the reading, as ``("error", line, record, column, code)``."""
    try:
        header = read_header(
            path, encoding=encoding, delimiter=delimiter, max_field_bytes=max_field_bytes
        )
    except CsvProblem as exc:  # a bad byte near the start is found with the header
        return ("error", exc.line, exc.record, exc.column, exc.code)
    columns = header.columns
    with open(path, "rb") as f:
        source = ChunkSource(
            f,
            encoding=encoding,
            delimiter=delimiter,
            columns=columns,
            max_field_bytes=max_field_bytes,
            size=path.stat().st_size,
        )
        if not fast_allowed:
            exact_only(source)
        at = Position(header.offset, header.line, 0)
        chunks = []
        try:
            while True:
                chunk = source.read(at, budget=budget, max_records=max_records)
                chunks.append(
                    (
                        [list(r.values()) for r in chunk.table.to_pylist()],
                        chunk.records,
                        chunk.rejected,
                        chunk.next,
                    )
                )
                at = chunk.next
                if chunk.at_end:
                    return chunks
        except CsvProblem as exc:
            return ("error", exc.line, exc.record, exc.column, exc.code)


def flatten(result: Any) -> Any:
    """The records, rejections and final position, whatever the chunk boundaries."""
    if isinstance(result, tuple):
        return result
    rows = [row for chunk in result for row in chunk[0]]
    rejected = [r for chunk in result for r in chunk[2]]
    return rows, rejected, result[-1][3]


@pytest.mark.parametrize(("name", "text"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("budget", [1, 7, 64, 1 << 20])
def test_both_paths_read_every_case_alike(
    tmp_path: Path, name: str, text: str, budget: int
) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(text.encode("utf-8"))
    reference = read_everything(path, budget=budget, max_records=1000, fast_allowed=False)
    found = read_everything(path, budget=budget, max_records=1000, fast_allowed=True)
    assert flatten(found) == flatten(reference)
    if not isinstance(reference, tuple):  # and chunk by chunk, the same positions
        assert [c[3] for c in found][-1] == [c[3] for c in reference][-1]


def test_invalid_utf8_past_the_header_block_fails_alike(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"  # the bad bytes past the block read with the header
    path.write_bytes(b"a,b\r\n" + b"1,2\r\n" * 300_000 + b"3,\xff\xfe\r\n")
    reference = read_everything(path, budget=1 << 18, max_records=10**6, fast_allowed=False)
    found = read_everything(path, budget=1 << 18, max_records=10**6, fast_allowed=True)
    assert found == reference == ("error", 300_002, None, None, "bad_encoding")


@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])
@pytest.mark.parametrize(("budget", "max_records"), [(300, 1000), (4096, 7), (1 << 20, 50)])
def test_generated_responses_read_alike_in_chunks_of_every_size(
    tmp_path: Path, lineterminator: str, budget: int, max_records: int
) -> None:
    path = tmp_path / "responses.csv"
    write_responses_csv(path, 400, seed=3, lineterminator=lineterminator)
    reference = read_everything(path, budget=budget, max_records=max_records, fast_allowed=False)
    found = read_everything(path, budget=budget, max_records=max_records, fast_allowed=True)
    assert flatten(found) == flatten(reference)
    assert len(flatten(found)[0]) == 400
    # Every chunk holds at most max_records records, and ends where the next begins.
    for rows, records, _rejected, _next in found:
        assert records <= max_records
        assert len(rows) == records


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_and_latin_1_read_alike(tmp_path: Path, delimiter: str) -> None:
    rows = [[f"é{i}", f'"q{delimiter}{i}"', f"line\r\nbreak {i}", "", "plain"] for i in range(300)]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows([list("abcde"), *rows])
    for codec in ("utf-8", "latin-1"):
        path = tmp_path / f"{codec}.csv"
        path.write_bytes(out.getvalue().encode(codec))
        encoding = Encoding(codec, codec, 0)
        options = {"budget": 500, "max_records": 40, "encoding": encoding, "delimiter": delimiter}
        reference = read_everything(path, fast_allowed=False, **options)
        found = read_everything(path, fast_allowed=True, **options)
        assert flatten(found) == flatten(reference)
        assert flatten(found)[0] == rows


def test_a_fast_chunk_is_read_by_pyarrow_and_resumes_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "responses.csv"
    write_responses_csv(path, 2_000, seed=9)
    header = read_header(path, encoding=UTF8)
    with open(path, "rb") as f:
        source = ChunkSource(
            f,
            encoding=UTF8,
            delimiter=",",
            columns=header.columns,
            max_field_bytes=None,
            size=path.stat().st_size,
        )
        first = source.read(
            Position(header.offset, header.line, 0), budget=50_000, max_records=10**9
        )
        assert not first.exact  # these responses are plain enough for pyarrow
        rest = source.read(first.next, budget=10**9, max_records=10**9)
    with open(path, newline="", encoding="utf-8") as f:
        expected = list(csv.reader(f))[1:]
    got = [list(r.values()) for r in first.table.to_pylist() + rest.table.to_pylist()]
    assert got == expected
    # The line after the first chunk is the physical line where its next record starts.
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for _ in range(first.records + 1):
            next(reader)
        assert first.next.line == reader.line_num + 1


def test_record_boundaries_are_found_in_bytes_quote_aware() -> None:
    data = b'a,"x\ny"\nb,c\n"d\n\ne",f\n'
    assert fast.record_end_before(data, len(data)) == len(data)
    assert fast.record_end_before(data, 5) is None  # the line feed there is inside quotes
    assert fast.record_end_before(data, 9) == 8
    assert fast.first_record_end(data) == 8
    assert fast.cut_chunk(data, budget=100, max_records=1, at_end=True) == 8
    # Line feeds bound the records from above: a cut holds no more of them than allowed,
    # and always ends at a record boundary.
    for most in (2, 3, 4):
        end = fast.cut_chunk(data, budget=100, max_records=most, at_end=True)
        assert end in (8, 12, 21) and data.count(b"\n", 0, end) <= most


@pytest.mark.parametrize("seed", range(5))
def test_encoded_csv_is_what_csv_writer_writes(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "b", " ", ",", '"', "\r", "\n", "é", "日", ";", ""]
    width = rng.randrange(1, 5)
    rows = [
        ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6))) for _ in range(width)]
        for _ in range(200)
    ]
    for delimiter in (",", ";", "\t", "|"):
        expected = io.StringIO()
        csv.writer(expected, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
        table = fast.rows_table(rows, width)
        # In record batches of several sizes, as a query's result comes.
        sizes = [rng.randrange(1, 60) for _ in range(10)]
        batches, start = [], 0
        while start < len(rows):
            batches.append(table.slice(start, sizes[len(batches) % 10]))
            start += len(batches[-1])
        chunked = pa.concat_tables(batches)
        for whole in (table, chunked):
            pieces = fast.encode_csv(whole, delimiter=delimiter)
            encoded = b"".join(piece.to_pybytes() for piece in pieces)
            assert encoded == expected.getvalue().encode("utf-8"), delimiter
        assert len(fast.encode_csv(chunked, delimiter=delimiter)) == len(batches)


def _needs_quotes(value: str, delimiter: str) -> bool:
    return any(c in value for c in (delimiter, '"', "\r", "\n"))


@pytest.mark.parametrize("seed", range(3))
def test_quote_bits_name_the_fields_csv_quotes(seed: int) -> None:
    """Bit i of a row's quote bits is set exactly when ``csv.writer`` quotes its field i for
    the characters it holds, in record batches of several sizes, with nulls (no quotes), for
    the first 63 of 66 columns."""
    rng = random.Random(seed)
    alphabet = ["a", " ", ",", '"', "\r", "\n", "é", ";", "", "xyz"]
    width = 66
    rows = [
        ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4))) for _ in range(width)]
        for _ in range(300)
    ]
    table = fast.rows_table(rows, width)
    with_nulls = table.set_column(5, "c5", pa.array([None] * len(rows), pa.string()))
    batches = [with_nulls.slice(start, 37) for start in range(0, len(rows), 37)]
    for delimiter in (",", ";"):
        expected = [
            sum(
                1 << i
                for i, value in enumerate(row[:63])
                if i != 5 and _needs_quotes(value, delimiter)
            )
            for row in rows
        ]
        bits = fast.quote_bits(pa.concat_tables(batches), columns=63, delimiter=delimiter)
        assert bits.to_pylist() == expected
        assert any(b >> 62 for b in expected)  # the last bit is used too
    assert fast.quote_bits(table, columns=2).to_pylist() == [
        sum(1 << i for i in range(2) if _needs_quotes(row[i], ",")) for row in rows
    ]


@pytest.mark.parametrize("seed", range(5))
def test_fields_joined_by_the_query_are_written_as_they_are_or_refused(seed: int) -> None:
    """Runs of columns joined into one value, as an export's query joins them: the same
    bytes as ``csv.writer`` when no field of a run needs quotes, None when one does; and
    ``quoted_columns`` names the columns with a field that does."""
    rng = random.Random(seed)
    for _ in range(40):
        width = rng.randrange(2, 7)
        dirty = rng.random() < 0.5
        # Some of the characters that need quotes, each alone as well: a delimiter too many
        # in a run is found as surely as a quote.
        specials = rng.sample([",", '"', "\r", "\n"], rng.randrange(1, 5)) if dirty else []
        alphabet = ["a", "b", " ", "é", "日", "", *specials]
        rows = [
            [
                "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 5)))
                for _ in range(width)
            ]
            for _ in range(rng.randrange(1, 80))
        ]
        delimiter = ","
        # The columns cut into runs of one or more, each run joined into one value.
        cuts = sorted(rng.sample(range(1, width), rng.randrange(0, width - 1)))
        runs = [list(range(a, b)) for a, b in zip([0, *cuts], [*cuts, width], strict=True)]
        table = pa.table(
            {
                f"f{n}": pa.array([delimiter.join(row[i] for i in run) for row in rows])
                for n, run in enumerate(runs)
            }
        )
        joined = {f"f{n}": len(run) for n, run in enumerate(runs) if len(run) > 1}
        expected = io.StringIO()
        csv.writer(expected, lineterminator="\r\n").writerows(rows)
        refused = any(
            _needs_quotes(row[i], delimiter)
            for run in runs
            if len(run) > 1
            for row in rows
            for i in run
        )
        pieces = fast.encode_csv(table, delimiter=delimiter, joined=joined)
        if refused:
            assert pieces is None
        else:
            assert pieces is not None
            assert b"".join(p.to_pybytes() for p in pieces) == expected.getvalue().encode()
        apart = fast.rows_table(rows, width)
        assert fast.quoted_columns(apart) == [
            f"c{i}" for i in range(width) if any(_needs_quotes(row[i], delimiter) for row in rows)
        ]


# --- Bad records, named alike both ways ----------------------------------------------------

both_paths = pytest.mark.parametrize("fast_allowed", [True, False], ids=["fast", "exact"])
ERRORS_AT = "/jobs/j/errors"


@both_paths
@pytest.mark.parametrize(("content", "line", "record", "reason"), RAGGED.values(), ids=RAGGED)
def test_a_ragged_record_is_set_aside_and_aborts_naming_its_line_and_record(
    tmp_path: Path, content: bytes, line: int, record: int, reason: str, fast_allowed: bool
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_bytes(content)
    found = read_everything(path, budget=1 << 20, max_records=1000, fast_allowed=fast_allowed)
    _rows, rejected, _end = flatten(found)
    assert (rejected[0]["line"], rejected[0]["record"]) == (line, record)
    assert reason in rejected[0]["reason"]
    with pytest.raises(CsvProblem) as caught:
        check_rejections(
            rejected, on_error="abort", max_errors=0, total=len(rejected), errors_at=ERRORS_AT
        )
    assert caught.value.code == "bad_record"
    assert str(caught.value).startswith(f"line {line}, record {record}: ")
    assert "on_error=skip" in str(caught.value)


@both_paths
@pytest.mark.parametrize("rejected", [3, 4, 600])
def test_skip_stops_past_max_errors_naming_the_last_line(
    tmp_path: Path, rejected: int, fast_allowed: bool
) -> None:
    path = tmp_path / "many.csv"
    path.write_bytes(b"a,b\r\n0,0\r\n" + b"1\r\n" * rejected + b"2,3\r\n")
    found = read_everything(path, budget=1 << 20, max_records=1000, fast_allowed=fast_allowed)
    rows, set_aside, _end = flatten(found)
    assert rows == [["0", "0"], ["2", "3"]]
    assert [r["line"] for r in set_aside] == list(range(3, rejected + 3))

    def skip_up_to_3() -> None:
        check_rejections(
            set_aside, on_error="skip", max_errors=3, total=rejected, errors_at=ERRORS_AT
        )

    if rejected <= 3:
        skip_up_to_3()
        return
    with pytest.raises(CsvProblem) as caught:
        skip_up_to_3()
    assert caught.value.code == "too_many_errors"
    assert "more than 3" in str(caught.value)
    assert f"line {rejected + 2}" in str(caught.value) and ERRORS_AT in str(caught.value)


@both_paths
@pytest.mark.parametrize(("content", "line", "record"), UNTERMINATED.values(), ids=UNTERMINATED)
def test_an_unterminated_quote_names_the_record_where_it_opens(
    tmp_path: Path, content: bytes, line: int, record: int, fast_allowed: bool
) -> None:
    path = tmp_path / "open.csv"
    path.write_bytes(content)
    found = read_everything(path, budget=1 << 20, max_records=1000, fast_allowed=fast_allowed)
    assert found == ("error", line, record, None, "bad_csv")


@both_paths
@pytest.mark.parametrize(
    ("field_text", "line"), FIELDS_OVER_THE_LIMIT.values(), ids=FIELDS_OVER_THE_LIMIT
)
def test_a_field_over_the_limit_names_its_line_record_and_column(
    tmp_path: Path, field_text: str, line: int, fast_allowed: bool
) -> None:
    assert len(field_text.encode()) > 1000
    path = tmp_path / "huge.csv"
    path.write_bytes(over_the_field_limit(field_text, line))
    found = read_everything(
        path, budget=1 << 20, max_records=1000, fast_allowed=fast_allowed, max_field_bytes=1000
    )
    if line == 1:  # a column name: the header is read before either path
        assert (found[0], found[1], found[4]) == ("error", 1, "field_too_large")
    else:
        assert found == ("error", 3, 2, "text", "field_too_large")
