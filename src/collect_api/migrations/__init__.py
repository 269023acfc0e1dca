"""The database schema, built and changed by Alembic revisions in ``versions/``.

Every server process brings the schema to the newest revision as it starts, before it serves
(``upgrade``, called by the app's lifespan); ``collect migrate`` does the same on demand. The
schema is the tables declared with ``SQLModel`` (``target_metadata``). The tables made while
the service runs, one per staged or published dataset (``stage_*``, ``ds_*``), are no part of
it: revisions neither create nor compare them.

One transaction, one migrator. Several processes may start together on one database (``collect
serve --workers N``, or several hosts). Each runs the whole upgrade, from reading the current
revision to the last revision's DDL, in one transaction that first takes a lock only one of
them can hold; the others wait for it, then find the database at the newest revision and do
nothing. The lock is the one difference between backends (``_EXCLUSIVE``):

- SQLite: ``BEGIN IMMEDIATE``, the database's write lock; the others wait on a long busy
  timeout. SQLite's DDL is transactional, so a failed revision leaves nothing behind.
  Foreign keys are off on this connection and checked before the commit: a revision that
  rebuilds a table (``batch_alter_table``) drops the old one, which with foreign keys on
  would delete, by cascade, the rows that refer to it.
- PostgreSQL: ``pg_advisory_xact_lock``, a transaction-scoped advisory lock rather than the
  session-scoped ``pg_advisory_lock``: it is released when the transaction ends, however it
  ends, so a process that dies mid-migration never leaves it held.

Databases from before migrations. Earlier releases built their tables with ``create_all`` and
kept no ``alembic_version``. Such a database has the tables of the baseline revision but no
revision: once its tables and columns are checked to be the baseline's (``legacy.check``), it
is stamped at the baseline and upgraded from there, its rows untouched.

Writing a revision. Change the models, then let Alembic write the revision against a database
at the newest revision (``pyproject.toml`` points the ``alembic`` command here)::

    COLLECT_DATABASE_URL=sqlite+aiosqlite:///./scratch.db alembic upgrade head
    COLLECT_DATABASE_URL=sqlite+aiosqlite:///./scratch.db alembic revision --autogenerate -m "..."

and read it before committing it: a revision must run on SQLite and on PostgreSQL alike
(``tests/test_migrations.py`` runs them on both and compares the result with the models).
"""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

# Imported for the tables they declare: together they make ``SQLModel.metadata`` whole.
from collect_api.jobs import models as _job_tables
from collect_api.migrations import legacy
from collect_api.migrations.legacy import SchemaMismatch
from collect_api.storage import datasets
from collect_api.storage import rejections as _rejection_tables
from collect_api.storage import shared as _file_tables
from collect_api.storage import teams as _team_tables

__all__ = [
    "ADVISORY_LOCK_KEY",
    "BASELINE",
    "Migration",
    "SchemaMismatch",
    "alembic_config",
    "backend",
    "context_options",
    "exclusive",
    "head",
    "schema_differences",
    "target_metadata",
    "upgrade",
]

# The revision that creates the schema as ``create_all`` made it before migrations existed.
BASELINE = "0001"
# The advisory lock's key on PostgreSQL: "Collect" in ASCII, as one bigint.
ADVISORY_LOCK_KEY = int.from_bytes(b"Collect", "big")
# How long a process waits on SQLite for another to finish migrating: a revision that rewrites
# a large table may take minutes, and waiting is always right.
_SQLITE_BUSY_TIMEOUT_MS = 30 * 60 * 1000
_HERE = Path(__file__).parent
# Referenced so that their import, which registers their tables, is not taken for unused.
_TABLE_MODULES = (_job_tables, _rejection_tables, _team_tables, _file_tables)


@dataclass(frozen=True)
class Migration:
    """What ``upgrade`` found and did."""

    # The revision before; None when there was none (a new database, or one made before
    # migrations existed).
    before: str | None
    after: str
    # The database was made before migrations existed and was stamped at the baseline.
    stamped: bool = False

    @property
    def changed(self) -> bool:
        return self.stamped or self.before != self.after

    def describe(self) -> str:
        """A sentence on what happened, for the log and ``collect migrate``."""
        if not self.changed:
            return f"The schema is at revision {self.after}, the newest: nothing to do."
        if self.stamped:
            return (
                f"The schema predates migrations: stamped at revision {BASELINE}, its rows "
                f"kept, and migrated to revision {self.after}, the newest."
            )
        if self.before is None:
            return f"Created the schema at revision {self.after}, the newest."
        return f"Migrated the schema from revision {self.before} to {self.after}, the newest."


def target_metadata() -> MetaData:
    """The schema the models declare, which the revisions must build."""
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built here rather than read from an ``alembic.ini``.

    With ``connection``, ``env.py`` migrates through it, inside the caller's transaction.
    """
    config = Config()
    # ConfigParser interpolates "%": a path holding one must escape it.
    config.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "no revision in collect_api/migrations/versions"
    return revision


def _include_object(
    _object: Any, name: str | None, type_: str, reflected: bool, _compare_to: Any
) -> bool:
    """Leave the per-dataset tables, made while the service runs, out of every comparison."""
    return not (type_ == "table" and reflected and name and datasets.is_dataset_table(name))


def _render_item(type_: str, obj: Any, _context: Any) -> str | bool:
    """Write SQLModel's ``AutoString`` as the plain ``sa.String`` it is, so that revisions
    do not depend on SQLModel."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String({obj.length})" if obj.length else "sa.String()"
    return False


def context_options(dialect: str) -> dict[str, Any]:
    """How Alembic runs and compares revisions on ``dialect`` (``env.py`` and the tests)."""
    return {
        "target_metadata": target_metadata(),
        "include_object": _include_object,
        "render_item": _render_item,
        "compare_type": True,
        # SQLite alters little in place: revisions rebuild the table instead.
        "render_as_batch": dialect == "sqlite",
    }


def schema_differences(connection: Connection) -> list[Any]:
    """What the database's schema lacks or has beyond the models' (empty when they agree)."""
    context = MigrationContext.configure(connection, opts=context_options(connection.dialect.name))
    return list(compare_metadata(context, target_metadata()))


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> Migration:
    """Stamp a database made before migrations, then upgrade to the newest revision. Runs in
    the caller's transaction, under its lock."""
    before = _current(connection)
    config = alembic_config(connection)
    stamped = False
    if before is None and legacy.has_tables(connection):
        legacy.check(connection)
        command.stamp(config, BASELINE)
        stamped = True
    command.upgrade(config, "head")
    after = _current(connection)
    assert after is not None
    return Migration(before=before, after=after, stamped=stamped)


async def _use_wal(conn: AsyncConnection) -> None:
    """Put the database in WAL mode, as the service runs it, before the migration's lock.

    The mode lasts in the file, so this only changes a new one. Changing it needs the file to
    itself for a moment, and SQLite reports a busy file at once here rather than waiting on
    the busy timeout (it would risk a deadlock): two processes starting on a new file would
    see one of them fail. So it is tried again until the file is free.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor = await driver.execute("PRAGMA journal_mode=WAL")
            await cursor.close()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.005)


@asynccontextmanager
async def _sqlite_exclusive(url: str) -> AsyncIterator[AsyncConnection]:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, poolclass=NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions begin as "begin" says
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        async with engine.connect() as conn:
            await _use_wal(conn)
            async with conn.begin():
                yield conn
                broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    tables = ", ".join(sorted({row[0] for row in broken}))
                    raise SchemaMismatch(
                        f"After the migration, rows of {tables} refer to rows that do not "
                        "exist; nothing was changed."
                    )
    finally:
        await engine.dispose()


@asynccontextmanager
async def _postgresql_exclusive(url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
            yield conn
    finally:
        await engine.dispose()


_EXCLUSIVE: dict[str, Callable[[str], AbstractAsyncContextManager[AsyncConnection]]] = {
    "sqlite": _sqlite_exclusive,
    "postgresql": _postgresql_exclusive,
}


def backend(url: str) -> str:
    """The database ``url`` names (``sqlite``, ``postgresql``); ValueError if migrations do not
    know it."""
    parsed = make_url(url)
    name = parsed.get_backend_name()
    if name not in _EXCLUSIVE:
        shown = parsed.render_as_string(hide_password=True)
        raise ValueError(
            f"unsupported database URL {shown!r}: use sqlite+aiosqlite or postgresql+asyncpg"
        )
    return name


def exclusive(url: str) -> AbstractAsyncContextManager[AsyncConnection]:
    """A transaction on the database at ``url`` that no other migrator shares: committed on
    exit, rolled back on any exception."""
    return _EXCLUSIVE[backend(url)](url)


async def upgrade(url: str) -> Migration:
    """Bring the database at ``url`` to the newest revision, creating its schema if it has
    none; a no-op when it is there already."""
    async with exclusive(url) as conn:
        return await conn.run_sync(_upgrade)
