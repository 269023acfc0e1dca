"""The data plane on SQLite, through ``adbc-driver-sqlite``: Arrow batches in and out.

Runs only in a worker process (``process``): the driver bundles its own SQLite, which must
not share a process with the server's. The connection is in autocommit mode and every
transaction is opened here with ``BEGIN IMMEDIATE``, asked for again every few milliseconds
so that an interrupt is seen while it waits for another writer.
"""

import time
from collections.abc import Callable

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa

from collect_api.storage.dataplane.adbc import AdbcStore
from collect_api.storage.dataplane.base import Interrupted

BUSY_TIMEOUT_S = 60.0
# Rows per driver call: an interrupt (a pause) waits for at most one such call. 16,384 rows
# took 14-24 ms here, 4,096 rows take 4-6 ms; the worker's switch interval
# (``serve.SWITCH_INTERVAL_S``) keeps the shorter calls from costing more in all.
INGEST_ROWS = 4_096
# Rows per record batch of a query's result (the driver's default, 1024, makes many small
# batches, each with its own cost in every kernel that reads them).
QUERY_BATCH_ROWS = 16_384


def _locked(exc: Exception) -> bool:
    return "locked" in str(exc) or "busy" in str(exc).lower()


class SqliteStore(AdbcStore):
    """One connection to the database file, for one worker."""

    def __init__(self, path: str) -> None:
        super().__init__(path, adbc_sqlite.connect(path, autocommit=True))
        self._cursor.execute("PRAGMA busy_timeout=5")
        self._cursor.adbc_statement.set_options(
            **{"adbc.sqlite.query.batch_rows": str(QUERY_BATCH_ROWS)}
        )
        # A connection's first statement reads the WAL's index, which is busy for a moment
        # while another connection checkpoints or recovers it: asked again, as for BEGIN.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        for pragma in (
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA secure_delete=FAST",
            # The server's supervisor checkpoints the WAL (``Database.checkpoint``), not a
            # chunk's commit.
            "PRAGMA wal_autocheckpoint=0",
        ):
            while True:
                try:
                    self._cursor.execute(pragma)
                    break
                except Exception as exc:
                    if not _locked(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(0.001)

    def begin(self, interrupted: Callable[[], bool]) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            if interrupted():
                raise Interrupted
            try:
                self._cursor.execute("BEGIN IMMEDIATE")
                self.in_transaction = True
                return
            except Exception as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.001)

    def append(self, table_name: str, table: pa.Table, interrupted: Callable[[], bool]) -> None:
        """Append ``table``'s rows to ``table_name`` (columns by name), a batch per call."""
        for start in range(0, table.num_rows, INGEST_ROWS):
            if interrupted():
                raise Interrupted
            self._cursor.adbc_ingest(table_name, table.slice(start, INGEST_ROWS), mode="append")
