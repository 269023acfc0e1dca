"""Files every server can read, with no disk shared between hosts.

On PostgreSQL, the file a job needs (its upload) and the file it makes (an export's result)
are kept in the database, as parts of at most ``PART_BYTES`` in ``file_part``. They are
written and read a part at a time, never whole in memory. A server keeps a copy in its data
dir only while it works on the file, and fetches one (``fetch``) when it has none: the
server that runs or resumes a job fetches its upload, and the server that answers a
download fetches the result. With SQLite the service runs on one host: the files stay in
the data dir and nothing is kept in the database (``enabled`` is False).

Invariants:

- An upload is saved whole before its job is queued (``save``), so whichever server claims
  the job finds it.
- An export's parts are added in the transaction that commits the chunk they hold
  (``add_part``): the parts in the database are exactly the bytes its checkpoint covers, and
  a resume on another server starts from them.
- A file's parts are deleted with the job's other leftovers, by its kind's housekeeping.
"""

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import BigInteger, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from collect_api.db import Database, shielded

PART_BYTES = 4 * 1024**2
# How many parts a read fetches at a time.
READ_PARTS = 4


class FilePart(SQLModel, table=True):
    """A part of a file kept in the database: ``data`` is its bytes from ``start``."""

    __tablename__ = "file_part"

    name: str = Field(primary_key=True)
    start: int = Field(primary_key=True, sa_type=BigInteger)
    data: bytes
    saved_at: float


FILE_PART = FilePart.__table__  # type: ignore[attr-defined]


def upload_name(job_id: str) -> str:
    return f"upload/{job_id}"


def result_name(job_id: str) -> str:
    return f"result/{job_id}"


def job_of_name(name: str) -> str:
    return name.partition("/")[2]


class SharedFiles:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.enabled = db.backend == "postgresql"

    async def save(self, name: str, path: Path) -> None:
        """Keep the file at ``path`` as ``name``, replacing what was kept, in one
        transaction. It does not take the engine's write lock: no job's row changes."""
        if self.enabled:
            await shielded(functools.partial(self._save, name, path))

    async def _save(self, name: str, path: Path) -> None:
        now = time.time()
        with open(path, "rb") as file:  # noqa: ASYNC230 - read a part at a time in a thread
            async with self.db.bulk_write() as conn:
                await conn.execute(delete(FILE_PART).where(FILE_PART.c.name == name))
                start = 0
                while data := await asyncio.to_thread(file.read, PART_BYTES):
                    await conn.execute(
                        insert(FILE_PART).values(name=name, start=start, data=data, saved_at=now)
                    )
                    start += len(data)

    async def add_part(self, conn: AsyncConnection, name: str, start: int, data: bytes) -> None:
        """Keep ``data`` as the part of ``name`` from ``start``, in the caller's transaction."""
        if not self.enabled or not data:
            return
        now = time.time()
        await conn.execute(
            insert(FILE_PART),
            [
                {
                    "name": name,
                    "start": start + at,
                    "data": data[at : at + PART_BYTES],
                    "saved_at": now,
                }
                for at in range(0, len(data), PART_BYTES)
            ],
        )

    async def fetch(self, name: str, path: Path, *, size: int | None = None) -> bool:
        """Make sure ``path`` holds the file kept as ``name`` (its first ``size`` bytes at
        least), fetching it a few parts at a time if it does not; False if it is neither
        here nor kept. The copy appears whole or not at all (written aside, then renamed)."""
        with contextlib.suppress(FileNotFoundError):
            if size is None or path.stat().st_size >= size:  # noqa: ASYNC240 - one stat
                return True
        if not self.enabled:
            return False
        return await shielded(functools.partial(self._fetch, name, path))

    async def _fetch(self, name: str, path: Path) -> bool:
        aside = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
        path.parent.mkdir(parents=True, exist_ok=True)
        found = False
        try:
            with open(aside, "wb") as file:  # noqa: ASYNC230 - written a part at a time
                async with self.db.read() as conn:
                    parts = await conn.stream(
                        select(FILE_PART.c.data)
                        .where(FILE_PART.c.name == name)
                        .order_by(FILE_PART.c.start)
                        .execution_options(yield_per=READ_PARTS)
                    )
                    async for (data,) in parts:
                        found = True
                        await asyncio.to_thread(file.write, data)
            if found:
                os.replace(aside, path)
        finally:
            aside.unlink(missing_ok=True)
        return found

    async def kept(self, prefix: str) -> dict[str, float]:
        """The files kept under ``prefix`` (``upload/``, ``result/``): job id → when saved."""
        if not self.enabled:
            return {}
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(FILE_PART.c.name, func.min(FILE_PART.c.saved_at))
                    .where(FILE_PART.c.name.startswith(prefix, autoescape=True))
                    .group_by(FILE_PART.c.name)
                )
            ).all()
        return {job_of_name(name): saved_at for name, saved_at in rows}

    async def delete(self, names: Iterable[str]) -> None:
        names = list(names)
        if self.enabled and names:
            await shielded(functools.partial(self._delete, names))

    async def _delete(self, names: list[str]) -> None:
        async with self.db.bulk_write() as conn:
            await conn.execute(delete(FILE_PART).where(FILE_PART.c.name.in_(names)))
