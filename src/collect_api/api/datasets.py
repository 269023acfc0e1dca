"""Datasets: what has been imported, and its rows page by page."""

from typing import Any

from fastapi import APIRouter, status

from collect_api.api.deps import (
    AfterQuery,
    DatasetPath,
    LimitQuery,
    ServicesDep,
    TenantDep,
    row_key,
)
from collect_api.api.docs import (
    BAD_PAGE,
    DATABASE_BUSY,
    DATASET_NOT_FOUND,
    DISK_FULL,
    UNAUTHORIZED,
    documented,
)
from collect_api.api.schemas import DatasetPublic, DatasetsPublic, RowsPublic
from collect_api.errors import Unprocessable
from collect_api.storage import datasets
from collect_api.storage.datasets import Dataset

router = APIRouter(tags=["datasets"])


def _public(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "columns": dataset.columns,
        "row_count": dataset.row_count,
        "version": dataset.version,
        "created_at": dataset.created_at,
        "updated_at": dataset.updated_at,
    }


@router.get(
    "/datasets",
    response_model=DatasetsPublic,
    **documented(
        "List datasets",
        "Your datasets by name, page by page, with their columns and row counts. A dataset "
        "appears when the first import into it completes.",
        UNAUTHORIZED,
        BAD_PAGE,
        DATABASE_BUSY,
    ),
)
async def list_datasets(
    services: ServicesDep, tenant: TenantDep, limit: LimitQuery = 100, after: AfterQuery = None
) -> dict[str, Any]:
    if after is not None and not datasets.DATASET_NAME.fullmatch(after):
        raise Unprocessable("'after' must be the 'next' cursor of a previous page", field="after")
    async with services.db.read() as conn:
        found = await datasets.list_datasets(conn, tenant=tenant, after=after, limit=limit + 1)
    page = found[:limit]
    return {
        "items": [_public(d) for d in page],
        "next": page[-1].name if len(found) > limit else None,
    }


@router.get(
    "/datasets/{name}",
    response_model=DatasetPublic,
    **documented(
        "One dataset",
        "Its columns, row count and version.",
        UNAUTHORIZED,
        DATASET_NOT_FOUND,
        DATABASE_BUSY,
    ),
)
async def get_dataset(
    name: DatasetPath, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    async with services.db.read() as conn:
        return _public(await datasets.get_dataset(conn, tenant=tenant, name=name))


@router.get(
    "/datasets/{name}/rows",
    response_model=RowsPublic,
    **documented(
        "A dataset's rows, page by page",
        "The rows in source order, each a list of its fields as strings in column order, as "
        "imported. Pass `next` back as `after` for the following page.",
        UNAUTHORIZED,
        DATASET_NOT_FOUND,
        BAD_PAGE,
        DATABASE_BUSY,
    ),
)
async def dataset_rows(
    name: DatasetPath,
    services: ServicesDep,
    tenant: TenantDep,
    limit: LimitQuery = 100,
    after: AfterQuery = None,
) -> dict[str, Any]:
    if after is not None and row_key(after) is None:
        raise Unprocessable(
            "'after' must be the 'next' cursor of a previous page of rows", field="after"
        )
    async with services.db.read() as conn:
        dataset = await datasets.get_dataset(conn, tenant=tenant, name=name)
        rows = await datasets.read_rows(conn, dataset, after=row_key(after) or 0, limit=limit + 1)
    page = rows[:limit]
    return {
        "columns": dataset.columns,
        "rows": [list(r[1:]) for r in page],
        "next": str(page[-1][0]) if len(rows) > limit else None,
    }


@router.delete(
    "/datasets/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    **documented(
        "Delete a dataset",
        "Deletes the dataset and all its rows, for good. Exports already written are kept.",
        UNAUTHORIZED,
        DATASET_NOT_FOUND,
        DATABASE_BUSY,
        DISK_FULL,
        ok={204: {"description": "The dataset is deleted."}},
    ),
)
async def delete_dataset(name: DatasetPath, services: ServicesDep, tenant: TenantDep) -> None:
    async with services.db.write() as conn:
        dataset = await datasets.get_dataset(conn, tenant=tenant, name=name)
        await datasets.delete_dataset(conn, dataset)
