"""``GET /healthz``: liveness and database reachability."""

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from collect_api.api.deps import ServicesDep
from collect_api.api.docs import DATABASE_BUSY, documented
from collect_api.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    **documented(
        "Liveness and database reachability",
        "Answers 200 when the service runs and its database answers. Needs no API key.",
        DATABASE_BUSY,
    ),
)
async def healthz(services: ServicesDep) -> dict[str, Any]:
    async with services.db.read() as conn:
        await conn.execute(text("SELECT 1"))
    return {"status": "ok", "database": "ok"}
