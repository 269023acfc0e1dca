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
- ``secure_delete=FAST``: deleted rows are zeroed in the pages that are written anyway, but
  the pages of a dropped table are not rewritten one by one. Some builds (Debian's) default
  to ``ON``, under which dropping a job's staging table writes every one of its pages again:
  rolling a job back then needs as much free disk as the job wrote, so a job that failed
  for want of room could never be rolled back.

PostgreSQL (``postgresql+asyncpg``). The same two engines, with the same guarantees: every
write transaction first takes one transaction-scoped advisory lock (``WRITE_LOCK_KEY``), so
writers are serialised as by ``BEGIN IMMEDIATE`` and revisions increase in commit order, on
every server sharing the database; the lock goes with the transaction however it ends.
Reads are ``REPEATABLE READ, READ ONLY``: one consistent snapshot. Nothing else in the
engine differs by backend. There is no WAL to checkpoint and no disk of the database's here.

Notifications (PostgreSQL). A write transaction that ``announce``s a change, or ``notify``s a
control request, sends ``NOTIFY`` on ``CHANNEL`` before it commits; PostgreSQL delivers it
to every listening server at the commit, and never for a transaction that rolls back.
``listen`` holds one connection per server (no transaction, ever) that hears them. The
payload is ``CHANGED`` for an announced change (a job submitted, or changing state), empty
for a chunk's progress, or ``"<control> <job id>"`` for a control request that the process
running the job should act on at once. A notification may be lost (a listener
reconnecting): every listener polls too, and after a reconnection it acts as if it had heard
of a change.

Cancellation. SQLAlchemy takes a ``CancelledError`` that reaches it during a statement for a
lost connection: it invalidates the connection and closes it without a rollback. If the
statement was still open (a ``SELECT`` not yet read to its end), ``sqlite3_close_v2`` leaves
a zombie connection that keeps its transaction, and so the write lock, until the garbage
collector happens to finalise the statement. Background work that may be cancelled therefore
runs its transactions through ``shielded``: a cancellation never lands inside a driver call;
it makes the next statement raise ``Interrupted`` instead, so the transaction rolls back as
after any error, and the ``CancelledError`` is raised once the connection is back in its pool.
"""

import asyncio
import contextvars
import errno
import functools
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 60_000
T = TypeVar("T")
log = logging.getLogger("collect.db")


class Interrupted(Exception):
    """The work this transaction belongs to was cancelled: it rolls back at this statement."""


_interrupt: contextvars.ContextVar["Interrupt | None"] = contextvars.ContextVar(
    "collect_interrupt", default=None
)


def raise_if_interrupted() -> None:
    """Stop here if the work in progress was cancelled. Called before every statement that
    SQLAlchemy issues, and by code that calls the driver directly."""
    flag = _interrupt.get()
    if flag is not None and flag.requested:
        raise Interrupted("cancelled")


class Interrupt:
    """A request to stop the work of a ``shielded`` unit at its next statement."""

    def __init__(self) -> None:
        self.requested = False


async def shielded(
    unit: Callable[[], Awaitable[T]],
    *,
    on_cancel: Callable[[], None] | None = None,
    interrupt: "Interrupt | None" = None,
    discard: Callable[[T], None] | None = None,
) -> T:
    """Run ``unit`` (database work that opens its own transactions) so that a cancellation of
    the caller never interrupts a driver call halfway.

    ``unit`` runs in a child task that is never cancelled. When the caller is cancelled, the
    child's next statement raises ``Interrupted`` (its transaction rolls back) and
    ``on_cancel`` is called to stop work done elsewhere (another process, say); the caller
    waits until the child has ended, then raises the ``CancelledError``. The child is always
    awaited here: no transaction outlives the task that started it. Setting ``interrupt``
    from outside stops the unit the same way without a cancellation: it raises
    ``Interrupted``.

    A unit may end with its result after all: the cancellation came too late for its last
    statement, or once it had returned. That result never reaches the caller, which raises
    the ``CancelledError``: ``discard(result)`` is called with it, so that a resource the
    unit made (a connection, say) is given back rather than left open.
    """
    flag = interrupt if interrupt is not None else Interrupt()

    async def run() -> T:
        _interrupt.set(flag)
        return await unit()

    child = asyncio.ensure_future(run())
    try:
        return await asyncio.shield(child)
    except asyncio.CancelledError:
        flag.requested = True
        if on_cancel is not None:
            on_cancel()
        while not child.done():
            try:
                await asyncio.wait({child})
            except asyncio.CancelledError:  # cancelled again: the child still has to end first
                continue
        # An exception is retrieved here: the caller's cancellation is what counts now.
        if not child.cancelled() and child.exception() is None and discard is not None:
            discard(child.result())
        raise


_ANNOUNCED = "collect_announced"


_ON_COMMIT = "collect_on_commit"
_NOTIFY = "collect_notify"
# The channel of every notification; the payload of an ``announce``d change (a job
# submitted or changing state); the statement the data plane's worker runs before a chunk's
# commit (an empty payload: progress), so that streams on every server hear of it.
CHANNEL = "collect"
CHANGED = "changed"
NOTIFY_STATEMENT = f"SELECT pg_notify('{CHANNEL}', '')"
# The listening connection's name in ``pg_stat_activity``.
LISTENER_NAME = "collect-listener"
# The point reads' connections' name in ``pg_stat_activity``.
POINT_READS_NAME = "collect-point-reads"
# How long a lost listening connection waits before it connects again, at most.
LISTEN_RETRY_MAX_S = 10.0


def announce(conn: AsyncConnection) -> None:
    """Have the hooks of ``Database.after_commit`` run once this transaction commits."""
    conn.info[_ANNOUNCED] = True


def notify(conn: AsyncConnection, payload: str) -> None:
    """Send ``payload`` to every server's listener once this transaction commits (on
    PostgreSQL; on SQLite, one process runs a job and hears its control requests itself)."""
    conn.info.setdefault(_NOTIFY, set()).add(payload)


def on_commit(conn: AsyncConnection, action: Callable[[], None]) -> None:
    """Call ``action`` once this write transaction has committed; never if it rolls back."""
    conn.info.setdefault(_ON_COMMIT, []).append(action)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk has no room: SQLite's ``SQLITE_FULL``, PostgreSQL's
    ``disk_full`` (SQLSTATE 53100: "could not extend file ...: No space left on device"), or
    ``ENOSPC``."""
    text = str(exc)
    return (
        "disk is full" in text
        or "No space left on device" in text
        or isinstance(getattr(exc, "orig", None), asyncpg.DiskFullError)
        or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)
    )


def room_on_disk(path: Path) -> str:
    """Where ``path`` lives and how much room that disk has, for a user to act on."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return f"the disk holding {path}"
    return f"the disk holding {path} ({free:,} bytes free)"


def _sqlite_engine(url: str, *, begin: str, busy_timeout_ms: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=8, max_overflow=16)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions open.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=FAST")
        cursor.execute("PRAGMA cache_size=-16384")  # 16 MiB a connection, at most
        # The WAL is copied into the database file by the supervisor's checkpoints, off the
        # path of any request or chunk (``Database.checkpoint``), not by whichever commit
        # happens to pass SQLite's threshold.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before_execute(*_args: Any) -> None:
        raise_if_interrupted()

    return engine


# The key of the advisory lock every write transaction takes on PostgreSQL: "Writes" in
# ASCII, as one bigint (the migrations' lock is another).
WRITE_LOCK_KEY = int.from_bytes(b"Writes", "big")
WRITE_LOCK_STATEMENT = f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"
BACKENDS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql"}


def asyncpg_dsn(url: str | URL) -> str:
    """The libpq URI asyncpg (and ADBC) connect to, from a ``postgresql+asyncpg`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql``: the database a URL names; ValueError for another."""
    driver = make_url(url).drivername
    if driver not in BACKENDS:
        raise ValueError(
            f"unsupported database URL scheme {driver!r}: use sqlite+aiosqlite:///PATH or "
            "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB"
        )
    return BACKENDS[driver]


def _postgres_engine(url: str, *, writer: bool, locked: bool = True) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=8 if locked else 2,
        max_overflow=16,
        isolation_level="READ COMMITTED" if writer else "REPEATABLE READ",
        # A reader's BEGIN says READ ONLY itself: no round trip more.
        execution_options={} if writer else {"postgresql_readonly": True},
        # A writer waits for the write lock as long as a SQLite writer would.
        connect_args={"server_settings": {"lock_timeout": str(BUSY_TIMEOUT_MS)}},
    )

    if writer and locked:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(WRITE_LOCK_STATEMENT)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before_execute(*_args: Any) -> None:
        raise_if_interrupted()

    return engine


class PointReads:
    """Single statements that read one row, outside SQLAlchemy's pool, for the reads done
    most often: the requests clients repeat (``GET /jobs/{id}``, the answer of a control
    request, the start of a job's stream) and the passes of the scheduler and the event
    poll that usually find nothing new.

    A read through the reader engine costs four round trips (its ``BEGIN``, the query, the
    ``COMMIT``, the pool's rollback on return) and the greenlet bridge around each: 1.8 ms
    of CPU against 0.07 ms for the statement alone, measured on SQLite
    (``BENCHMARKS.md``, ``GET /jobs/{id}``). One statement in autocommit is its own
    consistent snapshot on both databases, so it needs no transaction around it.

    SQLite: one connection (``query_only``), whose thread runs one call at a time; a caller
    cancelled while it waits leaves the call to end in that thread, and the statement is
    read to its end and closed within the call, so no read transaction outlives it.
    PostgreSQL: a few connections of their own, each used by one statement at a time and
    never in a transaction, the statement run through ``shielded`` so that a cancellation
    never lands inside it.

    Statements are written with ``?`` placeholders; driver errors come out as SQLAlchemy's
    ``OperationalError``, as from the engines, so that requests answer 503 or 507 alike.
    """

    CONNECTIONS = 4  # on PostgreSQL

    def __init__(self, url: str, backend: str) -> None:
        self.url = url
        self.backend = backend
        self._sqlite: Any = None  # an aiosqlite connection, once opened
        self._slots: asyncio.Queue[Any] | None = None  # PostgreSQL's connections
        self._opening = asyncio.Lock()
        self._statements: dict[str, str] = {}
        self._closed = False

    async def one(self, statement: str, *params: Any) -> tuple[Any, ...] | None:
        """The first row ``statement`` gives, or None."""
        try:
            if self.backend == "sqlite":
                conn = self._sqlite or await self._open_sqlite()
                rows = await conn.execute_fetchall(statement, params)
                return tuple(rows[0]) if rows else None
            return await shielded(functools.partial(self._postgres_one, statement, params))
        except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise OperationalError(statement, params, exc) from exc

    async def _open_sqlite(self) -> Any:
        async with self._opening:
            if self._sqlite is None:
                path = make_url(self.url).database or ":memory:"
                conn = await aiosqlite.connect(path, isolation_level=None)
                try:
                    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                    await conn.execute("PRAGMA query_only=ON")
                except BaseException:
                    await conn.close()
                    raise
                self._sqlite = conn
        return self._sqlite

    async def _postgres_one(self, statement: str, params: tuple[Any, ...]) -> Any:
        sql = self._statements.get(statement)
        if sql is None:
            parts = statement.split("?")
            sql = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
            self._statements[statement] = sql
        if self._slots is None:
            # A slot holds an idle connection, or None where one is yet to be made.
            self._slots = asyncio.Queue()
            for _ in range(self.CONNECTIONS):
                self._slots.put_nowait(None)
        conn = await self._slots.get()
        try:
            if conn is not None and conn.is_closed():
                conn = None  # lost while idle (the server restarted, say): made again
            if conn is None:
                conn = await self._connect()
            try:
                row = await conn.fetchrow(sql, *params)
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError):
                # Lost while idle and not yet noticed: once more, on a new connection.
                conn.terminate()
                conn = await self._connect()
                row = await conn.fetchrow(sql, *params)
        except BaseException:
            # Whatever went wrong, the connection is not trusted again.
            if conn is not None:
                conn.terminate()
            self._slots.put_nowait(None)
            raise
        if self._closed:
            conn.terminate()
        else:
            self._slots.put_nowait(conn)
        return None if row is None else tuple(row)

    async def _connect(self) -> "asyncpg.Connection[Any]":
        return await asyncpg.connect(
            asyncpg_dsn(self.url), server_settings={"application_name": POINT_READS_NAME}
        )

    async def close(self) -> None:
        self._closed = True
        if self._sqlite is not None:
            conn, self._sqlite = self._sqlite, None
            await conn.close()
        while self._slots is not None and not self._slots.empty():
            conn = self._slots.get_nowait()
            if conn is not None:
                await conn.close()


class Database:
    """The writer and reader engines of one database."""

    def __init__(self, url: str) -> None:
        self.backend = backend_of(url)
        parsed = make_url(url)
        self.reserve: Path | None = None
        self.directory: Path | None = None
        self.file_name = ""
        # Set when a write found the disk full; cleared once the database has room again.
        self.disk_full = False
        if self.backend == "sqlite" and parsed.database and parsed.database != ":memory:":
            self.directory = Path(parsed.database).parent
            self.directory.mkdir(parents=True, exist_ok=True)
            self.reserve = Path(parsed.database).with_name(".collect-disk-reserve")
            self.file_name = Path(parsed.database).name
        self.url = url
        # The writer asks for the write lock itself, every millisecond (``write``); the
        # reader never waits for it, but a checkpoint may make it wait a moment.
        if self.backend == "postgresql":
            self.writer = _postgres_engine(url, writer=True)
            self.reader = _postgres_engine(url, writer=False)
            # Writes of files' parts (``storage.shared``), which change no job's row.
            self.bulk: AsyncEngine | None = _postgres_engine(url, writer=True, locked=False)
        else:
            self.writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE", busy_timeout_ms=0)
            self.reader = _sqlite_engine(url, begin="BEGIN", busy_timeout_ms=BUSY_TIMEOUT_MS)
            self.bulk = None
        self.points = PointReads(url, self.backend)
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after a write transaction of this process that ``announce``d a
        change commits."""
        self._after_commit.append(hook)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on exit, rolled back on any exception.

        The write lock is asked for every millisecond rather than through SQLite's busy
        handler, whose sleeps grow to 100 ms: a job that takes the lock back right after
        each chunk would starve such a waiter, and a control request would wait behind
        every chunk of the job it is meant to stop.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        async with self.writer.connect() as conn:
            while True:
                try:
                    transaction = await conn.begin()
                    break
                except OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.001)
            try:
                yield conn
                if self.backend == "postgresql":
                    await self._send_notifications(conn)
                await transaction.commit()
            except BaseException:
                conn.info.pop(_ANNOUNCED, None)
                conn.info.pop(_ON_COMMIT, None)
                conn.info.pop(_NOTIFY, None)
                if transaction.is_active:
                    await transaction.rollback()
                raise
            announced = conn.info.pop(_ANNOUNCED, False)
            actions = conn.info.pop(_ON_COMMIT, [])
        for action in actions:
            action()
        if announced:
            for hook in self._after_commit:
                hook()

    async def _send_notifications(self, conn: AsyncConnection) -> None:
        payloads = conn.info.pop(_NOTIFY, set())
        if conn.info.get(_ANNOUNCED):
            payloads.add(CHANGED)
        for payload in sorted(payloads):
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": payload},
            )

    async def listen(self, heard: Callable[[str], None]) -> None:
        """Call ``heard(payload)`` for every notification, until cancelled (PostgreSQL only).
        A lost connection is made again with a growing delay; once made, ``heard(CHANGED)``
        says that changes may have been missed meanwhile."""
        delay = 0.1
        while True:
            lost = asyncio.Event()
            try:
                conn = await shielded(
                    functools.partial(self._listening, heard, lost),
                    discard=lambda made: made.terminate(),  # made as the listener was cancelled
                )
            except Exception as exc:  # refused, unreachable, timed out: polling covers it
                log.warning("cannot listen for notifications (%s); polling meanwhile", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX_S)
                continue
            delay = 0.1
            try:
                heard(CHANGED)
                await lost.wait()
                log.warning("the connection listening for notifications was lost")
            finally:
                conn.terminate()  # it has no transaction: nothing to wait for

    async def _listening(
        self, heard: Callable[[str], None], lost: asyncio.Event
    ) -> "asyncpg.Connection[Any]":
        """A connection that listens on ``CHANNEL`` and sets ``lost`` when it is lost."""
        conn = await asyncpg.connect(
            asyncpg_dsn(self.url), server_settings={"application_name": LISTENER_NAME}
        )
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, lambda _conn, _pid, _channel, payload: heard(payload))
            raise_if_interrupted()  # the caller was cancelled meanwhile: not to be left open
        except BaseException:
            conn.terminate()
            raise
        return conn

    @asynccontextmanager
    async def bulk_write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction without the write lock, for writes that change no job
        (PostgreSQL only): a file's parts, say. It neither orders nor announces changes."""
        assert self.bulk is not None, "only PostgreSQL has a bulk writer"
        async with self.bulk.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self.reader.begin() as conn:
            yield conn

    def room(self) -> str:
        """The database's disk and the room it has, for messages."""
        return room_on_disk(self.directory) if self.directory else "the database's disk"

    def keep_reserve(self, size: int) -> None:
        """Hold ``size`` bytes of disk beside the database, to give back when the disk is
        full: then a job's end and the rollback of its writes still have room. Blocking.

        The reserve is taken back only once the disk has room for it twice over: taken back
        sooner, it would take the room just given for a job's end before the end is written.
        """
        if self.reserve is None or size <= 0:
            return
        try:
            if self.reserve.exists() and self.reserve.stat().st_size >= size:
                return
            if shutil.disk_usage(self.reserve.parent).free < 2 * size:
                return
            with open(self.reserve, "wb") as f:
                f.truncate(0)
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError:  # no room for it now; try again later
            self.reserve.unlink(missing_ok=True)

    def wal_bytes(self) -> int:
        """How large the database's write-ahead log is now (0 if there is none)."""
        if self.directory is None:
            return 0
        try:
            return (self.directory / f"{self.file_name}-wal").stat().st_size
        except OSError:
            return 0

    async def checkpoint(self, mode: str = "PASSIVE") -> bool:
        """Copy the WAL's committed pages into the database file (``PASSIVE``: without
        waiting for, or blocking, any reader or writer). True if every page was copied;
        always on PostgreSQL, which has no such log here."""
        if self.backend != "sqlite":
            return True
        async with self.writer.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            async with driver.execute(f"PRAGMA wal_checkpoint({mode})") as cursor:
                busy, log_pages, moved = await cursor.fetchone()
        return not busy and moved == log_pages

    async def recover_room(self, reserve: int) -> bool:
        """After the disk was full: checkpoint the WAL into the database file and truncate it,
        so that writes that failed for want of room succeed again. True once it worked.

        A checkpoint grows the database file by up to the size of the WAL before it can
        truncate the WAL: it is tried only once the disk has that much room and the reserve
        besides, or it would take the room kept for recording jobs' ends.
        """
        if self.directory is None or self.reserve is None:
            self.disk_full = False
            return True
        wal = self.reserve.with_name(f"{self.file_name}-wal")
        try:
            needed = (wal.stat().st_size if wal.exists() else 0) + reserve
            if shutil.disk_usage(self.directory).free < needed:
                return False
        except OSError:
            return False
        try:
            if not await self.checkpoint("TRUNCATE"):
                return False
        except Exception:
            return False
        self.disk_full = False
        return True

    def give_back_reserve(self) -> bool:
        """Free the reserve; True if there was one."""
        if self.reserve is None or not self.reserve.exists():
            return False
        self.reserve.unlink(missing_ok=True)
        return True

    async def dispose(self) -> None:
        await self.points.close()
        await self.writer.dispose()
        await self.reader.dispose()
        if self.bulk is not None:
            await self.bulk.dispose()
