"""Before reading a CSV: is it text at all, and which delimiter does it use?"""

import csv
import io
from pathlib import Path

from collect_api.csvio.reader import CsvProblem, Encoding

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
# File signatures of things people upload by mistake.
_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (or an .xlsx workbook)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel or Word document",
}


def _head(path: Path, encoding: Encoding) -> bytes:
    with open(path, "rb") as f:
        f.seek(encoding.bom_bytes)
        return f.read(SNIFF_BYTES)


def check_text(path: Path, encoding: Encoding) -> None:
    """CsvProblem if the file is plainly not text: a known binary format, or NUL bytes."""
    head = _head(path, encoding)
    for signature, what in _SIGNATURES.items():
        if head.startswith(signature):
            raise CsvProblem(
                f"the file is {what}, not CSV text; export it as CSV first",
                line=1,
                code="not_text",
            )
    if encoding.codec.startswith("utf-16"):
        return
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise CsvProblem(
            "the file holds NUL bytes, so it is binary, not CSV text (or it is UTF-16: "
            "then pass encoding=utf-16)",
            line=line,
            code="not_text",
        )


def sniff_delimiter(path: Path, encoding: Encoding) -> str:
    """The delimiter among , ; tab | that splits the first lines into the most columns,
    the same number on every line; a comma when none does better."""
    head = _head(path, encoding)
    text = head.decode(encoding.codec, errors="ignore")
    if len(head) == SNIFF_BYTES:  # the last line may be cut short
        text = text[: text.rfind("\n") + 1] or text
    best, best_width = ",", 1
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
        except csv.Error:
            continue
        rows = rows[:50]
        if not rows:
            continue
        width = len(rows[0])
        if width > best_width and all(len(r) == width for r in rows):
            best, best_width = delimiter, width
    return best
