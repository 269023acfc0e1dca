"""What a store does the same through either ADBC driver (``sqlite``, ``postgres``), in
the worker process only: the server must not load Arrow."""

from collections.abc import Sequence
from typing import Any

import pyarrow as pa


class AdbcStore:
    """A connection through an ADBC driver in autocommit mode, whose transactions the store
    opens itself (``begin``, per driver). What follows is the same on either driver."""

    def __init__(self, database: str, conn: Any) -> None:
        self.database = database
        self._conn = conn
        self._cursor = conn.cursor()
        # What runs before a checkpoint statement, in its transaction (``returning``).
        self.before_commit: list[str] = []
        self.in_transaction = False

    def returning(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` and the rows it returns, after what must precede a checkpoint."""
        for statement in self.before_commit:
            self._cursor.execute(statement)
        self._cursor.execute(sql, params)
        return list(self._cursor.fetchall())

    def query(self, sql: str, params: Sequence[Any]) -> pa.Table:
        self._cursor.execute(sql, params)
        return self._cursor.fetch_arrow_table()

    def column_names(self, table_name: str) -> list[str]:
        return list(self._conn.adbc_get_table_schema(table_name).names)

    def commit(self) -> None:
        self._cursor.execute("COMMIT")
        self.in_transaction = False

    def rollback(self) -> None:
        if not self.in_transaction:
            return
        self.in_transaction = False
        try:
            self._cursor.execute("ROLLBACK")
        except Exception as exc:
            # SQLite ends the transaction itself after some errors (a full disk, say).
            if "no transaction is active" not in str(exc):
                raise

    def close(self) -> None:
        self.rollback()
        self._cursor.close()
        self._conn.close()
