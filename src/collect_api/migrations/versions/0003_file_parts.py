"""Files kept in the database, a part per row, for servers that share no disk.

On PostgreSQL a job's upload and an export's result are kept here (``storage.shared``), so
that any server can run or resume the job and answer the download. The table exists on
SQLite too, unused: one schema for both backends. Its bytes are stored uncompressed on
PostgreSQL (``STORAGE EXTERNAL``): compressing every part of a large CSV as it is written
would cost more time than the space saved is worth, and gzip results do not compress.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_part",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "start"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE file_part ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("file_part")
