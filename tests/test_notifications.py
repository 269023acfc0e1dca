"""PostgreSQL's notifications, as the servers use them (``db.notify``, ``Database.listen``):
delivered to every listener at a commit and never for a rollback, heard again after the
listening connection is lost, and a listener cancelled at any moment leaves no connection."""

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from collect_api.db import CHANGED, LISTENER_NAME, Database, announce, asyncpg_dsn, notify
from tests.helpers import query


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    try:
        yield database
    finally:
        await database.dispose()


class Heard:
    """What a listener heard, in order."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, payload: str) -> None:
        self.payloads.append(payload)
        self.arrived.set()

    async def next(self, timeout: float = 10) -> str:  # noqa: ASYNC109 - the test's deadline
        async with asyncio.timeout(timeout):
            while not self.payloads:
                self.arrived.clear()
                await self.arrived.wait()
        return self.payloads.pop(0)


@contextlib.asynccontextmanager
async def listening(db: Database) -> AsyncIterator[Heard]:
    """``db.listen`` in a task of the test's, cancelled and awaited on leaving; inside, its
    connection is made (it has said ``CHANGED`` once)."""
    heard = Heard()
    task = asyncio.create_task(db.listen(heard))
    try:
        assert await heard.next() == CHANGED
        yield heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def listeners(url: str) -> list[int]:
    """The pids of the listening connections still open on the database."""
    rows = await query(
        url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
        "AND datname = current_database()",
        name=LISTENER_NAME,
    )
    return [pid for (pid,) in rows]


async def test_a_commit_is_heard_by_every_listener_and_a_rollback_by_none(
    db: Database, postgres_url: str
) -> None:
    other = Database(postgres_url)  # another server's
    try:
        async with listening(db) as here, listening(other) as there:
            with pytest.raises(RuntimeError):
                async with db.write() as conn:
                    notify(conn, "pause 01never")
                    announce(conn)
                    raise RuntimeError("rolled back")
            async with db.write() as conn:
                notify(conn, "pause 01job")
                announce(conn)
            for heard in (here, there):
                assert sorted([await heard.next(), await heard.next()]) == [
                    CHANGED,
                    "pause 01job",
                ]
            await asyncio.sleep(0.2)
            assert here.payloads == there.payloads == []
    finally:
        await other.dispose()


async def test_a_lost_listening_connection_is_made_again(db: Database, postgres_url: str) -> None:
    async with listening(db) as heard:
        [pid] = await listeners(postgres_url)
        await query(postgres_url, "SELECT pg_terminate_backend(:pid)", pid=pid)
        # Made again: it says that changes may have been missed meanwhile, then hears more.
        assert await heard.next() == CHANGED
        assert (await listeners(postgres_url)) not in ([], [pid])
        async with db.write() as conn:
            notify(conn, "terminate 01job")
        assert await heard.next() == "terminate 01job"


async def test_a_listener_cancelled_at_any_moment_leaves_no_connection(
    db: Database, postgres_url: str
) -> None:
    rng = random.Random(7)
    for _ in range(150):
        heard = Heard()
        task = asyncio.create_task(db.listen(heard))
        await asyncio.sleep(rng.random() * 0.03)  # connecting, listening, or in between
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.done()
    # Terminated connections leave the server's view within moments; the view is polled on
    # one connection of the test's own, so that a loaded machine's slow connects do not
    # count against the deadline (a connection left open stays in the view for ever).
    watcher = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        async with asyncio.timeout(30):
            while await watcher.fetchval(  # noqa: ASYNC110 - the server's view, polled
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND datname = current_database()",
                LISTENER_NAME,
            ):
                await asyncio.sleep(0.05)
    finally:
        await watcher.close()
