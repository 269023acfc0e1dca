"""A job's private parameters in a column of their own.

What a kind keeps for itself about a job (how its file was read: the codec, where the
records start) lived among the job's ``params``, behind a ``_`` prefix that the API left out.
It moves to ``private``, without the prefix; ``params`` keeps what the API shows. Jobs
queued, paused or running across the upgrade go on as before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "_"
JOB = sa.table(
    "job",
    sa.column("id", sa.String()),
    sa.column("params", sa.JSON()),
    sa.column("private", sa.JSON()),
)


def _document(value: Any) -> dict[str, Any]:
    """A JSON column's value: drivers give a text (SQLite) or the object (PostgreSQL)."""
    return dict(json.loads(value) if isinstance(value, str) else value or {})


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(
            sa.Column("private", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    conn = op.get_bind()
    for job_id, raw in conn.execute(sa.select(JOB.c.id, JOB.c.params)).all():
        params = _document(raw)
        private = {k[len(PREFIX) :]: v for k, v in params.items() if k.startswith(PREFIX)}
        if private:
            public = {k: v for k, v in params.items() if not k.startswith(PREFIX)}
            conn.execute(
                JOB.update().where(JOB.c.id == job_id).values(params=public, private=private)
            )


def downgrade() -> None:
    conn = op.get_bind()
    for job_id, raw, private in conn.execute(
        sa.select(JOB.c.id, JOB.c.params, JOB.c.private)
    ).all():
        moved = _document(private)
        if moved:
            params = {**_document(raw), **{PREFIX + k: v for k, v in moved.items()}}
            conn.execute(JOB.update().where(JOB.c.id == job_id).values(params=params))
    with op.batch_alter_table("job") as batch:
        batch.drop_column("private")
