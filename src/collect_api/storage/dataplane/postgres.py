"""The data plane on PostgreSQL, through ``adbc-driver-postgresql``: Arrow batches in by
``COPY … FROM STDIN`` (the driver's bulk ingest) and out as Arrow (the driver reads a
query's rows by ``COPY (query) TO STDOUT`` in its binary format).

The same interface as ``sqlite.SqliteStore``, for the same worker. The connection is in
autocommit mode and every transaction is opened here with ``BEGIN`` (``READ COMMITTED``).
A chunk's rows go into its job's own staging table without the engine's write lock: the
lock is taken only for the checkpoint statement (``before_commit``), and held until the
commit, so that revisions still increase in commit order while several chunks of several
jobs are written at once.
"""

from collections.abc import Callable

import adbc_driver_postgresql.dbapi as adbc_postgres
import pyarrow as pa

from collect_api.storage.dataplane.adbc import AdbcStore
from collect_api.storage.dataplane.base import Interrupted

# Rows per driver call (one ``COPY``): an interrupt (a pause) waits for at most one.
# Measured here (bench/postgres_servers.py, 1M records, two or three runs each, noisy): a
# pause through another server p99 184 ms with 16,384 rows, 61-104 ms with 4,096 but the
# import ~20% longer, 76-245 ms with 8,192 and the import as fast as with 16,384.
INGEST_ROWS = 8_192
# As long as the server's writers wait for the engine's write lock.
LOCK_TIMEOUT_MS = 60_000


class PostgresStore(AdbcStore):
    """One connection to the database, for one worker."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, adbc_postgres.connect(uri, autocommit=True))
        self._cursor.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        # ``before_commit``, set by the session: the engine's write lock, and the
        # notification of the chunk's progress that its commit sends (``db.NOTIFY_STATEMENT``).
        self._schemas: dict[str, pa.Schema] = {}

    def begin(self, interrupted: Callable[[], bool]) -> None:
        if interrupted():
            raise Interrupted
        self._cursor.execute("BEGIN")
        self.in_transaction = True

    def append(self, table_name: str, table: pa.Table, interrupted: Callable[[], bool]) -> None:
        """Append ``table``'s rows to ``table_name`` (columns by name), a ``COPY`` a slice.
        ``COPY``'s binary format takes each column in the table's own type (a 32-bit
        ``integer`` column refuses 64-bit values), so the batch is cast to it first."""
        table = table.cast(self._schema(table_name, table.column_names))
        for start in range(0, table.num_rows, INGEST_ROWS):
            if interrupted():
                raise Interrupted
            self._cursor.adbc_ingest(table_name, table.slice(start, INGEST_ROWS), mode="append")

    def _schema(self, table_name: str, columns: list[str]) -> pa.Schema:
        if table_name not in self._schemas:
            self._schemas[table_name] = self._conn.adbc_get_table_schema(table_name)
        schema = self._schemas[table_name]
        return pa.schema([schema.field(name) for name in columns])

    def reset(self) -> None:
        """Ready for another session: no transaction, no table's types remembered."""
        self.rollback()
        self._schemas.clear()
