"""Bad CSV content, case by case: what ``test_bad_csv`` sends through the API, and the csvio
tests read without it, so that each file is written once.

Each table maps a case's id to its content and to what must be said of it.
"""

import csv
import io
import random
import zipfile

from tests.helpers import csv_bytes


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("responses.csv", "a,b\r\n1,2\r\n")
    return out.getvalue()


def random_binary() -> bytes:
    rng = random.Random(5)
    return bytes(rng.randrange(256) for _ in range(4096))


NOT_TEXT = {
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "zip": zip_archive(),
    "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(40)),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64),
    "random": random_binary(),
    "nul-bytes": b"a,b\n1,2\n3,\x00\x00\x00\n",
    "utf-16-undeclared": "a,b\r\n1,2\r\n".encode("utf-16"),
}

# No header at all: the file is empty once blank lines and a BOM are passed over.
EMPTY_FILES = {
    "empty": b"",
    "one-newline": b"\n",
    "crlfs": b"\r\n\r\n\r\n",
    "blank-and-spaces": b"\n\n\r\n  \n\t\n",
    "bom-only": b"\xef\xbb\xbf",
    "bom-and-newline": b"\xef\xbb\xbf\r\n",
}

# The header a,b,c and no record.
HEADER_ONLY_FILES = {
    "crlf": b"a,b,c\r\n",
    "blank-lines-then-header": b"\r\n\r\na,b,c",
    "bom-and-trailing-blank-lines": b"\xef\xbb\xbfa,b,c\n\n\n",
}

# (content, line, record, what the reason says) of the first record of another width.
RAGGED = {
    "fewer": (b"a,b\r\n1,2\r\n3\r\n4,5\r\n", 3, 2, "1 fields"),
    "more": (b"a,b\r\n1,2\r\n3,4\r\n5,6,7\r\n8,9\r\n", 4, 3, "3 fields"),
    "after-multiline-field": (b'a,b\r\n1,"x\r\ny\r\nz"\r\n\r\n3\r\n', 6, 2, "1 fields"),
    "far-in": (
        csv_bytes(["a", "b"], [[str(i), "v"] for i in range(450)]) + b"x,y,z\r\n1,2\r\n",
        452,
        451,
        "3 fields",
    ),
}

# A quote the header never closes; then (content, line, record) of the record whose quote
# is never closed.
UNTERMINATED_HEADER = b'a,"b\r\n1,2\r\n'
UNTERMINATED = {
    "in-a-row": (b'a,b\r\n1,2\r\n3,"never closed\r\n4,5\r\n6,7\r\n', 3, 2),
    "after-a-multiline-field": (b'a,b\r\n1,"two\r\nlines"\r\n3,"open\r\n4,5\r\n', 4, 2),
    "far-in": (
        csv_bytes(["a", "b"], [[str(i), "v"] for i in range(450)]) + b'x,"open\r\n1,2\r\n',
        452,
        451,
    ),
}

# (field, line) of a field over a limit of 1,000 bytes: in record 2 (column 'text') or in
# the header, as ``over_the_field_limit`` writes it.
FIELDS_OVER_THE_LIMIT = {
    "ascii": ("x" * 1001, 3),
    "multi-byte": ("é" * 501, 3),
    "in-the-header": ("x" * 1001, 1),
}


def over_the_field_limit(field_text: str, line: int) -> bytes:
    """``field_text`` as a column name (``line`` 1), or in column ``text`` of record 2 at
    line 3, after a field of exactly 1,000 bytes."""
    if line == 1:
        return csv_bytes(["id", field_text], [["1", "2"]])
    rows = [["1", "x" * 1000, "y"], ["2", field_text, "y"], ["3", "z", "y"]]
    return csv_bytes(["id", "text", "more"], rows)


DELIMITED_HEADER = ["id", "name", "note"]
DELIMITED_ROWS = [
    ["1", "Ann, Jr", "semi;colon"],
    ["2", "tab\there", "pipe|d"],
    ["3", 'say "hi"', ""],
    ["4", "line\nbreak", "é"],
]


def delimited(delimiter: str) -> bytes:
    """DELIMITED_HEADER and DELIMITED_ROWS written with ``delimiter``; the fields hold the
    other delimiters."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(DELIMITED_HEADER)
    writer.writerows(DELIMITED_ROWS)
    return out.getvalue().encode()
