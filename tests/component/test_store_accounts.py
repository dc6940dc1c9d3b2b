"""The Store's web accounts on SQLite and PostgreSQL (revision 0007): generations that
end sessions (issue 20, 4), admins' TOTP compare-and-set and the last admin (issue 20, 13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radiusd.errors import NotFound, UsageError
from radiusd.model import AuditEvent

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


def _audit(action: str) -> AuditEvent:
    return AuditEvent(at=NOW, action=action, result="ok", actor="cli")


def test_password_change_and_disable_change_a_users_generation(store):
    """Issue 20 (4)."""
    store.add_user("alice", pin_hash=None, password_hash="scrypt$1", at=NOW,
                   audit=_audit("user.add"), generation=7)
    found = store.find_web_account("user", name="alice")
    assert (found.generation, found.password_hash, found.is_disabled) == (7, "scrypt$1", False)
    assert store.find_web_account("user", account_id=found.id) == found
    store.set_password("alice", "scrypt$2", _audit("user.set_password"))
    store.set_disabled("alice", True, _audit("user.disable"))
    again = store.find_web_account("user", account_id=found.id)
    assert (again.generation, again.is_disabled) == (9, True)
    store.delete_user("alice", _audit("user.delete"))
    assert store.find_web_account("user", account_id=found.id) is None


def test_admin_totp_enrolment_and_steps_are_compare_and_set(store):
    """Issue 20 (13): an admin's code works once, on every server sharing the database."""
    admin_id = store.add_admin("root", "scrypt$a", NOW, _audit("admin.add"), generation=3)
    assert not store.find_web_account("admin", name="root").has_totp
    assert not store.enrol_admin_totp(admin_id, 2, b"sealed", 100, _audit("admin.enrol_totp"))
    assert store.enrol_admin_totp(admin_id, 3, b"sealed", 100, _audit("admin.enrol_totp"))
    assert not store.enrol_admin_totp(admin_id, 3, b"other", 101, _audit("admin.enrol_totp"))
    account = store.find_web_account("admin", account_id=admin_id)
    assert (account.totp_sealed_seed, account.totp_last_step) == (b"sealed", 100)
    assert not store.use_admin_totp_step(admin_id, 100)  # the enrolment code itself
    assert store.use_admin_totp_step(admin_id, 101)
    assert not store.use_admin_totp_step(admin_id, 101)
    assert [a.action for a in (r.event for r in store.list_audit(action="admin.enrol_totp"))] \
        == ["admin.enrol_totp"]
    generation = store.reset_admin_totp("root", _audit("admin.reset_totp"))
    account = store.find_web_account("admin", account_id=admin_id)
    assert (account.has_totp, account.totp_last_step, account.generation) == (False, -1, 4)
    assert generation == 4
    assert store.set_admin_password("root", "scrypt$b", _audit("admin.set_password")) == 5


def test_the_last_admin_is_never_deleted(store):
    """Issue 20 (13)."""
    store.add_admin("root", "scrypt$a", NOW, _audit("admin.add"))
    store.add_admin("spare", "scrypt$a", NOW, _audit("admin.add"))
    with pytest.raises(NotFound):
        store.delete_admin("nobody", _audit("admin.delete"))
    store.delete_admin("spare", _audit("admin.delete"))
    with pytest.raises(UsageError, match="last admin"):
        store.delete_admin("root", _audit("admin.delete"))
    assert [a.name for a in store.list_admins()] == ["root"]
    assert [r.event.action for r in store.list_audit(action="admin.delete")] == ["admin.delete"]
