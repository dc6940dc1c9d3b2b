"""Accounts that end their sessions, and admins' own TOTP (issue 20, defects 4 and 13).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

``users.generation`` and ``admins.generation``: a number a web session remembers at sign-in
and compares on every request; it changes when the password changes, the account is
disabled or (admins) the second factor is reset, so those end every open session.
``admins.totp_sealed_seed`` (``Keys.seal_seed``, NULL: not enrolled yet) and
``admins.totp_last_step`` (the TOTP step last accepted, the compare-and-set target that
makes an admin's code work once). Existing rows start at generation 0, not enrolled.
"""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("generation", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("admins") as batch:
        batch.add_column(sa.Column("generation", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("totp_sealed_seed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=False,
                                   server_default="-1"))


def downgrade() -> None:
    with op.batch_alter_table("admins") as batch:
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_sealed_seed")
        batch.drop_column("generation")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("generation")
