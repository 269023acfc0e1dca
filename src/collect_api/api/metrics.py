"""``GET /metrics``: the service's figures in Prometheus' text format."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from collect_api.api.deps import ServicesDep, TenantDep
from collect_api.api.docs import DATABASE_BUSY, UNAUTHORIZED, documented
from collect_api.jobs.store import JOB

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    **documented(
        "Metrics for Prometheus",
        "The service's figures in Prometheus' text format: jobs by kind and state (all "
        "tenants'), records and bytes the jobs of this process committed, chunk durations and "
        "control latency (request to the job's answer) as histograms, open event streams, and "
        "run slots in use. With API keys configured, it needs a key like every endpoint.",
        UNAUTHORIZED,
        DATABASE_BUSY,
        ok={
            200: {
                "description": "The metrics.",
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            }
        },
    ),
)
async def metrics(services: ServicesDep, _tenant: TenantDep) -> Response:
    figures = services.metrics
    async with services.db.read() as conn:
        counts = (
            await conn.execute(
                select(JOB.c.kind, JOB.c.state, func.count()).group_by(JOB.c.kind, JOB.c.state)
            )
        ).all()
    figures.jobs.clear()
    for kind in services.supervisor.kinds:
        for state in ("queued", "running", "paused"):
            figures.jobs.labels(kind, state).set(0)  # a present state, even with no job in it
    for kind, state, count in counts:
        figures.jobs.labels(kind, getattr(state, "value", state)).set(count)
    figures.slots_in_use.set(services.supervisor.running)
    figures.slots.set(services.settings.max_running_jobs)
    return Response(figures.render(), media_type=CONTENT_TYPE_LATEST)
