"""Emergency access: one-time emergency tokencode sets and their codes (issue 3).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

``emergency_set``: one row per issued set (a new set revokes the user's earlier ones).
``emergency_code``: one row per code, holding only its keyed hash; ``used_at`` is the
compare-and-set target that makes each code work once across every server.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

# Revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Names are final (op.f): tables.py's naming convention must not rewrite them.
# Frozen copies of the types in tables.py: a revision must not change when tables.py does.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "emergency_set",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("code_length", sa.Integer(), nullable=False),
        sa.Column("issued_at", Instant, nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.Column("issued_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_at", Instant, nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("last_used_at", Instant, nullable=True),
        sa.Column("last_used_client", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_set")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_emergency_set_user_id_users"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_emergency_set_user_id_issued_at"), "emergency_set",
                    ["user_id", "issued_at"])
    op.create_table(
        "emergency_code",
        sa.Column("id", Id, nullable=False),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("used_at", Instant, nullable=True),
        sa.Column("used_client", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_code")),
        sa.ForeignKeyConstraint(["set_id"], ["emergency_set.id"],
                                name=op.f("fk_emergency_code_set_id_emergency_set"),
                                ondelete="CASCADE"),
        sa.UniqueConstraint("set_id", "position",
                            name=op.f("uq_emergency_code_set_id_position")),
        sa.CheckConstraint("position >= 1", name=op.f("ck_emergency_code_position")),
    )


def downgrade() -> None:
    op.drop_table("emergency_code")
    op.drop_index(op.f("ix_emergency_set_user_id_issued_at"), table_name="emergency_set")
    op.drop_table("emergency_set")
