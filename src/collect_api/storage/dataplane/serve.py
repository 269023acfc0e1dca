"""The worker process: ``python -m collect_api.storage.dataplane.serve SOCKET FLAG PARENT``
(the socket's and the interrupt word's file descriptors, and the server's pid).

It answers requests (``process`` describes the protocol) until its socket closes. Sessions
(an upload being imported, an export being written) live here between requests; each has
its own connection to the database, opened on first use and closed with the session.
"""

import ctypes
import gc
import io
import mmap
import os
import pickle
import signal
import struct
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from collect_api.csvio import CsvProblem
from collect_api.storage.dataplane.base import Interrupted
from collect_api.storage.dataplane.sessions import OPERATIONS, Sessions

_WORD = struct.Struct("q")
SWITCH_INTERVAL_S = 0.0005
# How much lower a worker's priority is than its server's (nice(2) steps; 19 is the lowest).
NICENESS = 5
_PR_SET_PDEATHSIG = 1


def serve(conn: Connection, flag: mmap.mmap) -> None:
    sessions = Sessions()
    try:
        while True:
            try:
                request = conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                number, op, kwargs = _PlainValues(io.BytesIO(request)).load()
            except pickle.UnpicklingError as exc:
                conn.send(("error", "UnpicklingError", str(exc), {}))
                continue

            def interrupted(number: int = number) -> bool:
                return bool(_WORD.unpack_from(flag, 0)[0] == number)

            reply: tuple[Any, ...]
            try:
                value = OPERATIONS[op](sessions, interrupted=interrupted, **kwargs)
                reply = ("ok", value)
            except Interrupted:
                sessions.abandon(kwargs.get("session"))
                reply = ("interrupted",)
            except Exception as exc:
                reply = ("error", type(exc).__name__, str(exc), _details(exc))
                try:
                    sessions.abandon(kwargs.get("session"))
                except Exception as also:  # the transaction could not even be rolled back
                    reply = ("error", type(also).__name__, f"{exc}; then: {also}", _details(also))
            try:
                conn.send(reply)
            except OSError:
                return
    finally:
        sessions.close_all()


class _PlainValues(pickle.Unpickler):
    """Requests carry plain values only (str, numbers, lists, dicts, tuples): an object of
    another class would import its module here, the server's libraries with it (a
    SQLAlchemy ``quoted_name`` once cost a worker a sixth of a second and 15 MB)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"a request to a data-plane worker carries a {module}.{name}: only plain values "
            "(str, numbers, lists, dicts, tuples) may cross"
        )


def _details(exc: Exception) -> dict[str, Any]:
    """What the server needs to raise the error again: the fields of the errors of ours
    that have them (``CsvProblem.details``), else where it happened."""
    if isinstance(exc, CsvProblem):
        return exc.details
    return {"traceback": "".join(traceback.format_exception(exc, limit=8))}


def _die_with(parent: int) -> None:
    """End when the server process ends, even in the middle of a request (Linux): a
    transaction of a killed worker is rolled back by SQLite, as after any crash."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the request above was made
        os._exit(1)


def _return_memory() -> None:
    """Arrow's memory in jemalloc, which gives freed pages back to the system soon: with
    mimalloc, pyarrow's default here, a worker kept about 30 MB more of the chunks it had
    read and written (``bench/memory.py``)."""
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without it
        pa.set_memory_pool(pa.system_memory_pool())


def main() -> None:
    _return_memory()
    conn = Connection(int(sys.argv[1]))
    flag = mmap.mmap(int(sys.argv[2]), _WORD.size)
    _die_with(int(sys.argv[3]))
    # Below the server in the scheduler's eyes: when the cores are busy, a request's
    # answer and a job's next step come before this worker's chunk, which takes the cores
    # whenever they are free.
    os.nice(NICENESS)
    # The modules loaded by now live as long as the worker: kept out of the collector's
    # full passes, which would walk them between two statements of a chunk.
    gc.freeze()
    # A driver call gives the GIL up; taking it back waits for the thread reading ahead to
    # give it up in turn, by default after 5 ms of its Python. With 0.5 ms, short driver
    # calls (``sqlite.INGEST_ROWS``) cost no more than long ones.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    serve(conn, flag)


if __name__ == "__main__":
    main()
