"""What the engine needs of a job kind. Kinds register here; the engine knows no kind."""

from typing import TYPE_CHECKING, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from collect_api.jobs.models import Job

if TYPE_CHECKING:
    from collect_api.db import Database
    from collect_api.jobs.context import JobContext


class JobKind(Protocol):
    name: ClassVar[str]

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
