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
    resolve_encoding,
)

__all__ = [
    "CsvProblem",
    "Encoding",
    "Header",
    "RecordChunk",
    "RecordReader",
    "read_header",
    "resolve_encoding",
]
