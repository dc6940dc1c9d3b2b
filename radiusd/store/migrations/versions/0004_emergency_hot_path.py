"""Emergency codes on the request path without reading a whole set (issue 6).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

``emergency_set.codes_left``: kept by the same UPDATE that records a code's use, so a
request reads the set's header and the one code whose keyed hash matches, not all codes.
``ix_emergency_code_code_hash``: finds that code.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("emergency_set") as batch:
        batch.add_column(sa.Column("codes_left", sa.Integer(), nullable=False,
                                   server_default="0"))
    op.execute("UPDATE emergency_set SET codes_left = (SELECT count(*) FROM emergency_code "
               "WHERE emergency_code.set_id = emergency_set.id "
               "AND emergency_code.used_at IS NULL)")
    op.create_index(op.f("ix_emergency_code_code_hash"), "emergency_code", ["code_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_emergency_code_code_hash"), table_name="emergency_code")
    with op.batch_alter_table("emergency_set") as batch:
        batch.drop_column("codes_left")
