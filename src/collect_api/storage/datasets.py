"""Dataset tables: staged out of sight while a job runs, published in one transaction.

A dataset's rows live in a table of its own, ``ds_<job id>`` for the job that created that
version, with one ``TEXT`` column ``c<i>`` per CSV column and ``_row`` as the row key in
source order. The CSV header is kept as written in ``dataset.columns``: user-chosen names
never reach SQL as identifiers, so any header text is safe. Table names are built only from
job ids, which Collect generates.
"""

import re
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from collect_api.errors import DatasetNotFound
from collect_api.ids import utcnow


class Dataset(SQLModel, table=True):
    """A published dataset; its rows live in ``table_name``, one column per CSV column."""

    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    name: str
    table_name: str
    # The header as written; column i is stored in SQL column c{i}.
    columns: list[str] = Field(sa_column=Column(JSON, nullable=False))
    row_count: int = 0
    version: int = 1
    created_at: str
    updated_at: str
    last_job_id: str | None = None


DATASET = Dataset.__table__  # type: ignore[attr-defined]
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TABLE_NAME = re.compile(r"^(ds|stage)_[0-9a-z]{26}$")


def stage_table(job_id: str) -> str:
    return _checked(f"stage_{job_id}")


def data_table(job_id: str) -> str:
    return _checked(f"ds_{job_id}")


def is_dataset_table(name: str) -> bool:
    """Whether ``name`` is a table made while the service runs, for a dataset's staged or
    published rows: such tables are no part of the schema that migrations build."""
    return _TABLE_NAME.match(name) is not None


def _checked(table: str) -> str:
    if not _TABLE_NAME.match(table):
        raise ValueError(f"not a table name Collect generates: {table!r}")
    return table


def _cols(count: int) -> list[str]:
    return [f"c{i}" for i in range(count)]


async def create_table(conn: AsyncConnection, table: str, column_count: int) -> None:
    columns = "".join(f", {c} TEXT" for c in _cols(column_count))
    await conn.exec_driver_sql(
        f'CREATE TABLE IF NOT EXISTS "{_checked(table)}" (_row INTEGER PRIMARY KEY{columns})'
    )


async def drop_table(conn: AsyncConnection, table: str) -> None:
    await conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{_checked(table)}"')


async def stage_tables(conn: AsyncConnection) -> dict[str, str]:
    """Staging tables by job id."""
    result = await conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'stage\\_%' ESCAPE '\\'"
    )
    return {name.removeprefix("stage_"): name for (name,) in result.all()}


async def insert_rows(
    conn: AsyncConnection, table: str, column_count: int, rows: list[list[str]]
) -> None:
    """Append rows (each a list of ``column_count`` strings) with the driver's own
    ``executemany``, in the connection's current transaction: no per-row conversion."""
    if not rows:
        return
    names = ", ".join(_cols(column_count))
    marks = ", ".join("?" * column_count)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.executemany(f'INSERT INTO "{_checked(table)}" ({names}) VALUES ({marks})', rows)


async def get_dataset(conn: AsyncConnection, *, tenant: str, name: str) -> Dataset:
    row = (
        await conn.execute(
            select(DATASET).where(DATASET.c.tenant == tenant, DATASET.c.name == name)
        )
    ).first()
    if row is None:
        raise DatasetNotFound(name)
    return Dataset.model_validate(dict(row._mapping))


async def find_dataset(conn: AsyncConnection, *, tenant: str, name: str) -> Dataset | None:
    try:
        return await get_dataset(conn, tenant=tenant, name=name)
    except DatasetNotFound:
        return None


async def list_datasets(
    conn: AsyncConnection, *, tenant: str, after: str | None, limit: int
) -> list[Dataset]:
    query = select(DATASET).where(DATASET.c.tenant == tenant)
    if after is not None:
        query = query.where(DATASET.c.name > after)
    rows = await conn.execute(query.order_by(DATASET.c.name).limit(limit))
    return [Dataset.model_validate(dict(r._mapping)) for r in rows]


async def read_rows(
    conn: AsyncConnection, dataset: Dataset, *, after: int, limit: int
) -> list[tuple[Any, ...]]:
    """Rows after row key ``after`` in source order, each ``(row key, field, ...)``."""
    names = ", ".join(["_row", *_cols(len(dataset.columns))])
    result = await conn.exec_driver_sql(
        f'SELECT {names} FROM "{_checked(dataset.table_name)}" WHERE _row > ? '
        "ORDER BY _row LIMIT ?",
        (after, limit),
    )
    return list(result.all())


async def max_row(conn: AsyncConnection, dataset: Dataset) -> int:
    """The greatest row key now: an export's snapshot reads no row beyond it."""
    result = await conn.exec_driver_sql(
        f'SELECT coalesce(max(_row), 0) FROM "{_checked(dataset.table_name)}"'
    )
    return int(result.scalar_one())


async def count_rows(conn: AsyncConnection, dataset: Dataset, *, max_row: int) -> int:
    result = await conn.exec_driver_sql(
        f'SELECT count(*) FROM "{_checked(dataset.table_name)}" WHERE _row <= ?', (max_row,)
    )
    return int(result.scalar_one())


async def delete_dataset(conn: AsyncConnection, dataset: Dataset) -> None:
    await drop_table(conn, dataset.table_name)
    await conn.execute(delete(DATASET).where(DATASET.c.id == dataset.id))


class PublishConflict(Exception):
    """The dataset changed under the job in a way that makes publishing impossible."""


async def publish_import(
    conn: AsyncConnection,
    *,
    tenant: str,
    name: str,
    mode: str,
    job_id: str,
    columns: list[str],
    staged_rows: int,
) -> Dataset:
    """Make a job's staged rows the dataset's (``create`` · ``replace``) or add them to it
    (``append``), keeping source order. For a new version the staging table is renamed,
    not copied."""
    stage = stage_table(job_id)
    now = utcnow()
    existing = await find_dataset(conn, tenant=tenant, name=name)
    if mode == "append":
        if existing is None:
            raise PublishConflict(
                f"dataset {name!r} was deleted while the job ran; nothing was appended"
            )
        if set(existing.columns) != set(columns):
            raise PublishConflict(
                f"dataset {name!r} was replaced with other columns while the job ran; "
                "nothing was appended"
            )
        position = {column: i for i, column in enumerate(columns)}
        source = ", ".join(f"c{position[c]}" for c in existing.columns)
        target = ", ".join(_cols(len(existing.columns)))
        await conn.exec_driver_sql(
            f'INSERT INTO "{_checked(existing.table_name)}" ({target}) '
            f'SELECT {source} FROM "{stage}" ORDER BY _row'
        )
        await drop_table(conn, stage)
        await conn.execute(
            update(DATASET)
            .where(DATASET.c.id == existing.id)
            .values(row_count=existing.row_count + staged_rows, updated_at=now, last_job_id=job_id)
        )
        return existing.model_copy(
            update={"row_count": existing.row_count + staged_rows, "updated_at": now}
        )
    if existing is not None and mode == "create":
        raise PublishConflict(
            f"dataset {name!r} was created by another job while this one ran; import it "
            "again with mode=append or mode=replace"
        )
    table = data_table(job_id)
    await conn.exec_driver_sql(f'ALTER TABLE "{stage}" RENAME TO "{table}"')
    values = {
        "table_name": table,
        "columns": columns,
        "row_count": staged_rows,
        "updated_at": now,
        "last_job_id": job_id,
    }
    if existing is None:
        await conn.execute(
            insert(DATASET).values(tenant=tenant, name=name, created_at=now, version=1, **values)
        )
    else:
        await conn.execute(
            update(DATASET)
            .where(DATASET.c.id == existing.id)
            .values(version=existing.version + 1, **values)
        )
        await drop_table(conn, existing.table_name)
    return await get_dataset(conn, tenant=tenant, name=name)
