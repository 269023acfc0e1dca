"""The records a job set aside (``on_error=skip``), for ``GET /jobs/{id}/errors``."""

from sqlalchemy import Index, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel


class JobRejection(SQLModel, table=True):
    """A source record a job rejected (``on_error=skip``), for ``GET /jobs/{id}/errors``."""

    __tablename__ = "job_rejection"
    __table_args__ = (Index("ix_job_rejection_job", "job_id", "record"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", ondelete="CASCADE")
    line: int | None
    record: int | None
    column: str | None
    reason: str
    raw: str


REJECTION = JobRejection.__table__  # type: ignore[attr-defined]


async def page(conn: AsyncConnection, *, job_id: str, after: int, limit: int) -> list[JobRejection]:
    """A page of the records a job rejected, in source order."""
    rows = await conn.execute(
        select(REJECTION)
        .where(REJECTION.c.job_id == job_id, REJECTION.c.id > after)
        .order_by(REJECTION.c.id)
        .limit(limit)
    )
    return [JobRejection.model_validate(dict(r._mapping)) for r in rows]
