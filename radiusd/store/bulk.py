"""Bulk writes: a batch of imported users and their tokens in one transaction.

Owns: the SQL of ``radiusd user import`` (``radiusd.importing`` parses, validates and seals;
this stores). One call is one transaction through the Store's own transaction helper, so it
gets the same connection set-up (SQLite ``BEGIN IMMEDIATE``, WAL, ``synchronous=FULL``) and
the same translation of database errors as every other write.

Fast by construction: two ``IN`` look-ups find the names and serials already taken, then
one multi-row ``INSERT ... RETURNING`` for the users (SQLAlchemy's "insertmanyvalues", on
SQLite and PostgreSQL alike) and one executemany for the tokens.

Must not know: twisted, pyrad, CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from radiusd.errors import StoreUnavailable
from radiusd.importing import AuditFor, BatchOutcome, SealedUser
from radiusd.store.store import Store
from radiusd.store.tables import tokens, users

# Another writer can take a name or serial between the look-up and the INSERT (PostgreSQL;
# SQLite's BEGIN IMMEDIATE already excludes it). The batch is then rolled back whole and
# tried again: the look-up now sees the newcomer and refuses that row only.
_ATTEMPTS = 3


class _TakenMeanwhile(Exception):
    """A unique key was taken by another writer during the batch's transaction."""


def import_batch(store: Store, batch: Sequence[SealedUser],
                 audit_for: AuditFor) -> BatchOutcome:
    """Store a batch of users with their tokens and one audit row, in one transaction.

    A user whose name is already in the database, or whose token's serial is (or appears
    earlier in the batch), is refused and nothing of it is written: no user row without
    its token.

    Args:
        store: the open Store.
        batch: the users to store, at most a few thousand (one ``IN`` list each).
        audit_for: builds the audit row from the users actually stored; not called (no
            row written) when every user was refused.
    Returns:
        The users stored and the lines refused for a taken name or serial.
    Raises:
        StoreUnavailable: the database cannot be reached, is locked or timed out, or keeps
            conflicting with another writer.
        NotInitialised: the schema is missing.
    """
    for attempt in range(_ATTEMPTS):
        try:
            return _import_once(store, batch, audit_for)
        except _TakenMeanwhile:
            if attempt == _ATTEMPTS - 1:
                raise StoreUnavailable(f"{store!r}: another writer keeps taking the same "
                                       "user names or serials; import again") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _import_once(store: Store, batch: Sequence[SealedUser],
                 audit_for: AuditFor) -> BatchOutcome:
    if not batch:
        return BatchOutcome(imported=())

    def conflict(exc: IntegrityError) -> Exception:
        return _TakenMeanwhile()

    with store._write(conflict=conflict) as connection:
        names = [user.name for user in batch]
        serials = [user.token.serial for user in batch if user.token is not None]
        taken_names = set(connection.execute(
            select(users.c.name).where(users.c.name.in_(names))).scalars())
        taken_serials = set(connection.execute(
            select(tokens.c.serial).where(tokens.c.serial.in_(serials))).scalars()) \
            if serials else set()
        name_taken: list[int] = []
        serial_taken: list[int] = []
        accepted: list[SealedUser] = []
        for user in batch:
            if user.name in taken_names:
                name_taken.append(user.line)
                continue
            if user.token is not None and user.token.serial in taken_serials:
                serial_taken.append(user.line)
                continue
            taken_names.add(user.name)  # a repeat inside the batch is refused the same way
            if user.token is not None:
                taken_serials.add(user.token.serial)
            accepted.append(user)
        if accepted:
            audit = audit_for(accepted)
            at = audit.at
            ids = connection.execute(
                insert(users).returning(users.c.id, sort_by_parameter_order=True),
                [{"name": user.name, "pin_hash": user.pin_hash, "password_hash": None,
                  "is_disabled": False, "failures": 0, "locked_at": None, "created_at": at}
                 for user in accepted]).scalars().all()
            token_rows = [
                {"user_id": user_id, "serial": user.token.serial, "kind": user.token.kind.value,
                 "digits": user.token.digits, "period": user.token.period,
                 "algorithm": "SHA1", "sealed_seed": user.token.sealed_seed,
                 "last_used": user.token.last_used, "created_at": at}
                for user_id, user in zip(ids, accepted, strict=True) if user.token is not None]
            if token_rows:
                connection.execute(insert(tokens), token_rows)
            Store._insert_audit(connection, audit)
    return BatchOutcome(imported=tuple(accepted), name_taken=tuple(name_taken),
                        serial_taken=tuple(serial_taken))
