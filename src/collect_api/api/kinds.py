"""The kinds of job a service runs, and what each brings: its runner and its routes.

Each kind's module (``api.imports``, ``api.exports``, ``api.teams``) exports one ``KIND``;
the tuple of them given to ``create_app`` (``app.KINDS`` by default) is all that registers
a kind with the engine, mounts its routes and names it in the API's documents.
"""

from dataclasses import dataclass
from typing import Protocol, TypeVar

from fastapi import APIRouter

from collect_api.api.deps import Services
from collect_api.jobs.registry import JobKind
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import DataPlane

K = TypeVar("K", bound=JobKind)


class RunnerClass(Protocol):
    """A kind's runner class: its name, and the runner it makes for a service."""

    @property
    def name(self) -> str: ...

    def __call__(self, settings: Settings, dataplane: DataPlane) -> JobKind: ...


@dataclass(frozen=True)
class KindModule:
    """A kind: how its runner is made for a service, and the routes that submit its jobs
    (and serve what else is its own, such as an export's file)."""

    runner: RunnerClass
    router: APIRouter

    @property
    def name(self) -> str:
        return self.runner.name


def runner_of(services: Services, kind: type[K]) -> K:
    """The service's runner of ``kind``, as the routes of that kind use it."""
    runner = services.supervisor.kinds[kind.name]
    if not isinstance(runner, kind):
        raise TypeError(f"kind {kind.name!r} is run by {type(runner).__name__}")
    return runner
