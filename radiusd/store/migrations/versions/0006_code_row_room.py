"""Room in an unused emergency code's row for its use (issue 6).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``emergency_code.reserved``: on SQLite, zero bytes written with each unused code and
cleared by the UPDATE that uses it, so the row keeps its size when it gains its use and
receipt, and its page is rewritten in place instead of split (``store.CODE_ROW_ROOM``).
Codes issued before this revision have no room; they work as before.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("emergency_code") as batch:
        batch.add_column(sa.Column("reserved", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("emergency_code") as batch:
        batch.drop_column("reserved")
