"""Alembic's environment: how each Alembic command reaches the database.

``collect_api.migrations.upgrade`` (start-up and ``collect migrate``) hands over a connection
already inside its locked transaction, in ``config.attributes["connection"]``: the revisions
run in that transaction, and the caller commits. The ``alembic`` command itself, for writing
revisions (see the package's docstring), has no connection: it opens the same locked
transaction on the database that ``-x database_url=URL`` names, or else on
``COLLECT_DATABASE_URL``.
"""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection, make_url

from collect_api import migrations
from collect_api.settings import Settings

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **migrations.context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    named: str | None = context.get_x_argument(as_dictionary=True).get("database_url")
    return named or Settings().database_url


async def _run_locked() -> None:
    async with migrations.exclusive(_url()) as conn:
        await conn.run_sync(_run)


if context.is_offline_mode():
    url = _url()
    dialect = make_url(url).get_backend_name()
    context.configure(url=url, literal_binds=True, **migrations.context_options(dialect))
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_locked())
