"""Dependencies shared by the routers: the services of the running app and the caller."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from collect_api.db import Database
from collect_api.jobs.broker import Broker
from collect_api.jobs.supervisor import Supervisor
from collect_api.settings import Settings

DEFAULT_TENANT = "default"


@dataclass
class Services:
    settings: Settings
    db: Database
    broker: Broker
    supervisor: Supervisor


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_tenant() -> str:
    return DEFAULT_TENANT


ServicesDep = Annotated[Services, Depends(get_services)]
TenantDep = Annotated[str, Depends(get_tenant)]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="page size (at most 1000)")]
AfterQuery = Annotated[
    str | None, Query(max_length=200, description="the `next` cursor of the previous page")
]
