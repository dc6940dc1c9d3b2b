"""SQLite: a code's use counted on its set by a trigger, not by a statement of its own
(issue 6).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

An emergency-code login wrote its set's header (``codes_left``, ``last_used_at``,
``last_used_client``) with an UPDATE of its own after the compare-and-set on the code:
a fifth of the time a login holds SQLite's one writer lock, which ``serve --workers``
queue for, and one more statement at which the database thread gives up the GIL to its
own reactor and waits to get it back. The trigger makes it part of the code's UPDATE.
It fires only when ``used_at`` goes from NULL to a time (a code is never used twice,
and nothing clears ``used_at``).

PostgreSQL keeps the UPDATE (``_RequestSql.note_code_use``): there several servers write
at once, and a batch locks its rows in one global order (the codes, then users, then
sets) so that batches committing at once do not deadlock; a trigger would lock each set
with its code, out of that order.

A later revision that rebuilds ``emergency_code`` with ``batch_alter_table`` (SQLite's
copy-and-move) drops this trigger and must create it again:
``tests/component/test_store_emergency.py`` checks it is there at the newest revision.
"""

from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "emergency_code_use_on_set"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF used_at ON emergency_code "
        "WHEN OLD.used_at IS NULL AND NEW.used_at IS NOT NULL BEGIN "
        "UPDATE emergency_set SET codes_left = codes_left - 1, last_used_at = NEW.used_at, "
        "last_used_client = NEW.used_client WHERE id = NEW.set_id; END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
