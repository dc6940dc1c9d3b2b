"""Retransmission receipts: the answer to a request that used a one-time effect (issue 5).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

``receipt``: keyed hash of (client address, source port, Identifier, Request
Authenticator, User-Name) → the reply code and Reply-Message texts, kept 60 s, written in
the same transaction as the effect. A NAS retransmission that reaches another server (or a
restarted one) gets the same answer instead of a "passcode reuse" reject.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "receipt",
        sa.Column("key", sa.LargeBinary(32), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("reply_messages", sa.Text(), nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_receipt")),
    )
    op.create_index(op.f("ix_receipt_expires_at"), "receipt", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_receipt_expires_at"), table_name="receipt")
    op.drop_table("receipt")
