"""Issue, revoke and report emergency code sets: what the CLI and the web consoles call.

Issuing is two steps so that "nothing is half-done": ``prepare_set`` draws the codes,
hashes them and renders the export (no write); the caller writes the export where it must
go, then ``commit_set`` stores the set — revoking the user's earlier set — and its audit
rows in one transaction. If the export cannot be written, nothing is committed; if the
commit fails, the caller removes the export. The plaintext codes exist only in the
``PreparedSet`` and the export text.

Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from radiusd.crypto import Keys
from radiusd.duration import format_duration
from radiusd.emergency.codes import generate_codes, hash_codes, new_set_id
from radiusd.emergency.export import render_export
from radiusd.emergency.rules import SUPERSEDED, SetStatus, set_status
from radiusd.errors import NotFound, UsageError
from radiusd.model import AuditEvent, EmergencySet, RandomSource, Secret
from radiusd.settings import BOUNDS, Settings

# The hard bounds of what may be asked for (settings.BOUNDS, the one table): the settings
# give the defaults; an admin (CLI or admin web alike) may ask for any count and lifetime
# within these bounds, a self-service user gets the settings (issue 20, 1).
MIN_COUNT, MAX_COUNT = BOUNDS["emergency.codes_per_set"]
MIN_LIFETIME, MAX_LIFETIME = BOUNDS["emergency.lifetime"]

# What each asked-for value is called where no flag or form field is in sight.
_FIELD_NAMES = {"count": "the number of codes", "lifetime": "the lifetime",
                "code_length": "the code length"}


class OutOfRange(UsageError):
    """A count, lifetime or code length outside its hard bounds.

    The message speaks of the value (``the lifetime must be between 1m and 90d, not
    1000d``), never of a CLI flag: the CLI names its flags itself (``message_for``), the web
    puts the message next to its field.

    Attributes:
        field: ``count``, ``lifetime`` or ``code_length``. low, high, value: as checked.
    """

    def __init__(self, field: str, low, high, value):
        self.field, self.low, self.high, self.value = field, low, high, value
        super().__init__(self.message_for(_FIELD_NAMES[field]))

    def message_for(self, name: str) -> str:
        """The message with the value called ``name`` (``--lifetime``, ``Lifetime``)."""
        spell = (lambda v: format_duration(v) if isinstance(v, timedelta) else str(v))
        return (f"{name} must be between {spell(self.low)} and {spell(self.high)}, "
                f"not {spell(self.value)}")


@dataclass(frozen=True, slots=True)
class PreparedSet:
    """A set ready to commit: its values, the code hashes and the export (plaintext!)."""

    emergency: EmergencySet
    user_name: str
    code_hashes: tuple[bytes, ...]
    codes: tuple[Secret, ...]
    export_text: str

    def __repr__(self) -> str:  # the export holds the codes: never print it
        return f"PreparedSet(user={self.user_name!r}, set={self.emergency.id!r})"


def export_filename(user_name: str) -> str:
    """``emergency-codes-NAME.txt`` (SPEC), with path separators made harmless."""
    safe = "".join(c if c.isalnum() or c in "._-@" else "_" for c in user_name)
    return f"emergency-codes-{safe}.txt"


def check_request(settings: Settings, count: int | None, lifetime: timedelta | None
                  ) -> tuple[int, timedelta]:
    """The count and lifetime to use: the policy's unless given, within the hard bounds.

    The policy is the default, not a cap: a value asked for may exceed it, within the
    hard bounds (``settings.BOUNDS``). The policy itself is within them (it is checked
    where it is saved, and a stored value out of bounds reads as its default).

    Raises:
        OutOfRange: count outside 1–100, lifetime outside 1m–90d, or the policy's code
            length outside 6–12 (a ``Settings`` built by hand).
    """
    count = settings.codes_per_set if count is None else count
    lifetime = settings.lifetime if lifetime is None else lifetime
    for field, value, key in (("count", count, "emergency.codes_per_set"),
                              ("lifetime", lifetime, "emergency.lifetime"),
                              ("code_length", settings.code_length, "emergency.code_length")):
        low, high = BOUNDS[key]
        if not low <= value <= high:
            raise OutOfRange(field, low, high, value)
    return count, lifetime


def prepare_set(store, keys: Keys, random: RandomSource, settings: Settings, *,
                user_name: str, count: int | None = None, lifetime: timedelta | None = None,
                issued_by: str, reason: str, now: datetime) -> PreparedSet:
    """Draw and hash a new set for ``user_name`` and render its export; writes nothing.

    Raises:
        NotFound: unknown user. OutOfRange: count/lifetime out of range.
        StoreUnavailable: the database cannot be reached.
    """
    count, lifetime = check_request(settings, count, lifetime)
    user = store.get_user(user_name)
    set_id = new_set_id(random)
    codes = generate_codes(random, count, settings.code_length)
    emergency = EmergencySet(id=set_id, user_id=user.id, code_length=settings.code_length,
                             issued_at=now, expires_at=now + lifetime, issued_by=issued_by,
                             reason=reason)
    text = render_export(user_name=user.name, issued_at=now, expires_at=emergency.expires_at,
                         codes=codes, has_pin=user.has_pin, issued_by=issued_by)
    return PreparedSet(emergency=emergency, user_name=user.name,
                       code_hashes=hash_codes(keys, set_id, user.id, codes), codes=codes,
                       export_text=text)


def commit_set(store, prepared: PreparedSet, *, actor: str, destination: str | None,
               node: str, now: datetime) -> EmergencySet:
    """Store the set (revoking the user's earlier one) with its audit rows.

    The rows, in one transaction with the set: ``emergency.revoke`` (reason
    ``superseded``, with ``replaced_by``) for a set of the user still active, then
    ``emergency.issue``, then ``emergency.export`` when the export already went somewhere.

    Args:
        destination: where the export went (a file path, ``stdout``); ``None`` when it has
            not gone anywhere yet (the web consoles: ``record_export`` writes the row when
            the file is downloaded).
    Returns:
        The stored set (codes as hashes only).
    """
    emergency = prepared.emergency
    common = dict(at=now, result="ok", actor=actor, user_name=prepared.user_name, node=node)
    audits = [
        AuditEvent(action="emergency.issue", reason=emergency.reason or None,
                   detail={"set": emergency.id, "codes": len(prepared.code_hashes),
                           "code_length": emergency.code_length,
                           "valid_until": emergency.expires_at.isoformat(),
                           "issued_by": emergency.issued_by}, **common)]
    if destination is not None:
        audits.append(AuditEvent(action="emergency.export",
                                 detail={"set": emergency.id, "destination": destination},
                                 **common))

    def superseded(set_id: str, codes_left: int) -> AuditEvent:
        # Issue 20 (12): the help desk sees why the earlier codes stopped working.
        return AuditEvent(action="emergency.revoke", reason=SUPERSEDED,
                          detail={"set": set_id, "codes_left": codes_left,
                                  "replaced_by": emergency.id}, **common)

    return store.issue_emergency_set(prepared.user_name, emergency, prepared.code_hashes,
                                     audits, superseded_audit=superseded)


def record_export(store, *, user_name: str, set_id: str, actor: str, destination: str,
                  node: str, now: datetime) -> None:
    """The ``emergency.export`` row of an export made after the set was committed (a web
    console's download of the ``.txt``): written when it happens, not at issue time.

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    store.write_audit(AuditEvent(at=now, action="emergency.export", result="ok", actor=actor,
                                 user_name=user_name, node=node,
                                 detail={"set": set_id, "destination": destination}))


def revoke_set(store, *, user_name: str, actor: str, reason: str, node: str,
               now: datetime) -> EmergencySet:
    """End the user's active set now.

    Raises:
        NotFound: unknown user, or no active set.
    """
    current = store.get_emergency_set(user_name)
    if current is None or set_status(current, now) not in (SetStatus.ACTIVE,
                                                            SetStatus.USED_UP):
        raise NotFound(f"user {user_name!r} has no active emergency set")
    audit = AuditEvent(at=now, action="emergency.revoke", result="ok", actor=actor,
                       user_name=user_name, reason=reason, node=node,
                       detail={"set": current.id, "codes_left": current.codes_left})
    if not store.revoke_emergency_set(current.id, at=now, reason=reason, audit=audit):
        raise NotFound(f"user {user_name!r} has no active emergency set")
    return store.get_emergency_set(user_name)
