"""The server's side of the data plane: ``DataPlane`` opens sessions in worker processes
(``process``), and its feeds make the calls of one session."""

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url

from collect_api.db import NOTIFY_STATEMENT, WRITE_LOCK_STATEMENT, asyncpg_dsn, backend_of
from collect_api.storage.dataplane.base import ChunkBudget
from collect_api.storage.dataplane.process import (
    RemoteError,
    Worker,
    WorkerDied,
    WorkerInterrupted,
    WorkerPool,
)

__all__ = [
    "ChunkBudget",
    "DataPlane",
    "ExportFeed",
    "ImportFeed",
    "RemoteError",
    "WorkerDied",
    "WorkerInterrupted",
]

_sessions = itertools.count(1)


class ImportFeed:
    """An upload being ingested, in the worker that holds it."""

    def __init__(self, worker: Worker, session: str) -> None:
        self._worker = worker
        self._session = session

    async def stage(self, **kwargs: Any) -> dict[str, Any]:
        """Read and write the next chunk; its transaction stays open for ``commit``."""
        result: dict[str, Any] = await self._worker.call(
            "import_stage", session=self._session, **kwargs
        )
        return result

    async def stage_received(self, *, upto: int, **kwargs: Any) -> dict[str, Any] | None:
        """As ``stage``, in an upload still arriving, of which ``upto`` bytes are written:
        None if no whole record can be read there yet."""
        result: dict[str, Any] | None = await self._worker.call(
            "import_stage", session=self._session, upto=upto, **kwargs
        )
        return result

    async def commit(self, statement: str, params: list[Any]) -> bool:
        """Commit the chunk with ``statement`` (the checkpoint); False if it applied to no
        row, and then nothing was committed."""
        return bool(
            await self._worker.call(
                "commit", session=self._session, statement=statement, params=params
            )
        )

    async def rollback(self) -> None:
        await self._worker.call("rollback", session=self._session)

    def interrupt(self) -> None:
        self._worker.interrupt()


class ExportFeed:
    """A dataset table being written to an export file, by the worker that holds it."""

    def __init__(self, worker: Worker, session: str) -> None:
        self._worker = worker
        self._session = session

    async def chunk(
        self, *, after: int, upto: int, limit: int, fixed: bool, offset: int
    ) -> dict[str, Any]:
        """Write the rows of the next row keys after ``after`` at byte ``offset``: ``limit``
        keys if ``fixed``, else as many as take about a quarter second, at most ``limit``;
        ``last_row`` in the answer is the last key covered."""
        result: dict[str, Any] = await self._worker.call(
            "export_chunk",
            session=self._session,
            after=after,
            upto=upto,
            limit=limit,
            fixed=fixed,
            offset=offset,
        )
        return result

    async def commit(self, statement: str, params: list[Any]) -> bool:
        """Commit the checkpoint of what was written, ``statement``, in the worker; False if
        it applied to no row."""
        return bool(
            await self._worker.call(
                "export_commit", session=self._session, statement=statement, params=params
            )
        )

    def interrupt(self) -> None:
        self._worker.interrupt()


class DataPlane:
    """The server's handle on its workers, for one database."""

    def __init__(self, database_url: str, *, workers: int) -> None:
        url = make_url(database_url)
        # What a worker connects to: libpq's URI of a PostgreSQL database, else the path of
        # the SQLite file. On PostgreSQL a chunk takes the engine's write lock only for its
        # checkpoint statement (``storage.dataplane.postgres``), and its commit notifies every
        # server of the job's progress (``db.CHANNEL``).
        self.before_commit: list[str] = []
        if backend_of(database_url) == "postgresql":
            self.database = asyncpg_dsn(url)
            self.before_commit = [WRITE_LOCK_STATEMENT, NOTIFY_STATEMENT]
        else:
            self.database = os.path.abspath(url.database or "")
        self._pool = WorkerPool(idle=workers)
        self.workers = workers

    @property
    def has_room(self) -> bool:
        """Whether fewer sessions than ``workers`` are open: work that may wait (importing an
        upload while it arrives) is started only then."""
        return self._pool.busy < self.workers

    def warm(self) -> None:
        """Start a worker now if none waits, so that the next job need not wait for one."""
        self._pool.warm()

    @asynccontextmanager
    async def _session(self, op: str, **kwargs: Any) -> AsyncIterator[tuple[Worker, str]]:
        worker = self._pool.acquire()
        session = f"s{next(_sessions)}"
        healthy = True
        try:
            await worker.call(op, session=session, database=self.database, **kwargs)
            yield worker, session
        except WorkerDied:
            healthy = False
            raise
        finally:
            if worker.alive:
                try:
                    await worker.call("close", session=session)
                except (WorkerDied, RemoteError):
                    healthy = False
            await self._pool.release(worker, healthy=healthy)

    @asynccontextmanager
    async def import_session(self, **kwargs: Any) -> AsyncIterator[ImportFeed]:
        async with self._session("import_open", before_commit=self.before_commit, **kwargs) as (
            worker,
            session,
        ):
            yield ImportFeed(worker, session)

    @asynccontextmanager
    async def export_session(self, **kwargs: Any) -> AsyncIterator[ExportFeed]:
        async with self._session("export_open", before_commit=self.before_commit, **kwargs) as (
            worker,
            session,
        ):
            yield ExportFeed(worker, session)

    async def close(self) -> None:
        await self._pool.close()
