"""Retransmission receipts on the row the request used (issue 6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

An Access-Accept that used a one-time effect keeps its receipt on the row that effect
changed: ``tokens`` (the step or counter it advanced) and ``emergency_code`` (the code it
used), written by the same compare-and-set UPDATE. A row in the ``receipt`` table and its
two index entries per Accept (random keys: a page written per Accept, and as many again
to prune it a minute later) were a fifth of an Accept's cost. The ``receipt`` table stays
for the rare receipt a row cannot hold: the one a token's next Accept displaces within its
60 s.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)
TABLES = ("tokens", "emergency_code")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("receipt_key", sa.LargeBinary(32), nullable=True))
            batch.add_column(sa.Column("receipt_reply", sa.Text(), nullable=True))
            batch.add_column(sa.Column("receipt_expires_at", Instant, nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("receipt_expires_at")
            batch.drop_column("receipt_reply")
            batch.drop_column("receipt_key")
