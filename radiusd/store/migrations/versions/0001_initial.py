"""Initial schema: users, tokens, settings, audit_event, admins.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Emergency access (code sets and their codes) and retransmission receipts come in later
revisions; this one leaves them out on purpose.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

# Revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Names are final (op.f): tables.py's naming convention must not rewrite them.
# Frozen copies of the types in tables.py: a revision must not change when tables.py does.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("pin_hash", sa.LargeBinary(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("is_disabled",
                  sa.Boolean(create_constraint=True, name=op.f("ck_users_is_disabled")),
                  nullable=False, server_default=sa.false()),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_at", Instant, nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("serial", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False, server_default="SHA1"),
        sa.Column("sealed_seed", sa.LargeBinary(), nullable=False),
        sa.Column("last_used", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_tokens_user_id_users"), ondelete="CASCADE"),
        sa.UniqueConstraint("serial", name=op.f("uq_tokens_serial")),
        sa.CheckConstraint("kind IN ('totp', 'hotp')", name=op.f("ck_tokens_kind")),
    )
    op.create_index(op.f("ix_tokens_user_id"), "tokens", ["user_id"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", Instant, nullable=False),
        sa.Column("node", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column("nas_address", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index(op.f("ix_audit_event_at"), "audit_event", ["at"])
    op.create_index(op.f("ix_audit_event_user_name_at"), "audit_event", ["user_name", "at"])
    op.create_table(
        "admins",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admins")),
        sa.UniqueConstraint("name", name=op.f("uq_admins_name")),
    )


def downgrade() -> None:
    op.drop_table("admins")
    op.drop_index(op.f("ix_audit_event_user_name_at"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_at"), table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_table("settings")
    op.drop_index(op.f("ix_tokens_user_id"), table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("users")
