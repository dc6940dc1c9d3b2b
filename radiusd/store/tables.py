"""The database schema as SQLAlchemy Core tables, and the column type for instants.

Owns: table and column names, constraints, indexes, and how a timestamp is stored
(``UTCDateTime``: timezone-aware UTC in, timezone-aware UTC out, on SQLite and PostgreSQL).
The Alembic revisions in ``migrations/versions/`` create exactly this schema; a component
test compares the two so they cannot drift apart.

Must not know: twisted, pyrad, the model values (``store.py`` maps rows to them).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, DateTime, Dialect,
                        ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text,
                        TypeDecorator, UniqueConstraint, false)

# Deterministic constraint names, so later migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the (64-bit) rowid alias.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """An instant: aware UTC ``datetime`` in and out on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones: the value is stored as naive
    UTC text (SQLAlchemy's fixed-width ISO format, so text order is time order) and tagged
    UTC again when read.

    Raises:
        ValueError: (when binding) a naive datetime: its time zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None,
                             dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _receipt_columns() -> tuple[Column, ...]:
    """The receipt of the Accept that last changed a one-time row (revision 0005): what a
    retransmission of that request is answered with, until ``receipt_expires_at``
    (``model.Receipt``; NULL when none)."""
    return (Column("receipt_key", LargeBinary(32), nullable=True),  # Keys.receipt_hash
            Column("receipt_reply", Text, nullable=True),  # JSON list of Reply-Messages
            Column("receipt_expires_at", UTCDateTime, nullable=True))


users = Table(
    "users", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("pin_hash", LargeBinary, nullable=True),  # crypto.Keys.hash_pin; NULL: no PIN
    Column("password_hash", Text, nullable=True),    # self-service password (scrypt string)
    Column("is_disabled", Boolean(create_constraint=True, name="is_disabled"),
           nullable=False, default=False, server_default=false()),
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # Remembered by a web session at sign-in, compared on every request; changed by a
    # password change and by disable, so those end open sessions (revision 0007).
    Column("generation", BigInteger, nullable=False, default=0, server_default="0"),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("serial", String(255), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("digits", Integer, nullable=False),
    Column("period", Integer, nullable=False),
    Column("algorithm", String(16), nullable=False, default="SHA1", server_default="SHA1"),
    Column("sealed_seed", LargeBinary, nullable=False),  # crypto.Keys.seal_seed
    # model.Token.last_used: the TOTP step or HOTP counter last accepted (CAS target).
    Column("last_used", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    *_receipt_columns(),
    CheckConstraint("kind IN ('totp', 'hotp')", name="kind"),
)

settings = Table(
    "settings", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

audit_event = Table(
    "audit_event", metadata,
    Column("id", Id, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    # Text throughout: values come from the wire (User-Name, NAS-Identifier) and must never
    # make the audit insert fail, which would roll back the commit it records.
    Column("node", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("user_name", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("client", Text, nullable=True),
    Column("nas_address", Text, nullable=True),
    Column("detail", Text, nullable=False, default="{}", server_default="{}"),  # JSON object
    Index("ix_audit_event_at", "at"),
    Index("ix_audit_event_user_name_at", "user_name", "at"),
)

admins = Table(
    "admins", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # As users.generation; also changed when the second factor is reset (revision 0007).
    Column("generation", BigInteger, nullable=False, default=0, server_default="0"),
    Column("totp_sealed_seed", LargeBinary, nullable=True),  # Keys.seal_seed; NULL: none yet
    # The TOTP step last accepted (CAS target: a code works once); -1: none.
    Column("totp_last_step", BigInteger, nullable=False, default=-1, server_default="-1"),
)

# --- emergency access (issue 3; revision 0002) ---------------------------------------------

emergency_set = Table(
    "emergency_set", metadata,
    Column("id", String(32), primary_key=True),  # codes.new_set_id: 128 random bits, hex
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("code_length", Integer, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("issued_by", Text, nullable=False),      # "cli", "admin:NAME", "self-service:NAME"
    Column("reason", Text, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_reason", Text, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("last_used_client", Text, nullable=True),  # from the wire: Text, like audit_event
    # Unused codes, kept by the UPDATE that records each use (the request path reads the
    # header and one code, not the whole set).
    Column("codes_left", Integer, nullable=False, server_default="0"),
    # Serves both the user's latest set (load_subject, the hot path) and the cascade from
    # users: an index on user_id alone would be a redundant prefix of this one.
    Index("ix_emergency_set_user_id_issued_at", "user_id", "issued_at"),
)

emergency_code = Table(
    "emergency_code", metadata,
    Column("id", Id, primary_key=True),
    Column("set_id", String(32), ForeignKey("emergency_set.id", ondelete="CASCADE"),
           nullable=False),
    Column("position", Integer, nullable=False),      # 1-based line of the export
    Column("code_hash", LargeBinary(32), nullable=False),  # Keys.code_hash (HMAC-SHA256)
    # Compare-and-set target: UPDATE ... SET used_at=:at WHERE id=:id AND used_at IS NULL.
    Column("used_at", UTCDateTime, nullable=True),
    Column("used_client", Text, nullable=True),
    *_receipt_columns(),
    # SQLite: zero bytes written with the unused code and cleared by the UPDATE that uses
    # it, so that the row does not grow by its use and receipt (revision 0006).
    Column("reserved", LargeBinary, nullable=True),
    # Its index (set_id, position) also serves lookups and the cascade by set_id alone.
    UniqueConstraint("set_id", "position"),
    CheckConstraint("position >= 1", name="position"),
    # The request path finds the one code whose keyed hash matches (revision 0004).
    Index("ix_emergency_code_code_hash", "code_hash"),
)

# --- retransmission receipts (issue 5; revision 0003) --------------------------------------
# Since revision 0005 only for the receipts a row cannot hold (see _receipt_columns and
# Store.apply_batch): one a token's next Accept displaces within its lifetime.

receipt = Table(
    "receipt", metadata,
    # Keys.receipt_hash(client address, source port, Identifier, Request Authenticator,
    # User-Name): a retransmission reaching another server finds the first server's answer.
    Column("key", LargeBinary(32), primary_key=True),
    Column("code", Integer, nullable=False),             # the reply's PacketCode
    Column("reply_messages", Text, nullable=False),       # JSON list of Reply-Message texts
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_receipt_expires_at", "expires_at"),
)
