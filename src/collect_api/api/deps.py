"""Dependencies shared by the routers: the services of the running app and the caller."""

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from collect_api.access import DEFAULT_TENANT, KEY_COOKIE, Access
from collect_api.db import Database
from collect_api.errors import Unauthorized
from collect_api.jobs.broker import Broker
from collect_api.jobs.supervisor import Supervisor
from collect_api.metrics import Metrics
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import DataPlane


@dataclass
class Services:
    settings: Settings
    db: Database
    broker: Broker
    supervisor: Supervisor
    access: Access
    dataplane: DataPlane
    metrics: Metrics


# The dependencies are coroutines although they never wait: FastAPI runs a plain function
# in its thread pool, a round trip through another thread for every request.


async def get_services(request: Request) -> Services:
    return _services(request)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key of COLLECT_API_KEYS, when keys are configured. Browsers' "
    f"EventSource cannot send headers: it sends the `{KEY_COOKIE}` cookie instead.",
)


async def get_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant: from its API key, or the one tenant of an open service."""
    access = _services(request).access
    if access.open:
        return DEFAULT_TENANT
    key = credentials.credentials if credentials else request.cookies.get(KEY_COOKIE)
    if not key:
        raise Unauthorized(
            "An API key is required: send the header 'Authorization: Bearer <key>'.",
            challenge='Bearer realm="collect"',
        )
    tenant = access.tenant_of(key)
    if tenant is None:
        raise Unauthorized(
            "This API key is not known; check it, or ask for one.",
            challenge='Bearer realm="collect", error="invalid_token"',
        )
    return tenant


ServicesDep = Annotated[Services, Depends(get_services)]
TenantDep = Annotated[str, Depends(get_tenant)]
LimitQuery = Annotated[
    int, Query(ge=1, le=1000, description="how many items a page holds, 1 to 1000")
]
AfterQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="the `next` of the previous page, to get the page after it; "
        "omit it for the first page",
    ),
]
JobIdPath = Annotated[str, Path(description="the job's `id`, as `POST` or `GET /jobs` gave it")]
DatasetPath = Annotated[str, Path(description="the dataset's `name`")]
TeamIdPath = Annotated[str, Path(description="the team's `id`, as `GET /teams` gave it")]


_ROW_KEY = re.compile(r"[0-9]{1,18}")


def row_key(text: str | None) -> int | None:
    """A numeric cursor or id as given in a URL: 1 to 18 ASCII digits, else None."""
    return int(text) if text is not None and _ROW_KEY.fullmatch(text) else None
