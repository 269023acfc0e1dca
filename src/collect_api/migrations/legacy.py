"""Databases made before migrations existed, by ``SQLModel.metadata.create_all``.

Such a database holds the baseline revision's tables with no revision recorded. Before it is
stamped at the baseline, its tables and columns are checked against the ones ``create_all``
made then, listed here as they were and never to be changed: a database that is not Collect's,
or only part of one, is refused rather than stamped and built upon.
"""

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

# Every table ``create_all`` made before migrations existed, with its columns.
TABLES: dict[str, frozenset[str]] = {
    "job": frozenset(
        {
            "id",
            "tenant",
            "kind",
            "state",
            "params",
            "progress",
            "result",
            "error",
            "checkpoint",
            "control",
            "owner",
            "lease_expires_at",
            "attempts",
            "queue_seq",
            "rev",
            "created_at",
            "started_at",
            "updated_at",
            "finished_at",
        }
    ),
    "job_history": frozenset(
        {"id", "job_id", "rev", "from_state", "to_state", "actor", "reason", "at", "snapshot"}
    ),
    "dataset": frozenset(
        {
            "id",
            "tenant",
            "name",
            "table_name",
            "columns",
            "row_count",
            "version",
            "created_at",
            "updated_at",
            "last_job_id",
        }
    ),
    "job_rejection": frozenset({"id", "job_id", "line", "record", "column", "reason", "raw"}),
    "team": frozenset({"id", "tenant", "name", "name_key", "created_at", "job_id"}),
    "team_member": frozenset({"id", "team_id", "email", "email_key", "name", "role", "job_id"}),
    "team_stage": frozenset(
        {
            "id",
            "job_id",
            "tenant",
            "team_key",
            "team_name",
            "email",
            "email_key",
            "member_name",
            "role",
        }
    ),
}


class SchemaMismatch(Exception):
    """The database holds tables that are not the schema Collect expects there."""


def has_tables(connection: Connection) -> bool:
    """Whether any of the tables made before migrations is there."""
    return bool(TABLES.keys() & set(inspect(connection).get_table_names()))


def check(connection: Connection) -> None:
    """Raise ``SchemaMismatch``, naming what is missing, unless every table made before
    migrations is there with its columns."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    problems = [f"table {name} is missing" for name in TABLES if name not in present]
    for name, expected in TABLES.items():
        if name in present:
            columns = {column["name"] for column in inspector.get_columns(name)}
            problems += [f"column {name}.{c} is missing" for c in sorted(expected - columns)]
    if problems:
        raise SchemaMismatch(
            "The database has some of Collect's tables but no schema revision, and is not as "
            f"Collect made it before migrations: {'; '.join(problems)}. Nothing was changed; "
            "point COLLECT_DATABASE_URL at Collect's database, or at a new one."
        )
