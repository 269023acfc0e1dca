"""Streaming CSV reading and writing with byte offsets.

Imports nothing of Collect's own, nor FastAPI nor the database, so it is tested synchronously.
"""

from collect_api.csvio.reader import (
    CsvProblem,
    Encoding,
    Header,
    RecordChunk,
    RecordReader,
    read_header,
    reject,
    resolve_encoding,
)
from collect_api.csvio.sniff import DELIMITERS, check_text, sniff_delimiter

__all__ = [
    "DELIMITERS",
    "CsvProblem",
    "Encoding",
    "Header",
    "RecordChunk",
    "RecordReader",
    "check_text",
    "read_header",
    "reject",
    "resolve_encoding",
    "sniff_delimiter",
]
