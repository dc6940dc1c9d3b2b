"""The model's hand-written copies (``EmergencySet.with_codes``, ``Subject.with_emergency``,
used on the request path instead of ``dataclasses.replace``) keep every other field: each
field gets a value of its own here, so a field added later and not copied fails."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from radiusd.model import EmergencyCode, EmergencySet, Subject, Token, TokenKind

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def distinct(cls, **known):
    """An instance of ``cls`` whose every field holds a value no other field holds."""
    values = {}
    for number, field in enumerate(dataclasses.fields(cls)):
        values[field.name] = known.get(field.name, f"{field.name}-{number}")
    return cls(**values)


def test_with_codes_keeps_every_other_field_of_the_set():
    emergency = distinct(EmergencySet, issued_at=NOW, expires_at=NOW + timedelta(days=1),
                         revoked_at=NOW + timedelta(hours=1), last_used_at=NOW,
                         codes=(), unused_count=7)
    code = EmergencyCode(id=3, position=2, code_hash=b"h" * 32)
    copy = emergency.with_codes((code,))
    assert copy == dataclasses.replace(emergency, codes=(code,))
    assert copy.codes == (code,) and emergency.codes == ()
    assert copy.codes_left == 7  # unused_count kept: the header's count, not the codes'


def test_with_emergency_keeps_every_other_field_of_the_subject():
    token = Token(id=1, serial="S1", kind=TokenKind.TOTP, digits=6, period=30,
                  sealed_seed=b"seed", last_used=4)
    subject = distinct(Subject, tokens=(token,), emergency=None, locked_at=NOW)
    emergency = distinct(EmergencySet, issued_at=NOW, expires_at=NOW, codes=())
    copy = subject.with_emergency(emergency)
    assert copy == dataclasses.replace(subject, emergency=emergency)
    assert copy.emergency is emergency and subject.emergency is None


def test_with_replaced_keeps_every_other_field_of_the_subject():
    """Issue 20 (12): the set before the latest one rides on the subject, copied by hand."""
    token = Token(id=1, serial="S1", kind=TokenKind.TOTP, digits=6, period=30,
                  sealed_seed=b"seed", last_used=4)
    subject = distinct(Subject, tokens=(token,), replaced=None, locked_at=NOW)
    replaced = distinct(EmergencySet, issued_at=NOW, expires_at=NOW, codes=())
    copy = subject.with_replaced(replaced)
    assert copy == dataclasses.replace(subject, replaced=replaced)
    assert copy.with_emergency(None) == dataclasses.replace(copy, emergency=None)
