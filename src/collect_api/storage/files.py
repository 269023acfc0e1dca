"""Working files named after their job (``<job id>.<suffix>``), and finding leftovers."""

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

# A file younger than this may belong to a job being submitted right now (an upload still
# arriving has no job yet), so it is never taken for a leftover.
ORPHAN_GRACE_S = 3600.0


@dataclass(frozen=True)
class WorkingFile:
    job_id: str
    path: Path
    age_s: float


def working_files(directory: Path) -> list[WorkingFile]:
    """The files in ``directory`` by the job id their name starts with."""
    now = time.time()
    found = []
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                age = now - path.stat().st_mtime
                found.append(WorkingFile(path.name.split(".", 1)[0], path, age))
    return found


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
