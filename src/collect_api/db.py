"""Database engines and transactions.

Two engines share one database. ``writer`` opens every transaction with ``BEGIN IMMEDIATE``:
it takes SQLite's write lock up front, so a transaction that reads a job's state and then
changes it waits on the busy timeout instead of failing with "database is locked" when
another writer committed in between. ``reader`` opens deferred transactions, which under WAL
never wait for a writer and see one consistent snapshot.

The SQLite settings, each applied to every connection:

- ``journal_mode=WAL``: readers (API requests, SSE polling) never block the job writing
  its chunk, and a crash leaves every committed transaction intact.
- ``synchronous=NORMAL``: in WAL mode a commit is durable against a process crash
  (``kill -9``); only an operating-system crash or power loss may lose the last commits,
  never corrupt the file. Checkpoints are committed with the rows they cover, so a lost
  commit just means the job repeats that chunk.
- ``busy_timeout``: a writer waits for another writer's short transaction rather than
  failing.
- ``foreign_keys=ON``: history rows cannot outlive their job.
"""

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 60_000
_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")


def collect_number(text: object) -> float | None:
    """SQL ``collect_number(cell)``: the number a text cell holds, or NULL if it holds none.
    Only plain decimal notation counts (not ``inf``, ``nan`` or ``1_000``)."""
    if isinstance(text, str) and _NUMBER.fullmatch(text):
        return float(text)
    return None


def _sqlite_engine(url: str, *, begin: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=8, max_overflow=16)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions open.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()
        dbapi_connection.create_function("collect_number", 1, collect_number, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The writer and reader engines of one database."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if not parsed.drivername.startswith("sqlite"):
            raise ValueError(
                f"unsupported database URL {url!r}: only sqlite+aiosqlite is supported"
            )
        self.reserve: Path | None = None
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.reserve = Path(parsed.database).with_name(".collect-disk-reserve")
        self.url = url
        self.writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
        self.reader = _sqlite_engine(url, begin="BEGIN")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on exit, rolled back on any exception."""
        async with self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self.reader.begin() as conn:
            yield conn

    def keep_reserve(self, size: int) -> None:
        """Hold ``size`` bytes of disk beside the database, to give back when the disk is
        full: then a job's end and the rollback of its writes still have room. Blocking."""
        if self.reserve is None or size <= 0:
            return
        try:
            if self.reserve.exists() and self.reserve.stat().st_size >= size:
                return
            with open(self.reserve, "wb") as f:
                f.truncate(0)
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError:  # no room for it now; try again later
            self.reserve.unlink(missing_ok=True)

    def give_back_reserve(self) -> bool:
        """Free the reserve; True if there was one."""
        if self.reserve is None or not self.reserve.exists():
            return False
        self.reserve.unlink(missing_ok=True)
        return True

    async def dispose(self) -> None:
        await self.writer.dispose()
        await self.reader.dispose()
