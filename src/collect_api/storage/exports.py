"""Export files: CSV (RFC 4180, UTF-8, CRLF) written chunk by chunk at a known byte offset.

A chunk is appended at the checkpoint's byte offset after truncating whatever a stopped run
wrote past it, so a resumed export produces the same bytes as an uninterrupted one. Gzip
output is a series of gzip members, one per chunk (a valid gzip file, RFC 1952 §2.2), each
compressed with a fixed level and timestamp, so it is byte-identical too.
"""

import contextlib
import csv
import ctypes
import gzip
import io
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

GZIP_LEVEL = 6
_WITHOUT_KEY = operator.itemgetter(slice(1, None))
# ``sync_file_range(2)`` (Linux): start writing a range of a file to disk without waiting.
_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = None
with contextlib.suppress(OSError, AttributeError):
    _sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def export_path(exports_dir: Path, job_id: str, *, gzipped: bool) -> Path:
    return exports_dir / f"{job_id}.csv{'.gz' if gzipped else ''}"


def encode_chunk(
    rows: Iterable[Sequence[object]], *, header: list[str] | None, gzipped: bool
) -> bytes:
    """CSV bytes for ``rows`` (each prefixed by its row key, which is dropped)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(map(_WITHOUT_KEY, rows))
    data = out.getvalue().encode("utf-8")
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if gzipped and data else data


def write_at(
    path: Path,
    offset: int,
    *pieces: bytes | memoryview,
    sync: bool = False,
    write_behind: bool = False,
) -> int:
    """Write ``pieces`` one after another at ``offset``, dropping anything past it; the new
    size. ``sync``: on disk before it returns. ``write_behind``: on its way to disk, not
    waited for (where the system can), so that a later ``sync`` has little left to do: the
    last sync of a 100 MB export took 40-50 ms here when nothing had been written before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = offset
    with open(path, "r+b" if path.exists() else "w+b") as f:
        f.truncate(offset)
        f.seek(offset)
        for piece in pieces:
            f.write(piece)
            size += len(piece)
        f.flush()
        if sync:
            os.fsync(f.fileno())
        elif write_behind and _sync_file_range is not None and size > offset:
            _sync_file_range(f.fileno(), offset, size - offset, _SYNC_FILE_RANGE_WRITE)
        return size


def read_at(path: Path, start: int, end: int) -> bytes:
    """The bytes of ``path`` from ``start`` to ``end``."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)
