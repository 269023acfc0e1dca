"""Job rows, their states and the one table of allowed transitions.

A job moves ``queued → running → completed`` when nothing interrupts it. ``pausing`` and
``terminating`` are shown while a control request waits for the job's next safe point (the
boundary between two committed chunks). Terminal states are final, forever.
"""

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, text
from sqlmodel import Field, SQLModel


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"


S = JobState

# Every allowed transition, and nothing else. A state missing on the left has no way out.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.RUNNING, S.PAUSED, S.TERMINATING}),
    # running → queued: the service stopped or lost the job's process; it resumes by itself.
    S.RUNNING: frozenset({S.PAUSING, S.PAUSED, S.TERMINATING, S.COMPLETED, S.FAILED, S.QUEUED}),
    # pausing → running: resumed before it reached its safe point.
    S.PAUSING: frozenset({S.PAUSED, S.RUNNING, S.TERMINATING, S.COMPLETED, S.FAILED, S.QUEUED}),
    # paused → running: resumed in the process where the job waits parked, with a slot free.
    S.PAUSED: frozenset({S.QUEUED, S.RUNNING, S.TERMINATING}),
    S.TERMINATING: frozenset({S.TERMINATED, S.FAILED}),
}

TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.TERMINATED})
# States in which a process holds the job and must keep its lease.
ACTIVE = frozenset({S.RUNNING, S.PAUSING})
# The actor of the changes that no client asked for: a start, a completion, a recovery.
SYSTEM = "system"


def can_move(src: JobState, dst: JobState) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())


class Control(StrEnum):
    """What a control request asks of a job at its next safe point."""

    PAUSE = "pause"
    TERMINATE = "terminate"


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_rev", "rev"),
        Index("ix_job_state_seq", "state", "queue_seq"),
        Index("ix_job_tenant_id", "tenant", "id"),
    )

    id: str = Field(primary_key=True)
    tenant: str
    kind: str
    state: str
    # What the API shows of the request; ``private``: what the kind keeps for itself about
    # the job (how its file was read, say), never shown.
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    private: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default=text("'{}'")),
    )
    progress: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Where a resumed run starts; committed in the same transaction as the work it covers.
    checkpoint: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # A control request (Control) the job's runner applies at its next safe point.
    control: str | None = None
    # The process running the job and until when its claim holds.
    owner: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0
    # First in, first out among queued jobs: the rev at which the job was (re)queued.
    queue_seq: int = 0
    # Global, increasing revision of the last change; SSE event ids.
    rev: int = 0
    created_at: str
    started_at: str | None = None
    updated_at: str
    finished_at: str | None = None


class JobHistory(SQLModel, table=True):
    """The audit trail: every transition, who asked for it, and the job as it then was."""

    __tablename__ = "job_history"
    __table_args__ = (Index("ix_job_history_job_rev", "job_id", "rev"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", ondelete="CASCADE")
    rev: int = Field(index=True)
    from_state: str | None
    to_state: str
    actor: str
    reason: str | None = None
    at: str
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
