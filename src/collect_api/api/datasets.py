"""Datasets: what has been imported, and its rows page by page."""

from typing import Any

from fastapi import APIRouter, status

from collect_api.api.deps import AfterQuery, LimitQuery, ServicesDep, TenantDep, row_key
from collect_api.api.schemas import PROBLEM_RESPONSES, DatasetPublic, DatasetsPublic, RowsPublic
from collect_api.errors import Unprocessable
from collect_api.jobs.models import Dataset
from collect_api.storage import datasets

router = APIRouter(tags=["datasets"], responses=PROBLEM_RESPONSES)


def _public(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "columns": dataset.columns,
        "row_count": dataset.row_count,
        "version": dataset.version,
        "created_at": dataset.created_at,
        "updated_at": dataset.updated_at,
    }


@router.get("/datasets", response_model=DatasetsPublic, summary="List datasets by name")
async def list_datasets(
    services: ServicesDep, tenant: TenantDep, limit: LimitQuery = 100, after: AfterQuery = None
) -> dict[str, Any]:
    async with services.db.read() as conn:
        found = await datasets.list_datasets(conn, tenant=tenant, after=after, limit=limit + 1)
    page = found[:limit]
    return {
        "items": [_public(d) for d in page],
        "next": page[-1].name if len(found) > limit else None,
    }


@router.get("/datasets/{name}", response_model=DatasetPublic, summary="One dataset")
async def get_dataset(name: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    async with services.db.read() as conn:
        return _public(await datasets.get_dataset(conn, tenant=tenant, name=name))


@router.get(
    "/datasets/{name}/rows", response_model=RowsPublic, summary="Rows in source order, paginated"
)
async def dataset_rows(
    name: str,
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
    "/datasets/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a dataset"
)
async def delete_dataset(name: str, services: ServicesDep, tenant: TenantDep) -> None:
    async with services.db.write() as conn:
        dataset = await datasets.get_dataset(conn, tenant=tenant, name=name)
        await datasets.delete_dataset(conn, dataset)
