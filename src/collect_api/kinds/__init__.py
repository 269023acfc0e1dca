"""One module per job kind: the checkpointed step function it runs."""

from collect_api.jobs.registry import JobKind
from collect_api.kinds.exports import ExportKind
from collect_api.kinds.imports import ImportKind
from collect_api.kinds.teams import TeamsKind
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import DataPlane


def all_kinds(settings: Settings, dataplane: DataPlane) -> dict[str, JobKind]:
    kinds: list[JobKind] = [
        ImportKind(settings, dataplane),
        ExportKind(settings, dataplane),
        TeamsKind(settings),
    ]
    return {kind.name: kind for kind in kinds}
