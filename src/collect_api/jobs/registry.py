"""What the engine needs of a job kind. Kinds register here; the engine knows no kind."""

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.jobs.models import Job

if TYPE_CHECKING:
    from collect_api.db import Database
    from collect_api.jobs.context import JobContext


class JobKind(Protocol):
    """A kind of job: how its jobs are submitted, run, undone and cleaned up after. One
    instance serves every job of the kind in a process."""

    name: ClassVar[str]

    async def submit(self, db: "Database", *, tenant: str, job_id: str, request: Any) -> Job:
        """Check a request for a job of this kind (raising the error that answers it) and
        queue the job with id ``job_id``. What ``request`` holds is the kind's own."""

    async def run(self, ctx: "JobContext") -> None:
        """Do the job from ``ctx.job.checkpoint`` on, one committed chunk at a time, and end
        with ``ctx.finish()``. Raise to fail; the engine handles pause and terminate."""

    async def undo_writes(self, conn: AsyncConnection, job: Job) -> None:
        """Undo every write the job made, in the transaction that records its end.
        Must be idempotent: after a crash it may run again."""

    def delete_files(self, job: Job) -> None:
        """Delete the job's working files once it is final. Best effort, idempotent."""

    async def housekeep(self, db: "Database") -> None:
        """Now and then: delete files no job needs any more (left by a crash, or expired)."""
