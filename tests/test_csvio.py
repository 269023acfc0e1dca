"""csvio: records exactly as ``csv.reader`` sees them, resumable at any byte offset, and a
CsvProblem naming the line for every file that cannot be read.

The bad files of ``test_bad_csv`` (``tests/csv_cases.py``) are read here without the app:
what the import checks before reading (text at all, the delimiter, the header), and how the
reader names what is wrong.
"""

import codecs
import csv
import io
from pathlib import Path

import pytest

from collect_api.csvio import (
    CsvProblem,
    Encoding,
    RecordChunk,
    RecordReader,
    check_text,
    read_header,
    resolve_encoding,
    sniff_delimiter,
)
from collect_api.samples import HEADER, write_responses_csv
from tests.csv_cases import (
    DELIMITED_HEADER,
    DELIMITED_ROWS,
    EMPTY_FILES,
    HEADER_ONLY_FILES,
    NOT_TEXT,
    UNTERMINATED_HEADER,
    delimited,
)

RECORDS = 300


def expected_records(path: Path, codec: str) -> tuple[list[list[str]], list[int]]:
    """The data records (header excluded) as ``csv.reader`` reads them, and the physical line
    where each one starts."""
    text = path.read_bytes().decode(codec).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[list[str]] = []
    lines: list[int] = []
    header_seen = False
    while True:
        start = reader.line_num + 1
        record = next(reader, None)
        if record is None:
            return records, lines
        if not record:
            continue
        if not header_seen:
            header_seen = True
            continue
        records.append(record)
        lines.append(start)


def read_all(
    path: Path,
    encoding: Encoding,
    *,
    chunk: int,
    block_bytes: int,
    offset: int,
    line: int,
    record: int = 0,
    delimiter: str = ",",
) -> list[RecordChunk]:
    """Every chunk from ``offset`` to the end of the file."""
    chunks: list[RecordChunk] = []
    with open(path, "rb") as f:
        reader = RecordReader(
            f,
            encoding=encoding,
            delimiter=delimiter,
            offset=offset,
            line=line,
            record=record,
            block_bytes=block_bytes,
        )
        while True:
            chunks.append(reader.read(chunk))
            if chunks[-1].at_end:
                return chunks
            assert len(chunks) <= RECORDS + 2, "the reader never reached the end"


def records_of(chunks: list[RecordChunk]) -> list[list[str]]:
    return [r for c in chunks for r in c.records]


def lines_of(chunks: list[RecordChunk]) -> list[int]:
    return [n for c in chunks for n in c.lines]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Nasty response files: quotes, commas, CRLF and LF in fields, accents, CJK, emoji."""
    root = tmp_path_factory.mktemp("csvio")
    made = {
        "crlf": root / "crlf.csv",
        "lf-bom": root / "lf-bom.csv",
    }
    write_responses_csv(made["crlf"], RECORDS, seed=11)
    write_responses_csv(made["lf-bom"], RECORDS, seed=12, bom=True, lineterminator="\n")
    return made


@pytest.mark.parametrize("variant", ["crlf", "lf-bom"])
@pytest.mark.parametrize("block_bytes", [16, 64, 1 << 20])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunks_hold_exactly_the_records_of_csv_reader(
    files: dict[str, Path], variant: str, block_bytes: int, chunk: int
) -> None:
    path = files[variant]
    encoding = resolve_encoding(path, "utf-8")
    header = read_header(path, encoding=encoding)
    assert header.columns == HEADER
    expected, expected_lines = expected_records(path, "utf-8")
    assert len(expected) == RECORDS

    chunks = read_all(
        path,
        encoding,
        chunk=chunk,
        block_bytes=block_bytes,
        offset=header.offset,
        line=header.line,
    )

    assert records_of(chunks) == expected
    assert lines_of(chunks) == expected_lines
    assert all(len(c.records) <= chunk for c in chunks)
    assert all(len(c.records) == len(c.lines) for c in chunks)
    assert [c.at_end for c in chunks] == [False] * (len(chunks) - 1) + [True]
    first = 1
    for c in chunks:
        assert c.first_record == first
        first += len(c.records)
    assert chunks[-1].next_offset == path.stat().st_size


@pytest.mark.parametrize("block_bytes", [16, 64])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_a_fresh_reader_at_any_chunk_boundary_reads_exactly_the_rest(
    files: dict[str, Path], block_bytes: int, chunk: int
) -> None:
    path = files["crlf"]
    encoding = resolve_encoding(path, "utf-8")
    header = read_header(path, encoding=encoding)
    expected, expected_lines = expected_records(path, "utf-8")
    chunks = read_all(
        path,
        encoding,
        chunk=chunk,
        block_bytes=block_bytes,
        offset=header.offset,
        line=header.line,
    )
    done = 0
    for boundary in chunks:
        done += len(boundary.records)
        rest = read_all(
            path,
            encoding,
            chunk=chunk,
            block_bytes=block_bytes,
            offset=boundary.next_offset,
            line=boundary.next_line,
            record=done,
        )
        assert records_of(rest) == expected[done:], f"resuming after record {done}"
        assert lines_of(rest) == expected_lines[done:], f"line numbers after record {done}"
        assert rest[0].first_record == done + 1


def test_a_utf8_bom_is_not_part_of_the_first_column(files: dict[str, Path]) -> None:
    path = files["lf-bom"]
    assert path.read_bytes().startswith(codecs.BOM_UTF8)
    encoding = resolve_encoding(path, "utf-8")
    assert (encoding.codec, encoding.bom_bytes) == ("utf-8", 3)
    header = read_header(path, encoding=encoding)
    assert header.columns == HEADER
    assert header.line == 2


def test_utf8_without_bom_starts_at_byte_zero(files: dict[str, Path]) -> None:
    encoding = resolve_encoding(files["crlf"], "UTF8")
    assert (encoding.name, encoding.codec, encoding.bom_bytes) == ("utf-8", "utf-8", 0)


ROWS_WITH_EVERYTHING = [
    ["1", "Très bien, merci 🎉", "Österreich"],
    ["2", 'He said "wow"\r\ntwice', "日本"],
    ["3", "line one\nline two", "Россия"],
    ["4", "", "emoji 🎉🚀👍 𝄞"],
]


def write_text_csv(
    path: Path, rows: list[list[str]], *, encoding: str, prefix: bytes = b""
) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "comment", "country"])
    writer.writerows(rows)
    path.write_bytes(prefix + out.getvalue().encode(encoding))


@pytest.mark.parametrize(
    ("write_as", "prefix", "codec", "bom"),
    [
        ("utf-16", b"", "utf-16-le", 2),  # Python writes the native order (LE) with a BOM
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16-be", 2),
    ],
)
@pytest.mark.parametrize("block_bytes", [7, 16, 1 << 20])
def test_utf16_with_a_bom_reads_and_resumes(
    tmp_path: Path, write_as: str, prefix: bytes, codec: str, bom: int, block_bytes: int
) -> None:
    path = tmp_path / "utf16.csv"
    write_text_csv(path, ROWS_WITH_EVERYTHING, encoding=write_as, prefix=prefix)
    encoding = resolve_encoding(path, "utf-16")
    assert (encoding.name, encoding.codec, encoding.bom_bytes) == ("utf-16", codec, bom)
    header = read_header(path, encoding=encoding)
    assert header.columns == ["id", "comment", "country"]

    chunks = read_all(
        path, encoding, chunk=1, block_bytes=block_bytes, offset=header.offset, line=header.line
    )
    assert records_of(chunks) == ROWS_WITH_EVERYTHING
    assert lines_of(chunks) == [2, 3, 5, 7]
    assert chunks[-1].next_offset == path.stat().st_size
    for done, boundary in enumerate(chunks[:-1], start=1):
        rest = read_all(
            path,
            encoding,
            chunk=2,
            block_bytes=block_bytes,
            offset=boundary.next_offset,
            line=boundary.next_line,
            record=done,
        )
        assert records_of(rest) == ROWS_WITH_EVERYTHING[done:]


def test_utf16_without_a_bom_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nobom.csv"
    write_text_csv(path, ROWS_WITH_EVERYTHING, encoding="utf-16-le")
    with pytest.raises(CsvProblem) as caught:
        resolve_encoding(path, "utf-16")
    assert caught.value.code == "bad_encoding"
    assert caught.value.line == 1
    assert "BOM" in str(caught.value)


@pytest.mark.parametrize("name", ["latin-1", "ISO-8859-1", "latin1"])
def test_latin1(tmp_path: Path, name: str) -> None:
    rows = [["1", "café, crème", "Österreich"], ["2", 'ß "quoted"\nÿ', "España"]]
    path = tmp_path / "latin1.csv"
    write_text_csv(path, rows, encoding="latin-1")
    encoding = resolve_encoding(path, name)
    assert (encoding.name, encoding.codec, encoding.bom_bytes) == ("latin-1", "latin-1", 0)
    header = read_header(path, encoding=encoding)
    chunks = read_all(path, encoding, chunk=1, block_bytes=5, offset=header.offset, line=2)
    assert records_of(chunks) == rows
    assert chunks[-1].next_offset == path.stat().st_size


@pytest.mark.parametrize("name", ["cp1252", "shift_jis", "no-such-encoding"])
def test_an_unsupported_or_unknown_encoding_is_a_csv_problem(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    with pytest.raises(CsvProblem) as caught:
        resolve_encoding(path, name)
    assert caught.value.code == "bad_encoding"
    assert "utf-8" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "code", "line", "mentions"),
    [
        pytest.param(b"", "empty_file", 1, "header", id="empty"),
        pytest.param(b"\r\n\n   \r\n\n", "empty_file", 1, "header", id="blank-lines-only"),
        pytest.param(b"id,name,id\r\n1,a,2\r\n", "bad_header", 1, "'id'", id="duplicate"),
        pytest.param(b"\r\n\nid,name,id\n1,a,2\n", "bad_header", 3, "'id'", id="duplicate-late"),
        pytest.param(b"id,,name\r\n1,2,3\r\n", "bad_header", 1, "column 2", id="empty-name"),
        pytest.param(b"id,name,  \r\n1,2,3\r\n", "bad_header", 1, "column 3", id="blank-name"),
    ],
)
def test_header_problems(
    tmp_path: Path, content: bytes, code: str, line: int, mentions: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CsvProblem) as caught:
        read_header(path, encoding=resolve_encoding(path, "utf-8"))
    assert caught.value.code == code
    assert caught.value.line == line
    assert mentions in str(caught.value)


def test_a_duplicate_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_bytes(b"a,b,c,b\r\n")
    with pytest.raises(CsvProblem) as caught:
        read_header(path, encoding=resolve_encoding(path, "utf-8"))
    assert caught.value.column == "b"


def test_too_many_columns(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes(b"a,b,c\r\n1,2,3\r\n")
    encoding = resolve_encoding(path, "utf-8")
    assert read_header(path, encoding=encoding, max_columns=3).columns == ["a", "b", "c"]
    with pytest.raises(CsvProblem) as caught:
        read_header(path, encoding=encoding, max_columns=2)
    assert caught.value.code == "bad_header"
    assert caught.value.line == 1
    assert "3 columns" in str(caught.value)


UNTERMINATED = b'a,b\r\n1,2\r\n3,"never closed\r\nmore\r\nand more\r\n'


def read_data(path: Path, *, block_bytes: int = 1 << 20) -> list[list[str]]:
    encoding = resolve_encoding(path, "utf-8")
    header = read_header(path, encoding=encoding)
    chunks = read_all(
        path, encoding, chunk=10, block_bytes=block_bytes, offset=header.offset, line=header.line
    )
    return records_of(chunks)


@pytest.mark.parametrize("block_bytes", [4, 1 << 20])
def test_an_unterminated_quote_is_a_csv_problem(tmp_path: Path, block_bytes: int) -> None:
    path = tmp_path / "open.csv"
    path.write_bytes(UNTERMINATED)
    with pytest.raises(CsvProblem) as caught:
        read_data(path, block_bytes=block_bytes)
    problem = caught.value
    assert problem.code == "bad_csv"
    assert isinstance(problem.line, int)
    assert problem.line >= 3
    assert problem.record == 2
    assert "quote" in str(problem)
    assert str(problem).startswith(f"line {problem.line}, record 2: ")


def test_an_unterminated_quote_names_the_line_where_its_record_starts(tmp_path: Path) -> None:
    """The quote opens on line 3; the file has 5 lines. CsvProblem's own docstring promises
    the line where the record starts, which is where the user must look."""
    path = tmp_path / "open.csv"
    path.write_bytes(UNTERMINATED)
    with pytest.raises(CsvProblem) as caught:
        read_data(path)
    assert caught.value.line == 3


def test_a_stray_quote_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "stray.csv"
    path.write_bytes(b'a,b\r\n1,2\r\n\r\n3,"x"y\r\n4,5\r\n')
    with pytest.raises(CsvProblem) as caught:
        read_data(path)
    assert caught.value.line == 4
    assert caught.value.record == 2
    assert "quote" in str(caught.value)


# Multibyte characters before the bad byte, and a line end right after it, so that some
# block sizes cut a character in two just before the bad byte.
INVALID_UTF8 = 'id,text\n1,€€€\n2,é€ü\r\n3,"a\nb€"\n'.encode() + b"4,\xe2\x82\xac\xff\n5,ok\n"


@pytest.mark.parametrize("block_bytes", range(1, 33))
def test_invalid_utf8_names_its_line_and_bytes(tmp_path: Path, block_bytes: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(INVALID_UTF8)
    encoding = resolve_encoding(path, "utf-8")
    with pytest.raises(CsvProblem) as caught:
        read_all(path, encoding, chunk=1, block_bytes=block_bytes, offset=0, line=1)
    problem = caught.value
    assert problem.code == "bad_encoding"
    assert problem.line == 6
    assert "bytes ff are not valid utf-8" in str(problem)


def test_invalid_utf8_in_the_header_block_is_found_by_read_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,text\r\n1,ok\r\n2,caf\xe9\r\n")  # latin-1 é in a "utf-8" file
    with pytest.raises(CsvProblem) as caught:
        read_data(path)
    assert caught.value.code == "bad_encoding"
    assert caught.value.line == 3


@pytest.mark.parametrize("block_bytes", [2, 64, 1 << 20])
def test_invalid_utf16_names_its_line(tmp_path: Path, block_bytes: int) -> None:
    """Serbian Њ (U+040A) is the bytes 0a 04 in UTF-16-LE: a 0x0a byte that is no line end."""
    path = tmp_path / "bad16.csv"
    good = "name,city\r\nЊегош,Њујорк\r\n".encode("utf-16")
    path.write_bytes(good + b"\x00\xdc" + "x\r\n".encode("utf-16-le"))  # a lone low surrogate
    encoding = resolve_encoding(path, "utf-16")
    with pytest.raises(CsvProblem) as caught:
        read_all(path, encoding, chunk=1, block_bytes=block_bytes, offset=2, line=1)
    assert caught.value.code == "bad_encoding"
    assert caught.value.line == 3


@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])
@pytest.mark.parametrize("block_bytes", [1, 3, 16, 1 << 20])
def test_line_breaks_inside_quoted_fields_round_trip(
    tmp_path: Path, lineterminator: str, block_bytes: int
) -> None:
    rows = [
        ["crlf\r\ninside", "lf\ninside", "both\r\nand\nmixed"],
        ["\r\n", "\n", "ends with\r\n"],
        ["cr\ralone", '"quoted"\r\nthen "more"', "  spaced, with comma  "],
        ["", "", ""],
        ["plain", "é\n日本", "🎉\r\n🎉"],
    ]
    out = io.StringIO(newline="")
    # QUOTE_MINIMAL leaves a lone CR unquoted when records end with LF: quote every field.
    writer = csv.writer(out, lineterminator=lineterminator, quoting=csv.QUOTE_ALL)
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    path = tmp_path / "breaks.csv"
    path.write_bytes(out.getvalue().encode())
    encoding = resolve_encoding(path, "utf-8")
    header = read_header(path, encoding=encoding)
    for chunk in (1, 2, 100):
        chunks = read_all(
            path, encoding, chunk=chunk, block_bytes=block_bytes, offset=header.offset, line=2
        )
        assert records_of(chunks) == rows
        assert lines_of(chunks) == expected_records(path, "utf-8")[1]


def test_blank_lines_between_records_are_skipped_and_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "blanks.csv"
    path.write_bytes(b"a,b\r\n\r\n1,2\r\n   \r\n\r\n3,4\n\n")
    encoding = resolve_encoding(path, "utf-8")
    header = read_header(path, encoding=encoding)
    chunks = read_all(
        path, encoding, chunk=1, block_bytes=4, offset=header.offset, line=header.line
    )
    assert records_of(chunks) == [["1", "2"], ["3", "4"]]
    assert lines_of(chunks) == [3, 6]
    assert chunks[-1].next_offset == path.stat().st_size


# --- Before reading: text at all, and which delimiter --------------------------------------

# What check_text names each file of NOT_TEXT, and the line it names.
NOT_TEXT_SAYS = {
    "png": ("a PNG image", 1),
    "jpeg": ("a JPEG image", 1),
    "zip": ("a ZIP archive", 1),
    "gzip": ("a gzip archive", 1),
    "pdf": ("a PDF document", 1),
    "xls": ("an old Excel or Word document", 1),
    "random": ("NUL bytes", 1),
    "nul-bytes": ("NUL bytes", 3),
    "utf-16-undeclared": ("encoding=utf-16", 1),
}


@pytest.mark.parametrize("case", NOT_TEXT)
def test_a_file_that_is_not_text_is_named_before_it_is_read(tmp_path: Path, case: str) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(NOT_TEXT[case])
    what, line = NOT_TEXT_SAYS[case]
    with pytest.raises(CsvProblem) as caught:
        check_text(path, resolve_encoding(path, "utf-8"))
    assert caught.value.code == "not_text"
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert what in str(caught.value)


def test_utf16_declared_is_text_for_all_its_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes(NOT_TEXT["utf-16-undeclared"])
    check_text(path, resolve_encoding(path, "utf-16"))  # no CsvProblem


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"], ids=["comma", "semi", "tab", "pipe"])
def test_the_delimiter_is_sniffed_and_the_records_read_with_it(
    tmp_path: Path, delimiter: str
) -> None:
    path = tmp_path / "delimited.csv"
    path.write_bytes(delimited(delimiter))
    encoding = resolve_encoding(path, "utf-8")
    assert sniff_delimiter(path, encoding) == delimiter
    header = read_header(path, encoding=encoding, delimiter=delimiter)
    assert header.columns == DELIMITED_HEADER
    chunks = read_all(
        path,
        encoding,
        chunk=10,
        block_bytes=1 << 20,
        offset=header.offset,
        line=header.line,
        delimiter=delimiter,
    )
    assert records_of(chunks) == DELIMITED_ROWS


def test_a_single_column_is_sniffed_as_comma_separated(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_bytes(b"name\r\nAnn; Bob\r\nCy|Di\r\n")
    assert sniff_delimiter(path, resolve_encoding(path, "utf-8")) == ","


# --- Empty files, headers alone ------------------------------------------------------------


@pytest.mark.parametrize("content", EMPTY_FILES.values(), ids=EMPTY_FILES)
def test_an_empty_or_blank_file_has_no_header(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(CsvProblem) as caught:
        read_header(path, encoding=resolve_encoding(path, "utf-8"))
    assert (caught.value.code, caught.value.line) == ("empty_file", 1)
    assert "empty" in str(caught.value)


@pytest.mark.parametrize("content", HEADER_ONLY_FILES.values(), ids=HEADER_ONLY_FILES)
def test_a_header_only_file_has_its_columns_and_no_record(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(content)
    encoding = resolve_encoding(path, "utf-8")
    header = read_header(path, encoding=encoding)
    assert header.columns == ["a", "b", "c"]
    chunks = read_all(
        path, encoding, chunk=10, block_bytes=1 << 20, offset=header.offset, line=header.line
    )
    assert records_of(chunks) == []
    assert chunks[-1].at_end
    assert chunks[-1].next_offset == path.stat().st_size


def test_an_unterminated_quote_in_the_header_names_line_1(tmp_path: Path) -> None:
    path = tmp_path / "open.csv"
    path.write_bytes(UNTERMINATED_HEADER)
    with pytest.raises(CsvProblem) as caught:
        read_header(path, encoding=resolve_encoding(path, "utf-8"))
    assert caught.value.line == 1
    assert "never closed" in str(caught.value)
